"""Forum reads: categories, thread lists, threads and posts as the API shows them (hidden posts
concealed from non-moderators, deleted ones emptied). Nothing here writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from backend.context import RequestContext
from backend.errors import NotFound
from backend.forum.schemas import (
    AuthorOut,
    CategoryActivity,
    CategoryOut,
    LatestThreadOut,
    PostOut,
    ThreadOut,
    ThreadPage,
)
from backend.forum.visibility import viewer_of, visible_category_ids
from backend.pagination import cursor_id, cursor_time, decode_cursor, encode_cursor, page_limit, parse_uuid
from engine import db


def category_out(row: Any) -> CategoryOut:
    latest = None
    if row["latest_id"] is not None:
        latest = LatestThreadOut(
            id=str(row["latest_id"]),
            title=row["latest_title"],
            slug=row["latest_slug"],
            last_activity_at=row["latest_activity"],
        )
    return CategoryOut(
        id=str(row["id"]),
        name=row["name"],
        slug=row["slug"],
        description=row["description"],
        position=row["position"],
        qa_mode=row["qa_mode"],
        thread_count=row["thread_count"],
        post_count=row["post_count"],
        last_activity_at=row["last_activity_at"],
        latest_thread=latest,
        is_private=row["is_private"],
    )


async def list_categories(ctx: RequestContext) -> list[CategoryOut]:
    rows = await db.fetch(
        "SELECT c.*, l.id AS latest_id, l.title AS latest_title, l.slug AS latest_slug,"
        " l.last_activity_at AS latest_activity FROM category c"
        " LEFT JOIN LATERAL (SELECT id, title, slug, last_activity_at FROM thread t"
        "   WHERE t.category_id = c.id ORDER BY last_activity_at DESC, id DESC LIMIT 1) l ON true"
        " WHERE NOT c.is_archived AND c.id = ANY($1::uuid[]) ORDER BY c.position, c.name",
        await visible_category_ids(viewer_of(ctx)),
    )
    return [category_out(r) for r in rows]


async def category_is_private(category_id: uuid.UUID) -> bool:
    return bool(await db.fetchval("SELECT is_private FROM category WHERE id = $1", category_id))


async def category_activity(category_id: uuid.UUID) -> CategoryActivity:
    row = await db.fetchrow(
        "SELECT id, thread_count, post_count, last_activity_at FROM category WHERE id = $1", category_id
    )
    if row is None:
        raise NotFound("category not found")
    return CategoryActivity(
        id=str(row["id"]),
        thread_count=row["thread_count"],
        post_count=row["post_count"],
        last_activity_at=row["last_activity_at"],
    )


THREAD_SELECT = (
    "SELECT t.*, c.slug AS category_slug, u.username AS author_username FROM thread t"
    " JOIN category c ON c.id = t.category_id LEFT JOIN users u ON u.id = t.author_user_id"
)


def thread_out(row: Any) -> ThreadOut:
    author = (
        AuthorOut(id=str(row["author_user_id"]), username=row["author_username"]) if row["author_user_id"] else None
    )
    return ThreadOut(
        id=str(row["id"]),
        category_id=str(row["category_id"]),
        category_slug=row["category_slug"],
        title=row["title"],
        slug=row["slug"],
        status=row["status"],
        is_pinned=row["is_pinned"],
        is_solved=row["is_solved"],
        solution_post_id=str(row["solution_post_id"]) if row["solution_post_id"] else None,
        author=author,
        reply_count=row["reply_count"],
        view_count=row["view_count"],
        last_activity_at=row["last_activity_at"],
        created_at=row["created_at"],
    )


async def list_threads(
    ctx: RequestContext, *, category_slug: str | None, cursor: str | None, limit: int | None
) -> ThreadPage:
    page = page_limit(limit)
    args: list[Any] = [await visible_category_ids(viewer_of(ctx))]
    where: list[str] = ["t.category_id = ANY($1::uuid[])"]
    if category_slug is not None:
        category_id = await db.fetchval("SELECT id FROM category WHERE slug = $1", category_slug)
        if category_id is None:
            raise NotFound("category not found")
        args.append(category_id)
        where.append(f"t.category_id = ${len(args)}")
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        args += [cursor_time(at), cursor_id(last_id)]
        where.append(f"(t.last_activity_at, t.id) < (${len(args) - 1}, ${len(args)})")
    args.append(page + 1)
    sql = THREAD_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ${len(args)}"
    rows = await db.fetch(sql, *args)
    more = len(rows) > page
    rows = rows[:page]
    next_cursor = encode_cursor(rows[-1]["last_activity_at"], rows[-1]["id"]) if more else None
    return ThreadPage(threads=[thread_out(r) for r in rows], next_cursor=next_cursor)


async def thread_row(id_or_slug: str, *, lock: bool = False) -> Any:
    suffix = " FOR UPDATE OF t" if lock else ""
    try:
        thread_id = uuid.UUID(id_or_slug)
        row = await db.fetchrow(THREAD_SELECT + " WHERE t.id = $1" + suffix, thread_id)
    except ValueError:
        row = await db.fetchrow(THREAD_SELECT + " WHERE t.slug = $1" + suffix, id_or_slug)
    if row is None:
        raise NotFound("thread not found")
    return row


POST_SELECT = """
SELECT p.*, u.username AS author_username, t.solution_post_id,
       coalesce((SELECT jsonb_object_agg(type, n) FROM (SELECT type, count(*) AS n FROM reaction r
                 WHERE r.post_id = p.id GROUP BY type) x), '{}'::jsonb) AS reaction_counts,
       coalesce((SELECT array_agg(type ORDER BY type) FROM reaction r
                 WHERE r.post_id = p.id AND r.user_id = $2), '{}') AS mine
