"""Moderation use cases: flag a post, list the queue, resolve a flag (screening is the moderation agent's).

Like every service: authorize, validate, change rows, emit signals in the caller's transaction (the
boundary commits and publishes). Nothing here deletes anything: flags are resolved, posts are hidden or
restored, threads are closed.

Flag status after a resolution: `dismiss` and `restore` -> `dismissed` (the complaint did not lead to
action against the post), `hide` and `close_thread` -> `action_taken`. A resolution applies to every
open flag of the same post, so the queue never shows a post half-resolved.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from backend.context import RequestContext
from backend.errors import Conflict, Invalid, NotFound, Unprocessable
from backend.forum import queries as forum_queries
from backend.forum import signals as sig
from backend.forum.schemas import LiveView
from backend.moderation.members import member_histories
from backend.moderation.schemas import (
    FlagIn,
    FlagOut,
    QueueItem,
    QueuePage,
    QueuePost,
    QueueStatus,
    QueueThread,
    ResolveIn,
    ResolveOut,
    UserRef,
)
from backend.pagination import cursor_time
from engine import db
from engine.ids import uuid7
from engine.signals import Signal, SignalContext, attach_view, emit

MAX_PAGE = 100
EXCERPT_CHARS = 280
_FLAG_STATUS_AFTER = {
    "dismiss": "dismissed",
    "restore": "dismissed",
    "hide": "action_taken",
    "close_thread": "action_taken",
}


async def _decide_pending_hides(ctx: RequestContext, post_id: uuid.UUID, *, approve: bool, moderator_id: str) -> None:
    """A moderator's resolution answers the agent's pending `forum.post.hide` of the same post: hiding
    approves it (its handler then finds the post hidden), anything else rejects it."""
    from engine.agents import directives as directive_store

    pending = await db.fetch(
        "SELECT id FROM directive WHERE type = 'forum.post.hide' AND status = 'awaiting_approval'"
        " AND payload->>'post_id' = $1",
        str(post_id),
    )
    runtime = ctx.services.agents
    approved: list[str] = []
    for row in pending:
        decided = await directive_store.decide(str(row["id"]), approve=approve, decided_by=moderator_id)
        approved += [decided.id] if approve else []
    if approved and runtime is not None and runtime.enqueue is not None:
        enqueue, tenant = runtime.enqueue, ctx.require_org().slug

        async def enqueue_after_commit() -> None:
            for directive_id in approved:
                await enqueue(tenant, directive_id)

        ctx.after_commit.append(enqueue_after_commit)


async def _emit_visibility(post_id: uuid.UUID, thread_id: uuid.UUID, category_id: uuid.UUID, *, hidden: bool) -> None:
    """`forum.post.hidden` / `forum.post.restored` for the thread's readers, with the post as they now
    see it (no content while hidden; moderators read it from the queue)."""
    payload_type = sig.PostHidden if hidden else sig.PostRestored
    signal = await emit(payload_type(post_id=str(post_id), thread_id=str(thread_id), category_id=str(category_id)))
    if signal is not None:
        attach_view(signal, LiveView(post=await forum_queries.public_post_by_id(post_id)))


async def _moderators_view(signal: Signal | None, post_id: uuid.UUID) -> None:
    """The post, content included even when hidden, with a signal that goes to the `moderation` channel
    only (moderators): the queue page draws the new state from it."""
    if signal is not None:
        attach_view(signal, LiveView(post=await forum_queries.public_post_by_id(post_id, for_moderators=True)))


# --- flags --------------------------------------------------------------------------------------------


def _clean(notes: str | None) -> str | None:
    return (notes.strip() or None) if notes is not None else None


def _parse_id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what} not found") from None


_FLAG_SELECT = (
    "SELECT f.*, fu.username AS flagger_username, ru.username AS resolver_username FROM moderation_flag f"
    " LEFT JOIN users fu ON fu.id = f.flagger_user_id LEFT JOIN users ru ON ru.id = f.resolved_by"
)


def _flag_out(row: Any) -> FlagOut:
    return FlagOut(
        id=str(row["id"]),
        post_id=str(row["post_id"]),
        reason=row["reason"],
        notes=row["notes"],
        status=row["status"],
        flagger=UserRef(id=str(row["flagger_user_id"]), username=row["flagger_username"])
        if row["flagger_user_id"]
        else None,
        flagger_agent_id=row["flagger_agent_id"],
        resolution_action=row["resolution_action"],
        resolution_notes=row["resolution_notes"],
        resolved_by=UserRef(id=str(row["resolved_by"]), username=row["resolver_username"])
        if row["resolved_by"]
        else None,
        resolved_at=row["resolved_at"],
        created_at=row["created_at"],
        category=row["category"],
        score=float(row["score"]) if row["score"] is not None else None,
        rules=list(row["rules"] or []),
    )


async def _flag(flag_id: uuid.UUID) -> FlagOut:
    return _flag_out(await db.fetchrow(_FLAG_SELECT + " WHERE f.id = $1", flag_id))


async def insert_flag(
    *,
    post_id: uuid.UUID,
    thread_id: uuid.UUID,
    category_id: uuid.UUID,
    reason: str,
    notes: str | None,
    flagger_user_id: str | None,
    flagger_agent_id: str | None,
    context: SignalContext | None = None,
    causation_id: str | None = None,
    category: str | None = None,
    score: float | None = None,
    rules: list[str] | None = None,
    directive_id: str | None = None,
) -> uuid.UUID:
    """Insert an open flag and emit `forum.post.flagged` + `forum.moderation.flag.created`. Agent flags also
    record their category, score, the rules that fired and their directive (one flag per directive)."""
    flag_id = uuid7()
    try:
        await db.execute(
            "INSERT INTO moderation_flag (id, post_id, flagger_user_id, flagger_agent_id, reason, notes, category,"
            " score, rules, directive_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            flag_id,
            post_id,
            uuid.UUID(flagger_user_id) if flagger_user_id else None,
            flagger_agent_id,
            reason,
            notes,
            category,
            score,
            rules or [],
            uuid.UUID(directive_id) if directive_id else None,
        )
    except asyncpg.UniqueViolationError:  # a concurrent flag by the same user won the race
        raise Conflict("you already flagged this post; a moderator will review it") from None
    await emit(
        sig.PostFlagged(
            post_id=str(post_id),
            thread_id=str(thread_id),
            category_id=str(category_id),
            flag_id=str(flag_id),
            reason=reason,
        ),
        context=context,
        causation_id=causation_id,
    )
    flagged = await emit(
        sig.FlagCreated(
            flag_id=str(flag_id),
            post_id=str(post_id),
            thread_id=str(thread_id),
            category_id=str(category_id),
            reason=reason,
            flagger_user_id=flagger_user_id,
            flagger_agent_id=flagger_agent_id,
        ),
        context=context,
        causation_id=causation_id,
    )
    await _moderators_view(flagged, post_id)
    return flag_id


async def create_flag(ctx: RequestContext, post_ref: str, data: FlagIn) -> FlagOut:
    """Any member flags a post (not their own, once while their flag is open)."""
    ctx.require_role("member")
    user_id = ctx.require_user().user_id
    post = await db.fetchrow(
        "SELECT p.id, p.thread_id, p.author_user_id, p.is_deleted, t.category_id FROM post p"
        " JOIN thread t ON t.id = p.thread_id WHERE p.id = $1",
        _parse_id(post_ref, "post"),
    )
    if post is None or post["is_deleted"]:
        raise NotFound("post not found")
    if post["author_user_id"] is not None and str(post["author_user_id"]) == user_id:
        raise Unprocessable("you cannot flag your own post")
    if await db.fetchval(
        "SELECT 1 FROM moderation_flag WHERE post_id = $1 AND flagger_user_id = $2 AND status = 'open'",
        post["id"],
        uuid.UUID(user_id),
    ):
        raise Conflict("you already flagged this post; a moderator will review it")
    flag_id = await insert_flag(
        post_id=post["id"],
        thread_id=post["thread_id"],
        category_id=post["category_id"],
        reason=data.reason,
        notes=_clean(data.notes),
        flagger_user_id=user_id,
        flagger_agent_id=None,
    )
    return await _flag(flag_id)


# --- queue --------------------------------------------------------------------------------------------


def _encode_cursor(at: datetime, post_id: uuid.UUID) -> str:
    raw = msgspec.json.encode([at.isoformat(), str(post_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        at, post_id = msgspec.json.decode(raw, type=tuple[str, str])
        return cursor_time(at), uuid.UUID(post_id)
    except (ValueError, msgspec.DecodeError):
        raise Invalid("invalid cursor", field="cursor") from None


def _excerpt(markdown: str) -> str:
    text = " ".join(markdown.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rstrip() + "…"


_QUEUE_SQL = """
WITH groups AS (
    SELECT f.post_id, max(f.created_at) AS latest_at, count(*) AS flag_count
    FROM moderation_flag f WHERE ($1::text IS NULL OR f.status = $1) GROUP BY f.post_id
)
SELECT g.*, p.content_markdown, p.author_user_id, p.author_agent_id, p.role, p.is_hidden, p.is_deleted,
       p.created_at AS post_created_at, p.thread_id, u.username AS author_username,
       t.title, t.slug, t.status AS thread_status, t.category_id
