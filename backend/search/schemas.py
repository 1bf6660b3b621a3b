"""Response shapes of the search API (API.md: GET /api/v1/o/{org}/search)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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

    title: Annotated[str, msgspec.Meta(max_length=300)] = ""
    body: Annotated[str, msgspec.Meta(max_length=50_000)] = ""
    k: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    category: Annotated[str, msgspec.Meta(max_length=64)] | None = (
        None  # slug of the category being written in: its threads are favoured
    )


class RelatedPage(msgspec.Struct):
    threads: list[RelatedThread]
