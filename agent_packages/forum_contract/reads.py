"""Typed read queries agent packages may call (`await ctx.query(ThreadQuery(...))`) and their results.

Every read that returns forum content is visibility-checked for `asker_user_id`: private categories the
asker may not open, hidden and deleted posts are never returned, so an agent cannot quote or cite them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from engine.agents.api import ReadQuery


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    username: str
    created_at: str


class UserQuery(ReadQuery[UserInfo], frozen=True, kw_only=True):
    read_name: ClassVar[str] = "forum.user"
    result_type: ClassVar[type] = UserInfo
    user_id: str


class UserPostCountQuery(ReadQuery[int], frozen=True, kw_only=True):
    read_name: ClassVar[str] = "forum.user_post_count"
    result_type: ClassVar[type] = int
    user_id: str


class UserThreadCountQuery(ReadQuery[int], frozen=True, kw_only=True):
    """How many threads the member started in this org (their first thread makes 1)."""

    read_name: ClassVar[str] = "forum.user_thread_count"
    result_type: ClassVar[type] = int
    user_id: str


class PostInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    thread_id: str
    thread_title: str
    body: str  # empty when hidden or deleted
    role: str
    author: str | None
    author_user_id: str | None


class PostQuery(ReadQuery[PostInfo], frozen=True, kw_only=True):
    read_name: ClassVar[str] = "forum.post"
    result_type: ClassVar[type] = PostInfo
    post_id: str


class CategoryInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    slug: str
    description: str


class CategoriesQuery(ReadQuery[list[CategoryInfo]], frozen=True, kw_only=True):
    """The public (non-private, non-archived) categories."""

    read_name: ClassVar[str] = "forum.categories"
    result_type: ClassVar[type] = list[CategoryInfo]


class ThreadReplyCountQuery(ReadQuery[int], frozen=True, kw_only=True):
    read_name: ClassVar[str] = "forum.thread_reply_count"
    result_type: ClassVar[type] = int
    thread_id: str


class ThreadPost(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    author: str | None
    role: str  # human | agent
    body: str
    is_solution: bool = False
    score: int = 0  # likes and upvotes minus downvotes


class ThreadView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    slug: str
    category_id: str
    category_slug: str
    is_solved: bool
    solution_post_id: str | None
    posts: list[ThreadPost]  # visible posts, oldest first


class ThreadQuery(ReadQuery[ThreadView], frozen=True, kw_only=True):
    """A thread and its visible posts, or LookupError when the asker may not open it (or it is gone)."""

    read_name: ClassVar[str] = "forum.thread"
    result_type: ClassVar[type] = ThreadView
    thread_id: str
    asker_user_id: str | None = None  # None: what any member may see
    # True: the reader writes only into this same thread (a summary), whose readers may see it all
    for_same_thread: bool = False
    limit: int = 200
    human_only: bool = False


class RelatedThread(msgspec.Struct, frozen=True, kw_only=True):
    thread_id: str
    title: str
    slug: str
    category_id: str
    category_slug: str
    score: float  # higher is better; comparable within one call only
    text_score: float  # the text-relevance part alone, 0..1
    is_solved: bool
    solution_post_id: str | None
    best_post_id: str | None  # the visible reply that best matches (the accepted answer when it matches)
    created_at: str  # ISO 8601


class RelatedThreadsQuery(ReadQuery[list[RelatedThread]], frozen=True, kw_only=True):
    """The earlier threads most related to `text` that the asker may open, best first."""

    read_name: ClassVar[str] = "forum.related_threads"
    result_type: ClassVar[type] = list[RelatedThread]
    text: str
    k: int = 5
    asker_user_id: str | None = None
    exclude_thread_ids: list[str] = []
    category_id: str | None = None


class CategoryInfoQuery(ReadQuery[CategoryInfo], frozen=True, kw_only=True):
    read_name: ClassVar[str] = "forum.category"
    result_type: ClassVar[type] = CategoryInfo
    category_id: str


ALL_READS: tuple[type[ReadQuery[object]], ...] = (
    UserQuery,
    UserPostCountQuery,
    UserThreadCountQuery,
    PostQuery,
    CategoriesQuery,
    ThreadReplyCountQuery,
    ThreadQuery,
    RelatedThreadsQuery,
    CategoryInfoQuery,
)


class ModerationFactsQuery(ReadQuery[dict[str, Any]], frozen=True, kw_only=True):
    """What the moderation scorer needs about one post revision (served by the moderation domain)."""

    read_name: ClassVar[str] = "forum.moderation_facts"
    result_type: ClassVar[Any] = dict[str, Any]
    post_id: str
    revision: int = 0
    as_of: str | None = None


ALL_READS = (*ALL_READS, ModerationFactsQuery)


class ExpertCandidatesQuery(ReadQuery[dict[str, Any]], frozen=True, kw_only=True):
    """Who could answer a thread, from participation history in its category (served by routing)."""

    read_name: ClassVar[str] = "forum.expert_candidates"
    result_type: ClassVar[Any] = dict[str, Any]
    thread_id: str
    limit: int = 3
    per_user_daily: int = 2
    window_days: int = 180


class DigestDataQuery(ReadQuery[dict[str, Any]], frozen=True, kw_only=True):
    """A category's week: top threads, unanswered questions, solved ones (served by digest)."""

    read_name: ClassVar[str] = "forum.digest_data"
    result_type: ClassVar[Any] = dict[str, Any]
    category_id: str
    days: int = 7
    top: int = 5


ALL_READS = (*ALL_READS, ExpertCandidatesQuery, DigestDataQuery)
