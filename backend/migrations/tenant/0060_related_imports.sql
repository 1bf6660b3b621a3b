-- Related-thread ranking (backend/search/related.py): document frequency of each lexeme over the
-- org's visible posts, refreshed in bulk (after an import, by the worker, or `forum search refresh-stats`).
CREATE TABLE search_term_stat (
    lexeme text PRIMARY KEY,
    ndoc   integer NOT NULL
);
CREATE TABLE search_stats (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    n_docs       integer NOT NULL DEFAULT 0,
    avg_length   double precision NOT NULL DEFAULT 0,
    refreshed_at timestamptz
);
INSERT INTO search_stats (id) VALUES (true);

-- Importers: which external object became which local row. A second run skips what is recorded here,
-- so imports are idempotent and resume where an interrupted run stopped.
CREATE TABLE import_record (
    source      text NOT NULL,  -- e.g. 'stackexchange:beer', 'jsonl:threads'
    kind        text NOT NULL,  -- 'user', 'thread', 'post', 'solution', 'duplicate', 'category'
    external_id text NOT NULL,
    local_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, kind, external_id)
);

-- Threads known to duplicate an earlier one (recorded by importers; later by moderators and agents).
CREATE TABLE thread_duplicate (
    thread_id   uuid NOT NULL REFERENCES thread (id),
    original_id uuid NOT NULL REFERENCES thread (id),
    recorded_by text NOT NULL CHECK (recorded_by IN ('import', 'moderator', 'agent')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, original_id),
    CHECK (thread_id <> original_id)
);
CREATE INDEX thread_duplicate_original ON thread_duplicate (original_id);

-- Tags of a thread (imported from sources that have them).
CREATE TABLE thread_tag (
    thread_id uuid NOT NULL REFERENCES thread (id),
    tag       text NOT NULL CHECK (length(tag) BETWEEN 1 AND 64),
    PRIMARY KEY (thread_id, tag)
);
CREATE INDEX thread_tag_tag ON thread_tag (tag);
