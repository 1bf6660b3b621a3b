-- Issue 13: expert routing, weekly digests, per-user read marks.
ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_kind_check;
ALTER TABLE notification ADD CONSTRAINT notification_kind_check
    CHECK (kind IN ('mention', 'reply', 'agent_escalation', 'welcome', 'expert_request', 'digest'));

-- One row per person the routing agent asked to answer a thread; answered_at when they replied.
CREATE TABLE expert_notification (
    thread_id    uuid NOT NULL REFERENCES thread (id),
    user_id      uuid NOT NULL REFERENCES public.users (id),
    directive_id uuid NOT NULL,
    reason       text NOT NULL,
    score        real NOT NULL,
    notified_at  timestamptz NOT NULL DEFAULT now(),
    answered_at  timestamptz,
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX expert_notification_user_day ON expert_notification (user_id, notified_at);

-- Members who do not want to be asked to answer questions.
CREATE TABLE routing_opt_out (
    user_id    uuid PRIMARY KEY REFERENCES public.users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One digest per category and ISO week, whatever the number of workers.
CREATE TABLE digest_run (
    category_id uuid NOT NULL REFERENCES category (id),
    week        text NOT NULL,  -- ISO year-week, e.g. 2026-W49
    thread_id   uuid REFERENCES thread (id),
    post_id     uuid REFERENCES post (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (category_id, week)
);

-- When a member last read a thread (for "what changed since you last read").
CREATE TABLE thread_read (
    user_id      uuid NOT NULL REFERENCES public.users (id),
    thread_id    uuid NOT NULL REFERENCES thread (id),
    last_read_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);
