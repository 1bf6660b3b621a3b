"""Forum use cases: categories, threads, posts, reactions, solutions, views.

Each `create_*`/`edit_*` authorizes, validates, changes rows and emits its `forum.*` signal in the
caller's transaction (the request boundary commits and publishes). Counters are updated with atomic
`UPDATE … SET n = n + 1` so concurrent writers never lose an increment.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from backend.abuse.service import check_can_post, record_post
from backend.content import extract_mentions, render_markdown
from backend.context import RequestContext
from backend.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from backend.forum import queries
from backend.forum import signals as sig
from backend.forum.schemas import (
    CategoryActivity,
    CategoryIn,
    CategoryOut,
    LiveView,
    PostOut,
    ThreadDetail,
    ThreadIn,
    ThreadOut,
)
from backend.forum.tables import Category, Post, Thread
from backend.forum.visibility import can_see_category, require_visible_thread, viewer_of
from backend.media.policy import image_policy
from backend.notifications.service import notify_for_post
from backend.pagination import cursor_id, cursor_time, decode_cursor, encode_cursor, page_limit, parse_uuid
from engine import db
from engine.ids import uuid7
from engine.signals import Signal, attach_view, emit

AGENT_HANDLES = frozenset({"faq-agent", "welcome-agent", "summary-agent", "moderation-agent", "routing-agent"})


# --- small parsing helpers ----------------------------------------------------------------------------


def slugify(text: str, max_len: int = 60) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].strip("-") or "t"


def _require_writer(ctx: RequestContext) -> str:
    """A member (or better) who may write; returns the user id."""
    ctx.require_role("member")
    return ctx.require_user().user_id


# --- categories ---------------------------------------------------------------------------------------


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
    if data.is_private or data.escalation_usernames:
        await db.execute(
            "UPDATE category SET is_private = $2, escalation_usernames = $3 WHERE id = $1",
            category_id,
            data.is_private,
            data.escalation_usernames,
        )
    await emit(sig.CategoryCreated(category_id=str(category_id), slug=slug, name=data.name, qa_mode=data.qa_mode))
    row = await db.fetchrow(
        "SELECT c.*, NULL::uuid AS latest_id, NULL AS latest_title, NULL AS latest_slug,"
        " NULL::timestamptz AS latest_activity FROM category c WHERE id = $1",
        category_id,
    )
    return queries.category_out(row)


# --- threads ------------------------------------------------------------------------------------------


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
    html = render_markdown(body, await image_policy())
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


async def _count_reply(thread: Any, now: datetime) -> tuple[ThreadOut, CategoryActivity, bool]:
    """One more reply in the thread and its category, in one statement (atomic increments: concurrent
    replies never lose a count); returns both as they are now. Call it last in the transaction: the
    two rows stay locked until commit, and every reply of the category waits for that lock. The last
    value says whether the category is private."""
    row = await db.fetchrow(
        "WITH t AS (UPDATE thread SET reply_count = reply_count + 1,"
        " last_activity_at = greatest(last_activity_at, $3), updated_at = $3 WHERE id = $1"
        " RETURNING reply_count, last_activity_at)"
        " UPDATE category SET post_count = post_count + 1, last_activity_at = greatest(last_activity_at, $3)"
        " WHERE id = $2 RETURNING id, thread_count, post_count, last_activity_at, is_private,"
        " (SELECT reply_count FROM t) AS reply_count, (SELECT last_activity_at FROM t) AS thread_activity",
        thread["id"],
        thread["category_id"],
        now,
    )
    thread_now = msgspec.structs.replace(
        queries.thread_out(thread), reply_count=row["reply_count"], last_activity_at=row["thread_activity"]
    )
    category = CategoryActivity(
        id=str(row["id"]),
        thread_count=row["thread_count"],
        post_count=row["post_count"],
        last_activity_at=row["last_activity_at"],
    )
    return thread_now, category, row["is_private"]


def _publish_view(signal: Signal | None, view: LiveView) -> None:
    """Send `view` with `signal` to live readers (see `LiveView`); call after the last change."""
    if signal is not None:
        attach_view(signal, view)


async def _emit_post_created(
    *,
    post_id: uuid.UUID,
    thread_id: uuid.UUID,
    category_id: uuid.UUID,
    author: str,
    reply_to: uuid.UUID | None,
    first: bool,
    body: str,
    notify_reply_to: uuid.UUID | None = None,
) -> Signal | None:
    user_ids, agents = await _store_mentions(post_id, body)
    created = await emit(
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
    await notify_for_post(
        post_id=str(post_id),
        thread_id=str(thread_id),
        author_user_id=author,
        mentioned_user_ids=user_ids,
        reply_to_post_id=str(notify_reply_to or reply_to) if (notify_reply_to or reply_to) else None,
    )
    return created


async def create_thread(ctx: RequestContext, data: ThreadIn) -> tuple[ThreadOut, PostOut]:
    user_id = _require_writer(ctx)
    category = await db.fetchrow("SELECT id, is_archived FROM category WHERE slug = $1", data.category)
    if category is None or not await can_see_category(viewer_of(ctx), category["id"]):
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
    thread_created = await emit(
        sig.ThreadCreated(
            thread_id=str(thread_id),
            category_id=str(category["id"]),
            first_post_id=str(post_id),
            author_user_id=user_id,
            title=title,
            slug=slug,
        )
    )
    post_created = await _emit_post_created(
        post_id=post_id,
        thread_id=thread_id,
        category_id=category["id"],
        author=user_id,
        reply_to=None,
        first=True,
        body=data.body,
    )
    await record_post(ctx, data.body, posting)
    thread = queries.thread_out(await queries.thread_row(str(thread_id)))
    post = (await queries.posts_of_thread(ctx, thread_id, post_ids=[post_id]))[0]
    counters = await queries.category_activity(category["id"])
    private = await queries.category_is_private(category["id"])
    _publish_view(thread_created, LiveView(thread=thread, category=counters, private=private))
    _publish_view(
        post_created, LiveView(post=queries.public_post(post), thread=thread, category=counters, private=private)
    )
    return thread, post


async def create_reply(ctx: RequestContext, thread_ref: str, body: str, reply_to_post_id: str | None) -> PostOut:
    user_id = _require_writer(ctx)
    thread = await queries.thread_row(thread_ref)
    await require_visible_thread(ctx, thread)
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
    created = await _emit_post_created(
        post_id=post_id,
        thread_id=thread["id"],
        category_id=thread["category_id"],
        author=user_id,
        reply_to=reply_to,
        first=False,
        body=body,
        # a reply to nobody in particular answers the thread's opening post (its author is notified)
        notify_reply_to=reply_to
        or await db.fetchval("SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", thread["id"]),
    )
    await record_post(ctx, body, posting)
    thread_now, category, private = await _count_reply(thread, now)
    post = (await queries.posts_of_thread(ctx, thread["id"], post_ids=[post_id]))[0]
    view = LiveView(post=queries.public_post(post), thread=thread_now, category=category, private=private)
    _publish_view(created, view)
    return post


async def get_thread(ctx: RequestContext, thread_ref: str, *, cursor: str | None, limit: int | None) -> ThreadDetail:
    thread = await queries.thread_row(thread_ref)
    await require_visible_thread(ctx, thread)
    page = page_limit(limit, default=50)
    after: tuple[datetime, uuid.UUID] | None = None
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        after = (cursor_time(at), cursor_id(last_id))
    posts = await queries.posts_of_thread(ctx, thread["id"], after=after, limit=page + 1)
    more = len(posts) > page
    posts = posts[:page]
    next_cursor = encode_cursor(posts[-1].created_at, posts[-1].id) if more else None
    if await record_view(ctx, thread["id"], thread["category_id"]):
        thread = await queries.thread_row(str(thread["id"]))
    return ThreadDetail(thread=queries.thread_out(thread), posts=posts, next_cursor=next_cursor)


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


def _require_author_or_moderator(ctx: RequestContext, row: Any, action: str) -> str:
    user_id = _require_writer(ctx)
    is_author = row["author_user_id"] is not None and str(row["author_user_id"]) == user_id
    if not is_author and not ctx.has_role("moderator"):
        raise Forbidden(f"only the author or a moderator may {action} this post")
    return user_id


async def edit_post(ctx: RequestContext, post_ref: str, body: str, edit_reason: str | None) -> PostOut:
    row = await queries.post_row(post_ref, lock=True)
    user_id = _require_author_or_moderator(ctx, row, "edit")
    if row["is_deleted"]:
        raise NotFound("post not found")
    if row["role"] != "human" and not ctx.has_role("moderator"):
        raise Forbidden("agent posts are edited by moderators only")
    if body == row["content_markdown"] and edit_reason == row["edit_reason"]:
        return await queries.get_post(ctx, post_ref)
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
        render_markdown(body, await image_policy()),
        edit_reason,
        now,
    )
    edited = await emit(
        sig.PostEdited(
            post_id=str(row["id"]),
            thread_id=str(row["thread_id"]),
            category_id=str(row["category_id"]),
            revision=revision,
            edited_by=user_id,
            edit_reason=edit_reason,
        )
    )
    post = await queries.get_post(ctx, post_ref)
    _publish_view(edited, LiveView(post=queries.public_post(post)))
    return post


async def post_history(ctx: RequestContext, post_ref: str) -> list[dict[str, Any]]:
    row = await queries.post_row(post_ref)
    _require_author_or_moderator(ctx, row, "see the history of")
    rows = await db.fetch(
        "SELECT r.revision, r.content_markdown, r.edit_reason, r.created_at, u.username AS edited_by"
        " FROM post_revision r LEFT JOIN users u ON u.id = r.edited_by"
        " WHERE r.post_id = $1 ORDER BY r.revision",
        row["id"],
    )
    return [dict(r) for r in rows]


async def delete_post(ctx: RequestContext, post_ref: str) -> None:
    row = await queries.post_row(post_ref, lock=True)
    user_id = _require_author_or_moderator(ctx, row, "delete")
    if row["is_deleted"]:
        return
    await db.execute("UPDATE post SET is_deleted = true, updated_at = now() WHERE id = $1", row["id"])
    first_post = await db.fetchval(
        "SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", row["thread_id"]
    )
    if first_post != row["id"]:
        await db.execute("UPDATE thread SET reply_count = greatest(reply_count - 1, 0) WHERE id = $1", row["thread_id"])
    deleted = await emit(
        sig.PostDeleted(
            post_id=str(row["id"]),
            thread_id=str(row["thread_id"]),
            category_id=str(row["category_id"]),
            deleted_by=user_id,
        )
    )
    thread = queries.thread_out(await queries.thread_row(str(row["thread_id"])))
    private = await queries.category_is_private(row["category_id"])
    _publish_view(deleted, LiveView(post=await queries.public_post_by_id(row["id"]), thread=thread, private=private))


# --- reactions ----------------------------------------------------------------------------------------


async def react(ctx: RequestContext, post_ref: str, reaction: str, *, add: bool) -> tuple[int, bool]:
    """Add or remove one reaction of the caller; idempotent. Returns (count of that type, mine)."""
    user_id = _require_writer(ctx)
    row = await queries.post_row(post_ref)
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
    reacted = None
    if changed:
        reacted = await emit(
            sig.PostReacted(
                post_id=str(row["id"]),
                thread_id=str(row["thread_id"]),
                category_id=str(row["category_id"]),
                user_id=user_id,
                reaction=reaction,
                added=add,
            )
        )
    rows = await db.fetch("SELECT type, count(*) AS n FROM reaction WHERE post_id = $1 GROUP BY type", row["id"])
    counts = {r["type"]: int(r["n"]) for r in rows}
    _publish_view(reacted, LiveView(reactions=counts))
    return counts.get(reaction, 0), add


# --- Q&A ----------------------------------------------------------------------------------------------


async def solve_thread(ctx: RequestContext, thread_ref: str, post_ref: str) -> ThreadOut:
    user_id = _require_writer(ctx)
    thread = await queries.thread_row(thread_ref, lock=True)
    is_author = thread["author_user_id"] is not None and str(thread["author_user_id"]) == user_id
    if not is_author and not ctx.has_role("moderator"):
        raise Forbidden("only the thread's author or a moderator may mark the solution")
    if not await db.fetchval("SELECT qa_mode FROM category WHERE id = $1", thread["category_id"]):
        raise Unprocessable("solutions can be marked only in Q&A categories")
    post = await queries.post_row(post_ref)
    if post["thread_id"] != thread["id"]:
        raise Unprocessable("that post is not in this thread")
    if post["is_deleted"] or post["is_hidden"]:
        raise Unprocessable("a deleted or hidden post cannot be the solution")
    if not await db.fetchval("SELECT solution_eligible FROM post WHERE id = $1", post["id"]):
        raise Unprocessable("an agent's greeting or summary cannot be the solution")
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
        solved = await emit(
            sig.ThreadSolved(
                thread_id=str(thread["id"]),
                category_id=str(thread["category_id"]),
                post_id=str(post["id"]),
                solved_by=user_id,
            )
        )
        solved_thread = queries.thread_out(await queries.thread_row(str(thread["id"])))
        private = await queries.category_is_private(thread["category_id"])
        _publish_view(solved, LiveView(thread=solved_thread, private=private))
        return solved_thread
    return queries.thread_out(await queries.thread_row(str(thread["id"])))


async def preview(body: str) -> str:
    return render_markdown(body, await image_policy())


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
    purpose: str | None = None,
    solution_eligible: bool = True,
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
    thread = await queries.thread_row(thread_id, lock=True)
    reply_to = parse_uuid(reply_to_post_id, "reply_to_post_id") if reply_to_post_id else None
    now = datetime.now(UTC)
    post_id = uuid7()
    await Post.insert(
        Post(
            id=post_id,
            thread_id=thread["id"],
            author_agent_id=agent_handle,
            role="agent",
            reply_to_post_id=reply_to,
            content_markdown=body,
            content_html=render_markdown(body, await image_policy()),
            agent_confidence=confidence,
            agent_model=model,
            agent_citations=citations,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
        )
    )
    await db.execute(
        "UPDATE post SET agent_purpose = $2, solution_eligible = $3, answers_post_id = $4 WHERE id = $1",
        post_id,
        purpose,
        solution_eligible,
        reply_to,
    )
    created = await emit(
        sig.PostCreated(
            post_id=str(post_id),
            thread_id=str(thread["id"]),
            category_id=str(thread["category_id"]),
            author_user_id=None,
            author_agent_id=agent_handle,
            role="agent",
            reply_to_post_id=str(reply_to) if reply_to else None,
            is_first_post=False,
            mentioned_user_ids=[],
            mentioned_agents=[],
        )
    )
    await notify_for_post(
        post_id=str(post_id),
        thread_id=str(thread["id"]),
        author_user_id=None,
        author_agent_id=agent_handle,
        reply_to_post_id=str(reply_to) if reply_to else None,
    )
    thread_now, category, private = await _count_reply(thread, now)
    post = await queries.public_post_by_id(post_id)
    _publish_view(created, LiveView(post=post, thread=thread_now, category=category, private=private))
    return str(post_id), str(thread["category_id"]), True
