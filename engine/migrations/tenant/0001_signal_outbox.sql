-- Signals: immutable facts, written in the same transaction as the change they describe.
CREATE TABLE signal (
    id             uuid PRIMARY KEY,
    type           text NOT NULL,
    version        integer NOT NULL,
    actor_type     text NOT NULL CHECK (actor_type IN ('user', 'agent', 'system')),
    actor_id       text,
    source         text NOT NULL CHECK (source IN ('web', 'job', 'api')),
    correlation_id uuid NOT NULL,
    causation_id   uuid,
    dedupe_key     text,
    occurred_at    timestamptz NOT NULL,
    payload        jsonb NOT NULL
);
CREATE UNIQUE INDEX signal_dedupe_key ON signal (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX signal_type_id ON signal (type, id);
CREATE INDEX signal_correlation ON signal (correlation_id);

-- The outbox: one row per committed signal not yet on its Redis stream. The relay deletes a row
-- once the signal is published; the sweeper publishes rows the relay left behind.
CREATE TABLE signal_outbox (
    signal_id  uuid PRIMARY KEY REFERENCES signal (id),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION signal_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signals are immutable: % on signal refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER signal_immutable_rows BEFORE UPDATE OR DELETE ON signal
    FOR EACH ROW EXECUTE FUNCTION signal_is_immutable();
CREATE TRIGGER signal_immutable_table BEFORE TRUNCATE ON signal
    FOR EACH STATEMENT EXECUTE FUNCTION signal_is_immutable();
