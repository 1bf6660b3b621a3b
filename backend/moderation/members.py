"""Moderating members (not posts): silence a member for N days, and the history moderators weigh before
acting (their posts, flags against them, hidden posts, current silence). Public rows: memberships."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from backend.context import RequestContext
from backend.errors import Forbidden, NotFound, Unprocessable
from backend.forum.signals import MemberSilenced
from backend.moderation.schemas import MemberHistory, SilenceIn, SilenceOut
from engine import db
from engine.signals import emit


async def silence_member(ctx: RequestContext, username: str, data: SilenceIn) -> SilenceOut:
    """Silence (days > 0) or unsilence (days = 0) a member of this org (moderators; never a moderator or admin)."""
    ctx.require_role("moderator")
    org = ctx.require_org()
    actor = ctx.require_user()
    row = await db.fetchrow(
        "SELECT u.id, u.username, m.role FROM users u JOIN memberships m ON m.user_id = u.id AND m.org_id = $1"
        " WHERE lower(u.username) = lower($2)",
        uuid.UUID(org.id),
        username,
    )
    if row is None:
        raise NotFound(f"no member named {username!r} in this org")
    if str(row["id"]) == actor.user_id:
        raise Unprocessable("you cannot silence yourself")
    if row["role"] != "member":
        raise Forbidden("moderators and admins cannot be silenced: change their role first")
    until = datetime.now(UTC) + timedelta(days=data.days) if data.days else None
    reason = (data.reason or "").strip() or None
    await db.execute(
        "UPDATE memberships SET silenced_until = $3, silenced_reason = $4 WHERE org_id = $1 AND user_id = $2",
        uuid.UUID(org.id),
        row["id"],
        until,
        reason,
    )
    await emit(
        MemberSilenced(
            user_id=str(row["id"]),
            username=row["username"],
            until=until.isoformat() if until else None,
            reason=reason,
            moderator_id=actor.user_id,
        )
    )
    return SilenceOut(username=row["username"], silenced_until=until, reason=reason)


async def ensure_not_silenced(ctx: RequestContext) -> None:
    """Refuse a post from a member silenced in this org (403 saying until when)."""
    if ctx.principal is None or ctx.org is None:
        return
    until = await db.fetchval(
        "SELECT silenced_until FROM memberships WHERE org_id = $1 AND user_id = $2 AND silenced_until > now()",
        uuid.UUID(ctx.org.id),
        uuid.UUID(ctx.principal.user_id),
    )
    if until is not None:
        raise Forbidden(
            f"a moderator silenced you in this org until {until:%Y-%m-%d %H:%M} UTC: you can read but not post"
        )


async def member_histories(ctx: RequestContext, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, MemberHistory]:
    """Per author: posts written, flags received (and how they ended), hidden posts, silence (one query each)."""
    if not user_ids:
        return {}
    org = ctx.require_org()
    counts = await db.fetch(
        "SELECT p.author_user_id AS uid, count(*) AS posts, count(*) FILTER (WHERE p.is_hidden) AS hidden"
        " FROM post p WHERE p.author_user_id = ANY($1::uuid[]) GROUP BY p.author_user_id",
        user_ids,
    )
    flags = await db.fetch(
        "SELECT p.author_user_id AS uid, count(*) AS flags,"
        " count(*) FILTER (WHERE f.status = 'action_taken') AS upheld,"
        " count(*) FILTER (WHERE f.status = 'dismissed') AS dismissed"
        " FROM moderation_flag f JOIN post p ON p.id = f.post_id WHERE p.author_user_id = ANY($1::uuid[])"
        " GROUP BY p.author_user_id",
        user_ids,
    )
    members = await db.fetch(
        "SELECT user_id AS uid, role, created_at, silenced_until FROM memberships"
        " WHERE org_id = $1 AND user_id = ANY($2::uuid[])",
        uuid.UUID(org.id),
        user_ids,
    )
    out = {uid: MemberHistory() for uid in user_ids}
    for r in counts:
        out[r["uid"]].posts, out[r["uid"]].hidden_posts = r["posts"], r["hidden"]
    for r in flags:
        h = out[r["uid"]]
        h.flags_received, h.flags_upheld, h.flags_dismissed = r["flags"], r["upheld"], r["dismissed"]
    now = datetime.now(UTC)
    for r in members:
        h = out[r["uid"]]
        h.role, h.member_since = r["role"], r["created_at"]
        h.silenced_until = r["silenced_until"] if r["silenced_until"] and r["silenced_until"] > now else None
    return out


async def open_queue_count(ctx: RequestContext) -> int:
    """How many posts have open flags (the moderators' badge)."""
    ctx.require_role("moderator")
    count: int = await db.fetchval("SELECT count(DISTINCT post_id) FROM moderation_flag WHERE status = 'open'")
    return count
