-- Notifications (issue 4): a user's inbox of mentions, replies to their posts and agent escalations.
-- Created by backend.notifications.service in the transaction that creates the post.
CREATE TABLE notification (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES public.users (id),
    kind           text NOT NULL CHECK (kind IN ('mention', 'reply', 'agent_escalation')),
    post_id        uuid REFERENCES post (id),
    thread_id      uuid REFERENCES thread (id),
    actor_user_id  uuid REFERENCES public.users (id),
    actor_agent_id text,
    read_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- One notification of a kind per user and post, so a retried transaction or a replay cannot repeat it.
CREATE UNIQUE INDEX notification_once ON notification (user_id, kind, post_id) WHERE post_id IS NOT NULL;
CREATE INDEX notification_inbox ON notification (user_id, id DESC);
CREATE INDEX notification_unread ON notification (user_id) WHERE read_at IS NULL;
