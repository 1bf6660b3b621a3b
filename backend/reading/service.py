""" "What changed since you last read": a returning member sees a short summary of the posts added to a
thread since they last marked it read (the summary agent's own summarizer, no model, no directive: it is
per reader and read-only), each point linked to its post. Marking read is explicit (`POST …/read`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from agent_packages.forum_summary_agent.agent import post_link
from agent_packages.forum_summary_agent.summarizer import PostText, summarize
from backend.context import RequestContext
from backend.forum.queries import thread_row
from backend.forum.visibility import require_visible_thread
from engine import db

MAX_POSTS = 200
MAX_WORDS = 120


class ChangePoint(msgspec.Struct):
    author: str
    text: str
    post_id: str | None
    link: str | None


class ThreadChanges(msgspec.Struct):
    thread_id: str
    last_read_at: datetime | None  # None: never marked read (everything is new)
    new_posts: int
    points: list[ChangePoint]


class ReadMark(msgspec.Struct):
    thread_id: str
    last_read_at: datetime


async def changes_since_last_read(ctx: RequestContext, thread_ref: str) -> ThreadChanges:
    ctx.require_role("member")
    user_id = uuid.UUID(ctx.require_user().user_id)
    thread = await thread_row(thread_ref)
    await require_visible_thread(ctx, thread)
    last = await db.fetchval(
        "SELECT last_read_at FROM thread_read WHERE user_id = $1 AND thread_id = $2", user_id, thread["id"]
    )
    rows = await db.fetch(
        "SELECT p.id, p.content_markdown, coalesce(u.username, p.author_agent_id) AS author FROM post p"
        " LEFT JOIN users u ON u.id = p.author_user_id WHERE p.thread_id = $1 AND NOT p.is_deleted"
        " AND NOT p.is_hidden AND ($2::timestamptz IS NULL OR p.created_at > $2)"
        " AND p.author_user_id IS DISTINCT FROM $3 ORDER BY p.created_at, p.id LIMIT $4",
        thread["id"],
        last,
        user_id,
        MAX_POSTS,
    )
    slug = ctx.require_org().slug
    posts = [PostText(author=r["author"] or "someone", body=r["content_markdown"], ref=str(r["id"])) for r in rows]
    points = [
        ChangePoint(
            author=p.author,
            text=p.text(),
            post_id=p.ref,
            link=post_link(slug, str(thread["id"]), p.ref) if p.ref else None,
        )
        for p in summarize(posts, max_words=MAX_WORDS)
    ]
    return ThreadChanges(thread_id=str(thread["id"]), last_read_at=last, new_posts=len(rows), points=points)


async def mark_read(ctx: RequestContext, thread_ref: str) -> ReadMark:
    ctx.require_role("member")
    user_id = uuid.UUID(ctx.require_user().user_id)
    thread = await thread_row(thread_ref)
    await require_visible_thread(ctx, thread)
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO thread_read (user_id, thread_id, last_read_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id, thread_id) DO UPDATE SET last_read_at = EXCLUDED.last_read_at",
        user_id,
        thread["id"],
        now,
    )
    return ReadMark(thread_id=str(thread["id"]), last_read_at=now)
