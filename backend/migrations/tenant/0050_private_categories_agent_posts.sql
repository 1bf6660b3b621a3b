-- Private categories (issue 9): visible to the org's moderators/admins and to their members only.
ALTER TABLE category ADD COLUMN is_private boolean NOT NULL DEFAULT false;
-- Who an agent pages when it is not confident about a question in this category (usernames).
ALTER TABLE category ADD COLUMN escalation_usernames text[] NOT NULL DEFAULT '{}';
CREATE TABLE category_member (
    category_id uuid NOT NULL REFERENCES category (id),
    user_id     uuid NOT NULL REFERENCES public.users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (category_id, user_id)
);
-- What an agent post is for (welcome, faq_answer, summary …); a greeting can never be a thread's solution.
ALTER TABLE post ADD COLUMN agent_purpose text;
ALTER TABLE post ADD COLUMN solution_eligible boolean NOT NULL DEFAULT true;
-- Which post triggered an agent's answer (time to first response is measured from it).
ALTER TABLE post ADD COLUMN answers_post_id uuid REFERENCES post (id);
ALTER TABLE agent_feedback ADD COLUMN solved boolean NOT NULL DEFAULT false;
ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_kind_check;
ALTER TABLE notification ADD CONSTRAINT notification_kind_check
    CHECK (kind IN ('mention', 'reply', 'agent_escalation', 'welcome'));
