"""A member's public page in one org: their threads, replies, accepted answers and reactions received.
Only what every reader of the org may see (no hidden or deleted posts)."""

from __future__ import annotations

import uuid
from typing import Any

from backend.context import RequestContext
from backend.errors import NotFound
from backend.profiles.schemas import ProfileCounts, ProfileOut, ProfilePost, ProfileThread
from engine import db

LIST_LIMIT = 10
EXCERPT_CHARS = 200
_VISIBLE = "NOT p.is_hidden AND NOT p.is_deleted"


def _excerpt(markdown: str) -> str:
    text = " ".join(markdown.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rstrip() + "…"


def _post(row: Any) -> ProfilePost:
    return ProfilePost(
        id=str(row["id"]),
        thread_id=str(row["thread_id"]),
        thread_title=row["title"],
        excerpt=_excerpt(row["content_markdown"]),
        created_at=row["created_at"],
    )


async def get_profile(ctx: RequestContext, username: str) -> ProfileOut:
    org = ctx.require_org()
    user = await db.fetchrow(
        "SELECT u.id, u.username, u.created_at, m.role, m.created_at AS member_since FROM users u"
        " LEFT JOIN memberships m ON m.user_id = u.id AND m.org_id = $1 WHERE lower(u.username) = lower($2)",
        uuid.UUID(org.id),
        username[:100],
    )
    if user is None:
        raise NotFound(f"no user named {username!r}")
    uid = user["id"]
    counts = await db.fetchrow(
        f"SELECT count(*) FILTER (WHERE p.id = first.id) AS threads,"
        f" count(*) FILTER (WHERE p.id <> first.id) AS replies,"
        f" count(*) FILTER (WHERE t.solution_post_id = p.id) AS accepted"
        f" FROM post p JOIN thread t ON t.id = p.thread_id"
        f" JOIN LATERAL (SELECT id FROM post f WHERE f.thread_id = t.id ORDER BY f.created_at, f.id LIMIT 1) first"
        f" ON true WHERE p.author_user_id = $1 AND {_VISIBLE}",
        uid,
    )
    reactions = await db.fetch(
        f"SELECT r.type, count(*) AS n FROM reaction r JOIN post p ON p.id = r.post_id"
        f" WHERE p.author_user_id = $1 AND r.user_id <> $1 AND {_VISIBLE} GROUP BY r.type",
        uid,
    )
    threads = await db.fetch(
        "SELECT t.id, t.title, t.slug, c.slug AS category_slug, t.reply_count, t.is_solved, t.created_at"
        " FROM thread t JOIN category c ON c.id = t.category_id"
        " WHERE t.author_user_id = $1 ORDER BY t.created_at DESC LIMIT $2",
        uid,
        LIST_LIMIT,
    )
    replies = await db.fetch(
        f"SELECT p.id, p.thread_id, t.title, p.content_markdown, p.created_at FROM post p"
        f" JOIN thread t ON t.id = p.thread_id WHERE p.author_user_id = $1 AND {_VISIBLE}"
        f" AND p.id <> (SELECT f.id FROM post f WHERE f.thread_id = t.id ORDER BY f.created_at, f.id LIMIT 1)"
        f" ORDER BY p.created_at DESC LIMIT $2",
        uid,
        LIST_LIMIT,
    )
    accepted = await db.fetch(
        f"SELECT p.id, p.thread_id, t.title, p.content_markdown, p.created_at FROM post p"
        f" JOIN thread t ON t.solution_post_id = p.id WHERE p.author_user_id = $1 AND {_VISIBLE}"
        f" ORDER BY p.created_at DESC LIMIT $2",
        uid,
        LIST_LIMIT,
    )
    return ProfileOut(
        username=user["username"],
        role=user["role"],
        member_since=user["member_since"],
        joined_at=user["created_at"],
        counts=ProfileCounts(
            threads=counts["threads"],
            replies=counts["replies"],
            accepted_answers=counts["accepted"],
            reactions_received={r["type"]: r["n"] for r in reactions},
        ),
        threads=[
            ProfileThread(
                id=str(t["id"]),
                title=t["title"],
                slug=t["slug"],
                category_slug=t["category_slug"],
                reply_count=t["reply_count"],
                is_solved=t["is_solved"],
                created_at=t["created_at"],
            )
            for t in threads
        ],
        replies=[_post(r) for r in replies],
        accepted_answers=[_post(r) for r in accepted],
    )
