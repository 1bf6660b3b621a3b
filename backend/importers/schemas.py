"""What an importer reads, in one neutral shape whatever the source (Stack Exchange dump, JSONL)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class SourceUser(msgspec.Struct, frozen=True, kw_only=True):
    external_id: str
    name: str  # display name in the source; the placeholder account's username is derived from it


class SourcePost(msgspec.Struct, frozen=True, kw_only=True):
    external_id: str
    author: str  # external user id (a SourceUser of the same source)
    body: str  # markdown (raw HTML inside is allowed: the renderer sanitizes it)
    created_at: datetime
    reply_to: str | None = None  # external id of the post this one comments on


class SourceThread(msgspec.Struct, frozen=True, kw_only=True):
    external_id: str
    title: str
    category: str | None  # category name in the source; None: the import's default category
    tags: list[str]
    question: SourcePost
    replies: list[SourcePost]  # answers and comments, oldest first
    accepted: str | None = None  # external id of the accepted answer
    views: int = 0


class SourceDuplicate(msgspec.Struct, frozen=True, kw_only=True):
    thread: str  # external id of the duplicate question
    original: str  # external id of the question it duplicates


class ImportSource(msgspec.Struct, kw_only=True):
    name: str  # stable id of the source, e.g. "stackexchange:beer": the key of every import record
    default_category: str  # category name for threads without one
    qa_mode: bool  # whether categories created by the import are Q&A categories
    users: dict[str, SourceUser]
    threads: list[SourceThread]
    duplicates: list[SourceDuplicate] = []