FROM groups g JOIN post p ON p.id = g.post_id JOIN thread t ON t.id = p.thread_id
LEFT JOIN users u ON u.id = p.author_user_id
WHERE ($2::timestamptz IS NULL OR (g.latest_at, g.post_id) < ($2, $3))
ORDER BY g.latest_at DESC, g.post_id DESC
LIMIT $4
"""


async def list_queue(ctx: RequestContext, *, status: QueueStatus, cursor: str | None, limit: int | None) -> QueuePage:
    """Flagged posts, most recently flagged first, each with its flags of `status` (moderators)."""
    ctx.require_role("moderator")
    page = 30 if limit is None else limit
    if not 1 <= page <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    after_at, after_id = _decode_cursor(cursor) if cursor else (None, None)
    wanted = None if status == "all" else status
    rows = await db.fetch(_QUEUE_SQL, wanted, after_at, after_id, page + 1)
    more = len(rows) > page
    rows = rows[:page]
    flags: dict[uuid.UUID, list[FlagOut]] = {r["post_id"]: [] for r in rows}
    if rows:
        for f in await db.fetch(
            _FLAG_SELECT + " WHERE f.post_id = ANY($1::uuid[]) AND ($2::text IS NULL OR f.status = $2)"
            " ORDER BY f.created_at DESC, f.id DESC",
            list(flags),
            wanted,
        ):
            flags[f["post_id"]].append(_flag_out(f))
    histories = await member_histories(ctx, list({r["author_user_id"] for r in rows if r["author_user_id"]}))
    items = []
    for r in rows:
        post_flags = flags[r["post_id"]]
        items.append(
            QueueItem(
                post=QueuePost(
                    id=str(r["post_id"]),
                    excerpt=_excerpt(r["content_markdown"]),
                    author=UserRef(id=str(r["author_user_id"]), username=r["author_username"])
                    if r["author_user_id"]
                    else None,
                    author_agent_id=r["author_agent_id"],
                    role=r["role"],
                    is_hidden=r["is_hidden"],
                    is_deleted=r["is_deleted"],
                    created_at=r["post_created_at"],
                ),
                thread=QueueThread(
                    id=str(r["thread_id"]),
                    title=r["title"],
                    slug=r["slug"],
                    status=r["thread_status"],
                    category_id=str(r["category_id"]),
                ),
                flag_count=r["flag_count"],
                reasons=sorted({f.reason for f in post_flags}),
                flaggers=list(
                    dict.fromkeys(f.flagger.username if f.flagger else f.flagger_agent_id or "?" for f in post_flags)
                ),
                latest_flag_at=r["latest_at"],
                flags=post_flags,
                author_history=histories.get(r["author_user_id"]),
            )
        )
    next_cursor = _encode_cursor(rows[-1]["latest_at"], rows[-1]["post_id"]) if more else None
    return QueuePage(items=items, next_cursor=next_cursor)


# --- resolution ---------------------------------------------------------------------------------------


async def resolve_flag(ctx: RequestContext, flag_ref: str, data: ResolveIn) -> ResolveOut:
    """Resolve an open flag with an action; every other open flag of the post is resolved the same way."""
    ctx.require_role("moderator")
    moderator_id = ctx.require_user().user_id
    flag_id = _parse_id(flag_ref, "flag")
    flag = await db.fetchrow("SELECT id, post_id, status FROM moderation_flag WHERE id = $1", flag_id)
    if flag is None:
        raise NotFound("flag not found")
    # Lock the post first, then its flags: concurrent resolutions of one post serialize here.
    post = await db.fetchrow(
        "SELECT p.id, p.thread_id, p.is_hidden, t.category_id, t.status AS thread_status FROM post p"
        " JOIN thread t ON t.id = p.thread_id WHERE p.id = $1 FOR UPDATE OF p",
        flag["post_id"],
    )
    status = await db.fetchval("SELECT status FROM moderation_flag WHERE id = $1 FOR UPDATE", flag_id)
    if status != "open":
        raise Conflict(f"this flag is already resolved ({status})")
    action = data.action
    notes = _clean(data.notes)
    now = datetime.now(UTC)
    resolved = await db.fetch(
        "UPDATE moderation_flag SET status = $2, resolution_action = $3, resolution_notes = $4,"
        " resolved_by = $5, resolved_at = $6 WHERE post_id = $1 AND status = 'open' RETURNING id",
        post["id"],
        _FLAG_STATUS_AFTER[action],
        action,
        notes,
        uuid.UUID(moderator_id),
        now,
    )
    is_hidden, thread_status = post["is_hidden"], post["thread_status"]
    if action in ("hide", "restore"):
        is_hidden = action == "hide"
        if is_hidden != post["is_hidden"]:
            await db.execute(
                "UPDATE post SET is_hidden = $2, updated_at = $3 WHERE id = $1", post["id"], is_hidden, now
            )
            await _emit_visibility(post["id"], post["thread_id"], post["category_id"], hidden=is_hidden)
    taken = await emit(
        sig.ModerationActionTaken(
            flag_id=str(flag_id),
            post_id=str(post["id"]),
            thread_id=str(post["thread_id"]),
            category_id=str(post["category_id"]),
            action=action,
            moderator_id=moderator_id,
        )
    )
    await _moderators_view(taken, post["id"])
    if action == "close_thread" and thread_status == "open":
        thread_status = "closed"
        await db.execute("UPDATE thread SET status = 'closed', updated_at = $2 WHERE id = $1", post["thread_id"], now)
        closed = await emit(
            sig.ThreadClosed(
                thread_id=str(post["thread_id"]), category_id=str(post["category_id"]), closed_by=moderator_id
            )
        )
        if closed is not None:
            thread = forum_queries.thread_out(await forum_queries.thread_row(str(post["thread_id"])))
            private = await forum_queries.category_is_private(post["category_id"])
            attach_view(closed, LiveView(thread=thread, private=private))
    await _decide_pending_hides(ctx, post["id"], approve=action == "hide", moderator_id=moderator_id)
    others = [str(r["id"]) for r in resolved if r["id"] != flag_id]
    return ResolveOut(
        flag=await _flag(flag_id),
        resolved_flag_ids=[str(flag_id), *others],
        post_is_hidden=is_hidden,
        thread_status=thread_status,
    )
