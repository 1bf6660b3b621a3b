"""Forum use cases: categories, threads, posts, reactions, solutions, views.

Each `create_*`/`edit_*` authorizes, validates, changes rows and emits its `forum.*` signal in the
caller's transaction (the request boundary commits and publishes). Counters are updated with atomic
`UPDATE … SET n = n + 1` so concurrent writers never lose an increment.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from backend.abuse.service import check_can_post, record_post
from backend.content import extract_mentions, render_markdown
from backend.context import RequestContext, provide_ctx
from backend.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from backend.forum import signals as sig
from backend.forum.schemas import (
    AuthorOut,
    CategoryIn,
    CategoryOut,
    LatestThreadOut,
    PostOut,
    ThreadDetail,
    ThreadIn,
    ThreadOut,
    ThreadPage,
)
from backend.forum.tables import Category, Post, Thread
from backend.moderation.service import screen_post
from engine import db
from engine.ids import uuid7
from engine.signals import emit

AGENT_HANDLES = frozenset(
    {"faq-agent", "welcome-agent", "summary-agent", "moderation-agent", "routing-agent"}
)
MAX_PAGE = 100


# --- small parsing helpers ----------------------------------------------------------------------------


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} not found") from None


def slugify(text: str, max_len: int = 60) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].strip("-") or "t"


def encode_cursor(*parts: object) -> str:
    raw = msgspec.json.encode([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = msgspec.json.decode(base64.urlsafe_b64decode(padded.encode()), type=list[str])
    except (ValueError, msgspec.DecodeError):
        raise Invalid("invalid cursor", field="cursor") from None
    if len(parts) != n:
        raise Invalid("invalid cursor", field="cursor")
    return parts


def _cursor_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("invalid cursor", field="cursor") from None


def _cursor_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid("invalid cursor", field="cursor") from None


def _limit(limit: int | None, default: int = 30) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def _require_writer(ctx: RequestContext) -> str:
    """A member (or better) who may write; returns the user id."""
    ctx.require_role("member")
    return ctx.require_user().user_id


# --- categories ---------------------------------------------------------------------------------------


def _category_out(row: Any) -> CategoryOut:
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
    )


async def list_categories(ctx: RequestContext) -> list[CategoryOut]:
    rows = await db.fetch(
        "SELECT c.*, l.id AS latest_id, l.title AS latest_title, l.slug AS latest_slug,"
        " l.last_activity_at AS latest_activity FROM category c"
        " LEFT JOIN LATERAL (SELECT id, title, slug, last_activity_at FROM thread t"
        "   WHERE t.category_id = c.id ORDER BY last_activity_at DESC, id DESC LIMIT 1) l ON true"
        " WHERE NOT c.is_archived ORDER BY c.position, c.name"
    )
    return [_category_out(r) for r in rows]


async def create_category(ctx: RequestContext, data: CategoryIn) -> CategoryOut:
    ctx.require_role("admin")
    slug = data.slug or slugify(data.name)
    if await db.fetchval("SELECT 1 FROM category WHERE slug = $1", slug):
        raise Conflict(f"a category with slug {slug!r} exists")
    category_id = uuid7()
    now = datetime.now(UTC)
    await Category.insert(
        Category(
            id=category_id,
            name=data.name,
            slug=slug,
            description=data.description,
            position=data.position,
            qa_mode=data.qa_mode,
            created_at=now,
            updated_at=now,
        )
    )
    await emit(
        sig.CategoryCreated(category_id=str(category_id), slug=slug, name=data.name, qa_mode=data.qa_mode)
    )
    row = await db.fetchrow(
        "SELECT c.*, NULL::uuid AS latest_id, NULL AS latest_title, NULL AS latest_slug,"
        " NULL::timestamptz AS latest_activity FROM category c WHERE id = $1",
        category_id,
    )
    return _category_out(row)


# --- threads ------------------------------------------------------------------------------------------

_THREAD_SELECT = (
    "SELECT t.*, c.slug AS category_slug, u.username AS author_username FROM thread t"
    " JOIN category c ON c.id = t.category_id LEFT JOIN users u ON u.id = t.author_user_id"
)


def _thread_out(row: Any) -> ThreadOut:
    author = (
        AuthorOut(id=str(row["author_user_id"]), username=row["author_username"])
        if row["author_user_id"]
        else None
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
    page = _limit(limit)
    args: list[Any] = []
    where: list[str] = []
    if category_slug is not None:
        category_id = await db.fetchval("SELECT id FROM category WHERE slug = $1", category_slug)
        if category_id is None:
            raise NotFound("category not found")
        args.append(category_id)
        where.append(f"t.category_id = ${len(args)}")
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        args += [_cursor_time(at), _cursor_id(last_id)]
        where.append(f"(t.last_activity_at, t.id) < (${len(args) - 1}, ${len(args)})")
    args.append(page + 1)
    sql = _THREAD_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ${len(args)}"
    rows = await db.fetch(sql, *args)
    more = len(rows) > page
    rows = rows[:page]
    next_cursor = encode_cursor(rows[-1]["last_activity_at"], rows[-1]["id"]) if more else None
    return ThreadPage(threads=[_thread_out(r) for r in rows], next_cursor=next_cursor)


async def _thread_row(id_or_slug: str, *, lock: bool = False) -> Any:
    suffix = " FOR UPDATE OF t" if lock else ""
    try:
        thread_id = uuid.UUID(id_or_slug)
        row = await db.fetchrow(_THREAD_SELECT + " WHERE t.id = $1" + suffix, thread_id)
    except ValueError:
        row = await db.fetchrow(_THREAD_SELECT + " WHERE t.slug = $1" + suffix, id_or_slug)
    if row is None:
        raise NotFound("thread not found")
    return row


async def _store_mentions(post_id: uuid.UUID, body: str) -> tuple[list[str], list[str]]:
    """Parse @mentions, store those naming org members or known agents; return (user ids, agents)."""
    names = extract_mentions(body)
    if not names:
        return [], []
    agents = [n for n in names if n in AGENT_HANDLES]
    people = [n for n in names if n not in AGENT_HANDLES]
    user_ids: list[str] = []
    if people:
        rows = await db.fetch("SELECT u.id FROM users u WHERE lower(u.username) = ANY($1::text[])", people)
        for r in rows:
            await db.execute(
                "INSERT INTO mention (post_id, mentioned_user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                post_id,
                r["id"],
            )
            user_ids.append(str(r["id"]))
    for agent in agents:
        await db.execute(
            "INSERT INTO mention (post_id, mentioned_agent) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            post_id,
            agent,
        )
    return user_ids, agents


async def _insert_post(
    *, thread_id: uuid.UUID, author_user_id: uuid.UUID, body: str, reply_to: uuid.UUID | None, now: datetime
) -> tuple[uuid.UUID, str]:
    post_id = uuid7()
    html = render_markdown(body)
    await Post.insert(
        Post(
            id=post_id,
            thread_id=thread_id,
            author_user_id=author_user_id,
            role="human",
            reply_to_post_id=reply_to,
            content_markdown=body,
            content_html=html,
            created_at=now,
            updated_at=now,
        )
    )
    return post_id, html


async def _emit_post_created(
    *,
    post_id: uuid.UUID,
    thread_id: uuid.UUID,
    category_id: uuid.UUID,
    author: str,
    reply_to: uuid.UUID | None,
    first: bool,
    body: str,
) -> None:
    user_ids, agents = await _store_mentions(post_id, body)
    await emit(
        sig.PostCreated(
            post_id=str(post_id),
            thread_id=str(thread_id),
            category_id=str(category_id),
            author_user_id=author,
            author_agent_id=None,
            role="human",
            reply_to_post_id=str(reply_to) if reply_to else None,
            is_first_post=first,
            mentioned_user_ids=user_ids,
            mentioned_agents=agents,
        )
    )
    for agent in agents:
        await emit(
            sig.AgentMentioned(
                agent=agent, post_id=str(post_id), thread_id=str(thread_id), category_id=str(category_id)
            )
        )
    await screen_post(provide_ctx(), post_id=post_id, thread_id=thread_id, category_id=category_id, body=body)


async def create_thread(ctx: RequestContext, data: ThreadIn) -> tuple[ThreadOut, PostOut]:
    user_id = _require_writer(ctx)
    category = await db.fetchrow("SELECT id, is_archived FROM category WHERE slug = $1", data.category)
    if category is None:
        raise NotFound("category not found")
    if category["is_archived"]:
        raise Conflict("this category is archived")
    title = data.title.strip()
    if len(title) < 3:
        raise Invalid("title must have at least 3 non-blank characters", field="title")
    posting = await check_can_post(ctx, data.body, kind="thread")
    now = datetime.now(UTC)
    thread_id = uuid7()
    slug = f"{slugify(title, 50)}-{thread_id.hex[-8:]}"
    await Thread.insert(
        Thread(
            id=thread_id,
            category_id=category["id"],
            author_user_id=uuid.UUID(user_id),
            title=title,
            slug=slug,
            last_activity_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    post_id, _ = await _insert_post(
        thread_id=thread_id, author_user_id=uuid.UUID(user_id), body=data.body, reply_to=None, now=now
    )
    await db.execute(
        "UPDATE category SET thread_count = thread_count + 1, post_count = post_count + 1,"
        " last_activity_at = $2 WHERE id = $1",
        category["id"],
        now,
    )
    await emit(
        sig.ThreadCreated(
            thread_id=str(thread_id),
            category_id=str(category["id"]),
            first_post_id=str(post_id),
            author_user_id=user_id,
            title=title,
            slug=slug,
        )
    )
    await _emit_post_created(
        post_id=post_id,
        thread_id=thread_id,
        category_id=category["id"],
        author=user_id,
        reply_to=None,
        first=True,
        body=data.body,
    )
    await record_post(ctx, data.body, posting)
    thread = _thread_out(await _thread_row(str(thread_id)))
    post = (await _posts(ctx, thread_id, post_ids=[post_id]))[0]
    return thread, post


async def create_reply(
    ctx: RequestContext, thread_ref: str, body: str, reply_to_post_id: str | None
) -> PostOut:
    user_id = _require_writer(ctx)
    thread = await _thread_row(thread_ref)
    if thread["status"] != "open":
        raise Conflict(f"this thread is {thread['status']}: replies are closed")
    reply_to = None
    if reply_to_post_id is not None:
        reply_to = parse_uuid(reply_to_post_id, "reply_to_post_id")
        reply_to_thread = await db.fetchval("SELECT thread_id FROM post WHERE id = $1", reply_to)
        if reply_to_thread is None:
            raise NotFound("reply_to_post_id not found")
        if reply_to_thread != thread["id"]:
            raise Unprocessable("reply_to_post_id is not a post of this thread")
    posting = await check_can_post(ctx, body, kind="reply")
    now = datetime.now(UTC)
    post_id, _ = await _insert_post(
        thread_id=thread["id"], author_user_id=uuid.UUID(user_id), body=body, reply_to=reply_to, now=now
    )
    await db.execute(
        "UPDATE thread SET reply_count = reply_count + 1, last_activity_at = greatest(last_activity_at, $2),"
        " updated_at = $2 WHERE id = $1",
        thread["id"],
        now,
    )
    await db.execute(
        "UPDATE category SET post_count = post_count + 1, last_activity_at = greatest(last_activity_at, $2)"
        " WHERE id = $1",
        thread["category_id"],
        now,
    )
    await _emit_post_created(
        post_id=post_id,
        thread_id=thread["id"],
        category_id=thread["category_id"],
        author=user_id,
        reply_to=reply_to,
        first=False,
        body=body,
    )
    await record_post(ctx, body, posting)
    return (await _posts(ctx, thread["id"], post_ids=[post_id]))[0]


async def get_thread(
    ctx: RequestContext, thread_ref: str, *, cursor: str | None, limit: int | None
) -> ThreadDetail:
    thread = await _thread_row(thread_ref)
    page = _limit(limit, default=50)
    after: tuple[datetime, uuid.UUID] | None = None
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        after = (_cursor_time(at), _cursor_id(last_id))
    posts = await _posts(ctx, thread["id"], after=after, limit=page + 1)
    more = len(posts) > page
    posts = posts[:page]
    next_cursor = encode_cursor(posts[-1].created_at, posts[-1].id) if more else None
    if await record_view(ctx, thread["id"], thread["category_id"]):
        thread = await _thread_row(str(thread["id"]))
    return ThreadDetail(thread=_thread_out(thread), posts=posts, next_cursor=next_cursor)


async def record_view(ctx: RequestContext, thread_id: uuid.UUID, category_id: uuid.UUID) -> bool:
    """A view is a `forum.thread.viewed` signal deduplicated per viewer, thread and hour; only a new
    one bumps view_count. Returns whether it was new."""
    viewer = ctx.principal.user_id if ctx.principal else f"anon:{ctx.ip_hash}"
    hour = datetime.now(UTC).strftime("%Y%m%d%H")
    signal = await emit(
        sig.ThreadViewed(thread_id=str(thread_id), category_id=str(category_id), viewer=viewer),
        dedupe_key=f"view:{thread_id}:{viewer}:{hour}",
    )
    if signal is None:
        return False
    await db.execute("UPDATE thread SET view_count = view_count + 1 WHERE id = $1", thread_id)
    return True


# --- posts --------------------------------------------------------------------------------------------

_POST_SELECT = """
SELECT p.*, u.username AS author_username, t.solution_post_id,
       coalesce((SELECT jsonb_object_agg(type, n) FROM (SELECT type, count(*) AS n FROM reaction r
                 WHERE r.post_id = p.id GROUP BY type) x), '{}'::jsonb) AS reaction_counts,
       coalesce((SELECT array_agg(type ORDER BY type) FROM reaction r
                 WHERE r.post_id = p.id AND r.user_id = $2), '{}') AS mine
