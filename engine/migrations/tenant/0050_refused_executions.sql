-- An execution refused for a permission its package lacks is recorded as such.
ALTER TABLE execution DROP CONSTRAINT IF EXISTS execution_status_check;
ALTER TABLE execution ADD CONSTRAINT execution_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'refused'));
