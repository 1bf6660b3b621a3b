"""Response shapes of the profile API (GET /api/v1/o/{org}/users/{username})."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ProfileThread(msgspec.Struct):
    id: str
    title: str
    slug: str
    category_slug: str
    reply_count: int
    is_solved: bool
    created_at: datetime


class ProfilePost(msgspec.Struct):
    id: str
    thread_id: str
    thread_title: str
    excerpt: str  # the markdown, whitespace collapsed and shortened
    created_at: datetime


class ProfileCounts(msgspec.Struct):
    threads: int
    replies: int
    accepted_answers: int
    reactions_received: dict[str, int]  # by type


class ProfileOut(msgspec.Struct):
    username: str
    role: str | None  # in this org; None when not (or no longer) a member
    member_since: datetime | None
    joined_at: datetime  # the account
    counts: ProfileCounts
    threads: list[ProfileThread]
    replies: list[ProfilePost]
    accepted_answers: list[ProfilePost]
