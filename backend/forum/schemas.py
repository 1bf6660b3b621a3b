"""Request and response shapes of the forum API (API.md, forum routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

CategorySlug = Annotated[
    str, msgspec.Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
]
Title = Annotated[str, msgspec.Meta(min_length=3, max_length=200)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=50_000)]
ReactionType = Literal["like", "upvote", "downvote", "laugh"]


class CategoryIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    slug: CategorySlug | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    position: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    qa_mode: bool = False
    # visible to moderators, admins and the category's members only
    is_private: bool = False
    # who an agent pages when it is not confident about a question here (usernames; else the moderators)
    escalation_usernames: Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]], msgspec.Meta(max_length=10)] = (
        msgspec.field(default_factory=list)
    )


class LatestThreadOut(msgspec.Struct):
    id: str
    title: str
    slug: str
    last_activity_at: datetime


class CategoryOut(msgspec.Struct):
    id: str
    name: str
    slug: str
    description: str
    position: int
    qa_mode: bool
    thread_count: int
    post_count: int
    last_activity_at: datetime | None
    latest_thread: LatestThreadOut | None = None
    is_private: bool = False  # visible to moderators, admins and its members only


class CategoryList(msgspec.Struct):
    categories: list[CategoryOut]


class CategoryEnvelope(msgspec.Struct):
    category: CategoryOut


class AuthorOut(msgspec.Struct):
    id: str
    username: str


class ThreadIn(msgspec.Struct, forbid_unknown_fields=True):
    category: CategorySlug
    title: Title
    body: Body


class ReplyIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Body
    reply_to_post_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class EditIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Body
    edit_reason: Annotated[str, msgspec.Meta(max_length=300)] | None = None


class ReactionIn(msgspec.Struct, forbid_unknown_fields=True):
    type: ReactionType


class SolveIn(msgspec.Struct, forbid_unknown_fields=True):
    post_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Body


class PreviewOut(msgspec.Struct):
    html: str


class ThreadOut(msgspec.Struct):
    id: str
    category_id: str
    category_slug: str
    title: str
    slug: str
    status: str
    is_pinned: bool
    is_solved: bool
    solution_post_id: str | None
    author: AuthorOut | None
    reply_count: int
    view_count: int
    last_activity_at: datetime
    created_at: datetime


class PostOut(msgspec.Struct):
    id: str
    thread_id: str
    author: AuthorOut | None
    author_agent_id: str | None
    role: str
    is_agent_generated: bool
    html: str
    body: str | None
    reply_to_post_id: str | None
    is_deleted: bool
    is_hidden: bool
    edit_reason: str | None
    edited_at: datetime | None
    created_at: datetime
    agent_confidence: float | None
    agent_model: str | None
    agent_citations: Any
    reactions: dict[str, int]
    my_reactions: list[str]
    is_solution: bool


class ThreadPage(msgspec.Struct):
    threads: list[ThreadOut]
    next_cursor: str | None


class ThreadDetail(msgspec.Struct):
    thread: ThreadOut
    posts: list[PostOut]
    next_cursor: str | None


class ThreadCreatedOut(msgspec.Struct):
    thread: ThreadOut
    post: PostOut


class PostEnvelope(msgspec.Struct):
    post: PostOut


class ReactionOut(msgspec.Struct):
    post_id: str
    type: str
    count: int
    mine: bool


class CategoryActivity(msgspec.Struct):
    """A category's counters after a change (for the org and category pages' live lists)."""

    id: str
    thread_count: int
    post_count: int
    last_activity_at: datetime | None


class LiveView(msgspec.Struct, omit_defaults=True):
    """What a forum signal changed, as any reader of the thread sees it now: published in the signal's
    stream entry (`engine.signals.attach_view`), merged into the websocket event's `data` by
    `backend.realtime_channels.event_data`. Viewer-neutral: a hidden or deleted post's content is never
    in it (`html` empty, `body` None), `my_reactions` is empty (the page keeps its own)."""

    post: PostOut | None = None
    thread: ThreadOut | None = None
    category: CategoryActivity | None = None
    reactions: dict[str, int] | None = None
    # the post or thread is in a private category: its events never go on the org-wide channel (only on
    # the category and thread channels, whose subscribers were checked against the category)
    private: bool = False
