-- Helpful / not helpful ratings of agent posts (spec §6.1), one per user and post.
CREATE TABLE agent_feedback (
    id         uuid PRIMARY KEY,
    post_id    uuid NOT NULL REFERENCES post (id),
    user_id    uuid NOT NULL REFERENCES public.users (id),
    agent      text NOT NULL,
    helpful    boolean NOT NULL,
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, user_id)
);
CREATE INDEX agent_feedback_agent ON agent_feedback (agent);
