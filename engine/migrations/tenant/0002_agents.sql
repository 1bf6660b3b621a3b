-- Agent packages installed in this tenant, directives (controlled intent) and executions (what ran).
CREATE TABLE installation (
    package      text PRIMARY KEY,
    enabled      boolean NOT NULL DEFAULT true,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    installed_by text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directive (
    id                uuid PRIMARY KEY,
    type              text NOT NULL,
    idempotency_key   text NOT NULL UNIQUE,
    status            text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                          'awaiting_approval', 'approved', 'rejected', 'refused')),
    package           text,
    signal_id         uuid REFERENCES signal (id),
    correlation_id    uuid NOT NULL,
    depth             integer NOT NULL DEFAULT 0,
    payload           jsonb NOT NULL,
    requires_approval boolean NOT NULL DEFAULT false,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 3,
    result            jsonb,
    error             text,
    decided_by        text,
    decided_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX directive_status ON directive (status, created_at);
CREATE INDEX directive_package_created ON directive (package, created_at);
CREATE INDEX directive_correlation ON directive (correlation_id);

CREATE TABLE execution (
    id             uuid PRIMARY KEY,
    directive_id   uuid NOT NULL REFERENCES directive (id),
    attempt        integer NOT NULL,
    package        text NOT NULL,
    status         text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    dry_run        boolean NOT NULL DEFAULT false,
    replay_of      uuid REFERENCES execution (id),
    provider       text,
    model          text,
    context        jsonb NOT NULL DEFAULT '{}'::jsonb,
    decision       jsonb,
    output         text,
    input_tokens   integer NOT NULL DEFAULT 0,
    output_tokens  integer NOT NULL DEFAULT 0,
    cost_usd       numeric(12, 6) NOT NULL DEFAULT 0,
    latency_ms     double precision,
    first_token_ms double precision,
    error          text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX execution_directive ON execution (directive_id, attempt);

CREATE TABLE agent_usage (
    day        date NOT NULL,
    package    text NOT NULL,
    executions integer NOT NULL DEFAULT 0,
    cost_usd   numeric(12, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (day, package)
);
