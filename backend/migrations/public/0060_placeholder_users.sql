-- Placeholder accounts made by importers for the authors of imported posts: no usable password (they
-- cannot sign in) until claimed. `placeholder_of` names the source and the author's id there.
ALTER TABLE users ADD COLUMN placeholder_of text;
CREATE UNIQUE INDEX users_placeholder_of ON users (placeholder_of) WHERE placeholder_of IS NOT NULL;
