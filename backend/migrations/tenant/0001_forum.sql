-- Forum domain (spec §9), one copy per tenant schema.
CREATE TABLE forum_settings (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    settings   jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO forum_settings (id) VALUES (true);

CREATE TABLE category (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    slug             text NOT NULL UNIQUE,
    description      text NOT NULL DEFAULT '',
    position         integer NOT NULL DEFAULT 0,
    qa_mode          boolean NOT NULL DEFAULT false,
    is_archived      boolean NOT NULL DEFAULT false,
    thread_count     integer NOT NULL DEFAULT 0,
    post_count       integer NOT NULL DEFAULT 0,
    last_activity_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE thread (
    id               uuid PRIMARY KEY,
    category_id      uuid NOT NULL REFERENCES category (id),
    author_user_id   uuid REFERENCES public.users (id),
    author_agent_id  text,
    title            text NOT NULL,
    slug             text NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'archived')),
    is_pinned        boolean NOT NULL DEFAULT false,
    is_solved        boolean NOT NULL DEFAULT false,
    solution_post_id uuid,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    view_count       integer NOT NULL DEFAULT 0,
    reply_count      integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    search           tsvector GENERATED ALWAYS AS (to_tsvector('english', title)) STORED
);
CREATE UNIQUE INDEX thread_slug ON thread (slug);
CREATE INDEX thread_latest ON thread (last_activity_at DESC, id DESC);
CREATE INDEX thread_category_latest ON thread (category_id, last_activity_at DESC, id DESC);
CREATE INDEX thread_search ON thread USING gin (search);

CREATE TABLE post (
    id               uuid PRIMARY KEY,
    thread_id        uuid NOT NULL REFERENCES thread (id),
    author_user_id   uuid REFERENCES public.users (id),
    author_agent_id  text,
    role             text NOT NULL DEFAULT 'human' CHECK (role IN ('human', 'agent', 'system')),
    reply_to_post_id uuid REFERENCES post (id),
    content_markdown text NOT NULL,
    content_html     text NOT NULL,
    edit_reason      text,
    is_deleted       boolean NOT NULL DEFAULT false,
    is_hidden        boolean NOT NULL DEFAULT false,
    agent_confidence numeric(4, 3),
    agent_model      text,
    agent_citations  jsonb,
    idempotency_key  text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    edited_at        timestamptz,
    CHECK (role <> 'human' OR author_user_id IS NOT NULL),
    CHECK (role <> 'agent' OR author_agent_id IS NOT NULL),
    search           tsvector GENERATED ALWAYS AS (to_tsvector('english', content_markdown)) STORED
);
CREATE INDEX post_thread ON post (thread_id, created_at, id);
CREATE INDEX post_author ON post (author_user_id, created_at DESC);
CREATE INDEX post_search ON post USING gin (search);

CREATE TABLE post_revision (
    id               uuid PRIMARY KEY,
    post_id          uuid NOT NULL REFERENCES post (id),
    revision         integer NOT NULL,
    content_markdown text NOT NULL,
    edit_reason      text,
    edited_by        uuid REFERENCES public.users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, revision)
);

CREATE TABLE reaction (
    id         uuid PRIMARY KEY,
    post_id    uuid NOT NULL REFERENCES post (id),
    user_id    uuid NOT NULL REFERENCES public.users (id),
    type       text NOT NULL CHECK (type IN ('like', 'upvote', 'downvote', 'laugh')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, user_id, type)
);

CREATE TABLE mention (
    post_id           uuid NOT NULL REFERENCES post (id),
    mentioned_user_id uuid REFERENCES public.users (id),
    mentioned_agent   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((mentioned_user_id IS NULL) <> (mentioned_agent IS NULL))
);
CREATE UNIQUE INDEX mention_user ON mention (post_id, mentioned_user_id) WHERE mentioned_user_id IS NOT NULL;
CREATE UNIQUE INDEX mention_agent ON mention (post_id, mentioned_agent) WHERE mentioned_agent IS NOT NULL;

CREATE TABLE moderation_flag (
    id                uuid PRIMARY KEY,
    post_id           uuid NOT NULL REFERENCES post (id),
    flagger_user_id   uuid REFERENCES public.users (id),
    flagger_agent_id  text,
    reason            text NOT NULL CHECK (reason IN ('spam', 'harassment', 'off_topic', 'duplicate', 'other')),
    notes             text,
    status            text NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'reviewed', 'dismissed', 'action_taken')),
    resolution_action text,
    resolution_notes  text,
    resolved_by       uuid REFERENCES public.users (id),
    resolved_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX moderation_flag_once ON moderation_flag (post_id, flagger_user_id)
    WHERE status = 'open' AND flagger_user_id IS NOT NULL;
CREATE INDEX moderation_flag_queue ON moderation_flag (status, created_at DESC);
