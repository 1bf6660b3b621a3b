"""The named, read-only queries agent packages may call through `AgentContext.read`.

Each runs in the tenant's schema: inside the caller's transaction when one is open for that tenant
(the router), otherwise in a short transaction of its own (the runner, outside its transactions).
Results are plain JSON-able values: they are recorded in the execution's context for audit and replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from backend.moderation.reads import moderation_facts
from engine import db
from engine.agents.api import Reader
from engine.tenancy import Tenant, maybe_current_tenant, tenant_scope


async def user_post_count(user_id: str) -> int:
    n: int = await db.fetchval(
        "SELECT count(*) FROM post WHERE author_user_id = $1 AND role = 'human'", uuid.UUID(user_id)
    )
    return n


async def user(user_id: str) -> dict[str, Any]:
    row = await db.fetchrow("SELECT id, username, created_at FROM users WHERE id = $1", uuid.UUID(user_id))
    if row is None:
        raise LookupError("user not found")
    return {"id": str(row["id"]), "username": row["username"], "created_at": row["created_at"].isoformat()}


async def post(post_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT p.id, p.thread_id, p.content_markdown, p.role, p.author_agent_id, p.is_deleted, p.is_hidden,"
        " u.username, t.title FROM post p JOIN thread t ON t.id = p.thread_id"
        " LEFT JOIN users u ON u.id = p.author_user_id WHERE p.id = $1",
        uuid.UUID(post_id),
    )
    if row is None:
        raise LookupError("post not found")
    visible = not (row["is_deleted"] or row["is_hidden"])
    return {
        "id": str(row["id"]),
        "thread_id": str(row["thread_id"]),
        "thread_title": row["title"],
        "body": row["content_markdown"] if visible else "",
        "role": row["role"],
        "author": row["username"] or row["author_agent_id"],
    }


async def categories() -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT name, slug, description FROM category WHERE NOT is_archived ORDER BY position, name")
    return [dict(r) for r in rows]


async def thread_reply_count(thread_id: str) -> int:
    n: int = await db.fetchval("SELECT reply_count FROM thread WHERE id = $1", uuid.UUID(thread_id)) or 0
    return n


async def thread_posts(thread_id: str, limit: int = 200) -> dict[str, Any]:
    """A thread's title and its visible posts, oldest first (at most `limit`)."""
    title = await db.fetchval("SELECT title FROM thread WHERE id = $1", uuid.UUID(thread_id))
    if title is None:
        raise LookupError("thread not found")
    rows = await db.fetch(
        "SELECT p.id, p.created_at, p.content_markdown, coalesce(u.username, p.author_agent_id) AS author FROM post p"
        " LEFT JOIN users u ON u.id = p.author_user_id WHERE p.thread_id = $1 AND NOT p.is_deleted"
        " AND NOT p.is_hidden AND p.role = 'human' ORDER BY p.created_at, p.id LIMIT $2",
        uuid.UUID(thread_id),
        limit,
    )
    posts = [
        {"id": str(r["id"]), "author": r["author"], "body": r["content_markdown"], "at": r["created_at"].isoformat()}
        for r in rows
    ]
    return {"title": title, "posts": posts}


QUERIES: dict[str, Callable[..., Awaitable[Any]]] = {
    "forum.user_post_count": user_post_count,
    "forum.user": user,
    "forum.post": post,
    "forum.categories": categories,
    "forum.thread_reply_count": thread_reply_count,
    "forum.thread_posts": thread_posts,
    "forum.moderation_facts": moderation_facts,
}


def reader_for(tenant_slug: str) -> Reader:
    async def read(name: str, params: Mapping[str, Any]) -> Any:
        query = QUERIES.get(name)
        if query is None:
            raise LookupError(f"unknown read query {name!r}")
        current = maybe_current_tenant()
        if db.in_transaction() and current is not None and current.slug == tenant_slug:
            return await query(**params)
        async with db.transaction():
            async with tenant_scope(db.current_connection(), Tenant(slug=tenant_slug)):
                return await query(**params)

    return read
