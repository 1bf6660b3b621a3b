-- Signals written by an importer carry source 'import' (agents never act on imported history).
ALTER TABLE signal DROP CONSTRAINT signal_source_check;
ALTER TABLE signal ADD CONSTRAINT signal_source_check CHECK (source IN ('web', 'job', 'api', 'import'));
