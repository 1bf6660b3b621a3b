-- Sentence embeddings of threads (title + opening post) for related-thread ranking, filled in the
-- background by the worker (backend/search/jobs.py). `model` names the model; a thread whose opening
-- post changed since (`source_updated_at`) is embedded again.
CREATE TABLE thread_embedding (
    thread_id         uuid PRIMARY KEY REFERENCES thread (id),
    model             text NOT NULL,
    vector            bytea NOT NULL,  -- little-endian float32, unit length
    source_updated_at timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