FROM post p JOIN thread t ON t.id = p.thread_id LEFT JOIN users u ON u.id = p.author_user_id
"""


def _post_out(row: Any, *, can_see_hidden: bool, viewer: str | None) -> PostOut:
    counts = row["reaction_counts"]
    if isinstance(counts, str):
        counts = msgspec.json.decode(counts)
    citations = row["agent_citations"]
    if isinstance(citations, str):
        citations = msgspec.json.decode(citations)
    concealed = row["is_deleted"] or (row["is_hidden"] and not can_see_hidden)
    is_author = (
        viewer is not None and row["author_user_id"] is not None and str(row["author_user_id"]) == viewer
    )
    author = (
        AuthorOut(id=str(row["author_user_id"]), username=row["author_username"])
        if row["author_user_id"]
        else None
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


async def _posts(
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
    rows = await db.fetch(
        _POST_SELECT + f" WHERE {where} ORDER BY p.created_at, p.id LIMIT ${len(args)}", *args
    )
    moderator = ctx.has_role("moderator")
    return [_post_out(r, can_see_hidden=moderator, viewer=viewer) for r in rows]


async def _post_row(post_ref: str, *, lock: bool = False) -> Any:
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
    row = await _post_row(post_ref)
    return (await _posts(ctx, row["thread_id"], post_ids=[row["id"]]))[0]


def _require_author_or_moderator(ctx: RequestContext, row: Any, action: str) -> str:
    user_id = _require_writer(ctx)
    is_author = row["author_user_id"] is not None and str(row["author_user_id"]) == user_id
    if not is_author and not ctx.has_role("moderator"):
        raise Forbidden(f"only the author or a moderator may {action} this post")
    return user_id


async def edit_post(ctx: RequestContext, post_ref: str, body: str, edit_reason: str | None) -> PostOut:
    row = await _post_row(post_ref, lock=True)
    user_id = _require_author_or_moderator(ctx, row, "edit")
    if row["is_deleted"]:
        raise NotFound("post not found")
    if row["role"] != "human" and not ctx.has_role("moderator"):
        raise Forbidden("agent posts are edited by moderators only")
    if body == row["content_markdown"] and edit_reason == row["edit_reason"]:
        return await get_post(ctx, post_ref)
    revision = await db.fetchval(
        "SELECT coalesce(max(revision), 0) + 1 FROM post_revision WHERE post_id = $1", row["id"]
    )
    await db.execute(
        "INSERT INTO post_revision (id, post_id, revision, content_markdown, edit_reason, edited_by)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        uuid7(),
        row["id"],
        revision,
        row["content_markdown"],
        row["edit_reason"],
        uuid.UUID(user_id),
    )
    now = datetime.now(UTC)
    await db.execute(
        "UPDATE post SET content_markdown = $2, content_html = $3, edit_reason = $4, edited_at = $5,"
        " updated_at = $5 WHERE id = $1",
        row["id"],
        body,
        render_markdown(body),
        edit_reason,
        now,
    )
    await emit(
        sig.PostEdited(
            post_id=str(row["id"]),
            thread_id=str(row["thread_id"]),
            category_id=str(row["category_id"]),
            revision=revision,
            edited_by=user_id,
            edit_reason=edit_reason,
        )
    )
    return await get_post(ctx, post_ref)


async def post_history(ctx: RequestContext, post_ref: str) -> list[dict[str, Any]]:
    row = await _post_row(post_ref)
    _require_author_or_moderator(ctx, row, "see the history of")
    rows = await db.fetch(
        "SELECT r.revision, r.content_markdown, r.edit_reason, r.created_at, u.username AS edited_by"
        " FROM post_revision r LEFT JOIN users u ON u.id = r.edited_by WHERE r.post_id = $1 ORDER BY r.revision",
        row["id"],
    )
    return [dict(r) for r in rows]


async def delete_post(ctx: RequestContext, post_ref: str) -> None:
    row = await _post_row(post_ref, lock=True)
    user_id = _require_author_or_moderator(ctx, row, "delete")
    if row["is_deleted"]:
        return
    await db.execute("UPDATE post SET is_deleted = true, updated_at = now() WHERE id = $1", row["id"])
    first_post = await db.fetchval(
        "SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", row["thread_id"]
    )
    if first_post != row["id"]:
        await db.execute(
            "UPDATE thread SET reply_count = greatest(reply_count - 1, 0) WHERE id = $1", row["thread_id"]
        )
    await emit(
        sig.PostDeleted(
            post_id=str(row["id"]),
            thread_id=str(row["thread_id"]),
            category_id=str(row["category_id"]),
            deleted_by=user_id,
        )
    )


# --- reactions ----------------------------------------------------------------------------------------


async def react(ctx: RequestContext, post_ref: str, reaction: str, *, add: bool) -> tuple[int, bool]:
    """Add or remove one reaction of the caller; idempotent. Returns (count of that type, mine)."""
    user_id = _require_writer(ctx)
    row = await _post_row(post_ref)
    if row["is_deleted"]:
        raise NotFound("post not found")
    if add:
        changed = await db.fetchval(
            "INSERT INTO reaction (id, post_id, user_id, type) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (post_id, user_id, type) DO NOTHING RETURNING true",
            uuid7(),
            row["id"],
            uuid.UUID(user_id),
            reaction,
        )
    else:
        changed = await db.fetchval(
            "DELETE FROM reaction WHERE post_id = $1 AND user_id = $2 AND type = $3 RETURNING true",
            row["id"],
            uuid.UUID(user_id),
            reaction,
        )
    if changed:
        await emit(
            sig.PostReacted(
                post_id=str(row["id"]),
                thread_id=str(row["thread_id"]),
                category_id=str(row["category_id"]),
                user_id=user_id,
                reaction=reaction,
                added=add,
            )
        )
    count = await db.fetchval(
        "SELECT count(*) FROM reaction WHERE post_id = $1 AND type = $2", row["id"], reaction
    )
    return int(count), add


# --- Q&A ----------------------------------------------------------------------------------------------


async def solve_thread(ctx: RequestContext, thread_ref: str, post_ref: str) -> ThreadOut:
    user_id = _require_writer(ctx)
    thread = await _thread_row(thread_ref, lock=True)
    is_author = thread["author_user_id"] is not None and str(thread["author_user_id"]) == user_id
    if not is_author and not ctx.has_role("moderator"):
        raise Forbidden("only the thread's author or a moderator may mark the solution")
    if not await db.fetchval("SELECT qa_mode FROM category WHERE id = $1", thread["category_id"]):
        raise Unprocessable("solutions can be marked only in Q&A categories")
    post = await _post_row(post_ref)
    if post["thread_id"] != thread["id"]:
        raise Unprocessable("that post is not in this thread")
    if post["is_deleted"] or post["is_hidden"]:
        raise Unprocessable("a deleted or hidden post cannot be the solution")
    first_post = await db.fetchval(
        "SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", thread["id"]
    )
    if first_post == post["id"]:
        raise Unprocessable("the question itself cannot be its solution")
    if thread["solution_post_id"] != post["id"]:
        await db.execute(
            "UPDATE thread SET is_solved = true, solution_post_id = $2, updated_at = now() WHERE id = $1",
            thread["id"],
            post["id"],
        )
        await emit(
            sig.ThreadSolved(
                thread_id=str(thread["id"]),
                category_id=str(thread["category_id"]),
                post_id=str(post["id"]),
                solved_by=user_id,
            )
        )
    return _thread_out(await _thread_row(str(thread["id"])))


def preview(body: str) -> str:
    return render_markdown(body)


# --- agent posts (the `forum.post.create` directive's effect) -------------------------------------------


async def create_agent_post(
    *,
    thread_id: str,
    agent_handle: str,
    body: str,
    idempotency_key: str,
    reply_to_post_id: str | None,
    confidence: float | None,
    model: str | None,
    citations: list[dict[str, Any]],
) -> tuple[str, str, bool]:
    """Write an agent's post once per idempotency key. Returns (post id, category id, created).

    Runs in the directive runner's tenant transaction; a second call with the same key returns the
    first post and changes nothing."""
    existing = await db.fetchrow(
        "SELECT p.id, t.category_id FROM post p JOIN thread t ON t.id = p.thread_id WHERE p.idempotency_key = $1",
        idempotency_key,
    )
    if existing is not None:
        return str(existing["id"]), str(existing["category_id"]), False
    thread = await _thread_row(thread_id, lock=True)
    reply_to = parse_uuid(reply_to_post_id, "reply_to_post_id") if reply_to_post_id else None
    now = datetime.now(UTC)
    post_id = uuid7()
    await Post.insert(
        Post(id=post_id, thread_id=thread["id"], author_agent_id=agent_handle, role="agent",
             reply_to_post_id=reply_to, content_markdown=body, content_html=render_markdown(body),
             agent_confidence=confidence, agent_model=model, agent_citations=citations,
             idempotency_key=idempotency_key, created_at=now, updated_at=now)
    )
    await db.execute(
        "UPDATE thread SET reply_count = reply_count + 1, last_activity_at = greatest(last_activity_at, $2),"
        " updated_at = $2 WHERE id = $1", thread["id"], now)
    await db.execute(
        "UPDATE category SET post_count = post_count + 1, last_activity_at = greatest(last_activity_at, $2)"
        " WHERE id = $1", thread["category_id"], now)
    await emit(sig.PostCreated(
        post_id=str(post_id), thread_id=str(thread["id"]), category_id=str(thread["category_id"]),
        author_user_id=None, author_agent_id=agent_handle, role="agent",
        reply_to_post_id=str(reply_to) if reply_to else None, is_first_post=False,
        mentioned_user_ids=[], mentioned_agents=[],
    ))
    return str(post_id), str(thread["category_id"]), True
