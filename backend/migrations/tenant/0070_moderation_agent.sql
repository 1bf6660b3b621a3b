-- Issue 13: agent flags carry their category, score and the rules that fired, and the directive that
-- created them (one flag per directive, so a retried or replayed directive cannot flag twice).
ALTER TABLE moderation_flag
    ADD COLUMN category     text,
    ADD COLUMN score        real,
    ADD COLUMN rules        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN directive_id uuid;
CREATE UNIQUE INDEX moderation_flag_directive ON moderation_flag (directive_id) WHERE directive_id IS NOT NULL;
CREATE INDEX moderation_flag_agent ON moderation_flag (flagger_agent_id, created_at) WHERE flagger_agent_id IS NOT NULL;
