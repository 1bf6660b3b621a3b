"""Request and response shapes of the moderation API (API.md: flags, queue, resolve)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

FlagReason = Literal["spam", "harassment", "off_topic", "duplicate", "other"]
FlagStatus = Literal["open", "reviewed", "dismissed", "action_taken"]
QueueStatus = Literal["open", "dismissed", "action_taken", "all"]
ResolveAction = Literal["dismiss", "hide", "restore", "close_thread"]
Notes = Annotated[str, msgspec.Meta(max_length=2000)]


class FlagIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: FlagReason
    notes: Notes | None = None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    action: ResolveAction
    notes: Notes | None = None


class UserRef(msgspec.Struct):
    id: str
    username: str


class FlagOut(msgspec.Struct):
    id: str
    post_id: str
    reason: str
    notes: str | None
    status: str
    flagger: UserRef | None  # None for a system or agent flag
    flagger_agent_id: str | None
    resolution_action: str | None
    resolution_notes: str | None
    resolved_by: UserRef | None
    resolved_at: datetime | None
    created_at: datetime
    category: str | None = None  # agent flags: spam | toxicity | duplicate
    score: float | None = None  # agent flags: the category's score
    rules: list[str] = msgspec.field(default_factory=list)  # agent flags: the rules that fired


class FlagEnvelope(msgspec.Struct):
    flag: FlagOut


class QueuePost(msgspec.Struct):
    id: str
    excerpt: str  # the markdown, whitespace collapsed and shortened; moderators see hidden posts
    author: UserRef | None
    author_agent_id: str | None
    role: str
    is_hidden: bool
    is_deleted: bool
    created_at: datetime


class QueueThread(msgspec.Struct):
    id: str
    title: str
    slug: str
    status: str
    category_id: str


class MemberHistory(msgspec.Struct):
    """What moderators weigh before acting on an author (all of this org)."""

    role: str | None = None  # None: no longer a member
    member_since: datetime | None = None
    posts: int = 0
    hidden_posts: int = 0
    flags_received: int = 0
    flags_upheld: int = 0
    flags_dismissed: int = 0
    silenced_until: datetime | None = None


class SilenceIn(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=0, le=365)]  # 0 lifts the silence
    reason: Notes | None = None


class SilenceOut(msgspec.Struct):
    username: str
    silenced_until: datetime | None
    reason: str | None


class QueueSummary(msgspec.Struct):
    open_posts: int  # posts with at least one open flag


class QueueItem(msgspec.Struct):
    """The flags of one post (matching the requested status), newest flag first."""

    post: QueuePost
    thread: QueueThread
    flag_count: int
    reasons: list[str]
    flaggers: list[str]  # usernames, or agent ids such as "system:spam-heuristic"
    latest_flag_at: datetime
    flags: list[FlagOut]
    author_history: MemberHistory | None = None  # human authors only


class QueuePage(msgspec.Struct):
    items: list[QueueItem]
    next_cursor: str | None


class ResolveOut(msgspec.Struct):
    flag: FlagOut
    resolved_flag_ids: list[str]  # every flag this resolution closed (the given one first)
    post_is_hidden: bool
    thread_status: str
