"""Response shapes of the search API (API.md: GET /api/v1/o/{org}/search)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from backend.forum.schemas import AuthorOut


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
