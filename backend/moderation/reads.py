"""Agent reads of the moderation domain (registered in backend/agents/readers.py).

`forum.moderation_facts` gathers what the moderation agent's scorer may know about one post: its text,
the thread title when it opens the thread, the author's account age and earlier posts, how often the
same text appeared in other threads or from other accounts recently, and (for a new thread) the most
similar existing threads. Ages are measured at `as_of` (the signal's time), so a policy dry run over old
signals sees the author as they were then.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from engine import db

REPEAT_WINDOW = "7 days"
MIN_REPEAT_CHARS = 24
_NORMALIZED = "btrim(regexp_replace(lower({col}), '[^a-z0-9]+', ' ', 'g'))"


async def moderation_facts(post_id: str, revision: int = 0, as_of: str | None = None) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT p.id, p.thread_id, p.content_markdown, p.role, p.author_user_id, p.is_deleted, p.is_hidden,"
        " p.created_at, t.title, u.created_at AS user_created_at,"
        " (SELECT f.id FROM post f WHERE f.thread_id = p.thread_id ORDER BY f.created_at, f.id LIMIT 1) = p.id"
        " AS is_first_post,"
        f" {_NORMALIZED.format(col='p.content_markdown')} AS normalized"
        " FROM post p JOIN thread t ON t.id = p.thread_id LEFT JOIN users u ON u.id = p.author_user_id WHERE p.id = $1",
        uuid.UUID(post_id),
    )
    if row is None or row["role"] != "human" or row["is_deleted"] or row["author_user_id"] is None:
        return {"skip": True, "post_id": post_id}
    at = datetime.fromisoformat(as_of) if as_of else datetime.now(UTC)
    author = row["author_user_id"]
    age = (at - row["user_created_at"]).total_seconds() if row["user_created_at"] else None
    earlier = await db.fetchval(
        "SELECT count(*) FROM post WHERE author_user_id = $1 AND role = 'human' AND created_at < $2 AND id <> $3",
        author,
        row["created_at"],
        row["id"],
    )
    other_threads = other_accounts = 0
    if len(row["normalized"]) >= MIN_REPEAT_CHARS:
        repeats = await db.fetchrow(
            "SELECT count(DISTINCT thread_id) FILTER (WHERE thread_id <> $2) AS threads,"
            " count(DISTINCT author_user_id) FILTER (WHERE author_user_id <> $3) AS accounts FROM post"
            f" WHERE id <> $1 AND role = 'human' AND created_at > $4::timestamptz - interval '{REPEAT_WINDOW}'"
            f" AND created_at <= $4 AND {_NORMALIZED.format(col='content_markdown')} = $5",
            row["id"],
            row["thread_id"],
            author,
            at,
            row["normalized"],
        )
        other_threads, other_accounts = int(repeats["threads"]), int(repeats["accounts"])
    related: list[dict[str, Any]] = []
    if row["is_first_post"]:
        related = await _related(row["title"], row["content_markdown"], str(row["thread_id"]), str(author))
    return {
        "post_id": str(row["id"]),
        "thread_id": str(row["thread_id"]),
        "revision": revision,
        "body": row["content_markdown"],
        "title": row["title"] if row["is_first_post"] else "",
        "is_first_post": bool(row["is_first_post"]),
        "author_user_id": str(author),
        "account_age_s": age,
        "author_post_count": int(earlier),
        "same_text_other_threads": other_threads,
        "same_text_other_accounts": other_accounts,
        "related": related,
    }


async def _related(title: str, body: str, thread_id: str, author_id: str) -> list[dict[str, Any]]:
    """The threads most similar to a new thread that its author may open (`backend.search.related`)."""
    from backend.search import related as retrieval

    found = await retrieval.related_threads(body, 3, visible_to=author_id, title=title, exclude_thread_ids=[thread_id])
    out = []
    for item in found:
        score = item.text_score
        out.append({"thread_id": item.thread_id, "title": item.title, "score": float(max(0.0, min(score, 1.0)))})
    return out
