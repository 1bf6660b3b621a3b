-- A moderator can silence a member of an org for some days: they keep reading but cannot post.
ALTER TABLE memberships ADD COLUMN silenced_until timestamptz;
ALTER TABLE memberships ADD COLUMN silenced_reason text;
