"""Response shapes of the search API (API.md: GET /api/v1/o/{org}/search)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from backend.forum.schemas import AuthorOut
from backend.search.related import RelatedThread


class SearchHit(msgspec.Struct):
    post_id: str
    thread_id: str
    thread_title: str
    thread_slug: str
    category_slug: str
    author: AuthorOut | None  # None for agent and system posts
    snippet_html: str  # escaped text of the post with matches wrapped in <mark>; safe to insert as HTML
    rank: float
    created_at: datetime


class SearchPage(msgspec.Struct):
    hits: list[SearchHit]
    next_cursor: str | None


class RelatedIn(msgspec.Struct, forbid_unknown_fields=True):
    """A thread being composed (POST /api/v1/o/{org}/related)."""

    title: str = ""
    body: str = ""
    k: int = 5
    category: str | None = None  # slug of the category being written in: its threads are favoured


class RelatedPage(msgspec.Struct):
    threads: list[RelatedThread]