FROM post p JOIN thread t ON t.id = p.thread_id LEFT JOIN users u ON u.id = p.author_user_id
"""


def post_out(row: Any, *, can_see_hidden: bool, viewer: str | None) -> PostOut:
    counts = row["reaction_counts"]
    if isinstance(counts, str):
        counts = msgspec.json.decode(counts)
    citations = row["agent_citations"]
    if isinstance(citations, str):
        citations = msgspec.json.decode(citations)
    concealed = row["is_deleted"] or (row["is_hidden"] and not can_see_hidden)
    is_author = viewer is not None and row["author_user_id"] is not None and str(row["author_user_id"]) == viewer
    author = (
        AuthorOut(id=str(row["author_user_id"]), username=row["author_username"]) if row["author_user_id"] else None
    )
    return PostOut(
        id=str(row["id"]),
        thread_id=str(row["thread_id"]),
        author=author,
        author_agent_id=row["author_agent_id"],
        role=row["role"],
        is_agent_generated=row["role"] == "agent",
        html="" if concealed else row["content_html"],
        body=row["content_markdown"] if (is_author or can_see_hidden) and not row["is_deleted"] else None,
        reply_to_post_id=str(row["reply_to_post_id"]) if row["reply_to_post_id"] else None,
        is_deleted=row["is_deleted"],
        is_hidden=row["is_hidden"],
        edit_reason=row["edit_reason"],
        edited_at=row["edited_at"],
        created_at=row["created_at"],
        agent_confidence=float(row["agent_confidence"]) if row["agent_confidence"] is not None else None,
        agent_model=row["agent_model"],
        agent_citations=citations,
        reactions=dict(counts),
        my_reactions=list(row["mine"]),
        is_solution=row["solution_post_id"] == row["id"],
    )


async def posts_of_thread(
    ctx: RequestContext,
    thread_id: uuid.UUID,
    *,
    post_ids: list[uuid.UUID] | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[PostOut]:
    viewer = ctx.principal.user_id if ctx.principal else None
    args: list[Any] = [thread_id, uuid.UUID(viewer) if viewer else None]
    where = "p.thread_id = $1"
    if post_ids is not None:
        args.append(post_ids)
        where += f" AND p.id = ANY(${len(args)}::uuid[])"
    if after is not None:
        args += [after[0], after[1]]
        where += f" AND (p.created_at, p.id) > (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    rows = await db.fetch(POST_SELECT + f" WHERE {where} ORDER BY p.created_at, p.id LIMIT ${len(args)}", *args)
    moderator = ctx.has_role("moderator")
    return [post_out(r, can_see_hidden=moderator, viewer=viewer) for r in rows]


def public_post(post: PostOut) -> PostOut:
    """`post` as any reader of its thread sees it (the live events' view): no markdown, no viewer's own
    reactions, and no content at all when it is hidden or deleted."""
    concealed = post.is_deleted or post.is_hidden
    return msgspec.structs.replace(post, body=None, my_reactions=[], html="" if concealed else post.html)


async def public_post_by_id(post_id: uuid.UUID, *, for_moderators: bool = False) -> PostOut:
    """The post as any reader sees it (see `public_post`), or as any moderator does (hidden content
    included): for live events on the thread channel, or on the moderators' channel."""
    row = await db.fetchrow(POST_SELECT + " WHERE p.id = $1", post_id, None)
    if row is None:
        raise NotFound("post not found")
    post = post_out(row, can_see_hidden=for_moderators, viewer=None)
    return post if for_moderators else public_post(post)


async def post_row(post_ref: str, *, lock: bool = False) -> Any:
    post_id = parse_uuid(post_ref, "post")
    row = await db.fetchrow(
        "SELECT p.*, t.category_id, t.author_user_id AS thread_author, t.status AS thread_status FROM post p"
        " JOIN thread t ON t.id = p.thread_id WHERE p.id = $1" + (" FOR UPDATE OF p" if lock else ""),
        post_id,
    )
    if row is None:
        raise NotFound("post not found")
    return row


async def get_post(ctx: RequestContext, post_ref: str) -> PostOut:
    row = await post_row(post_ref)
    return (await posts_of_thread(ctx, row["thread_id"], post_ids=[row["id"]]))[0]
