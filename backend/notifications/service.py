"""Notifications: created inside the transaction that creates the post, listed and marked read by
their owner. Each new notification emits `forum.notification.created`, which the realtime layer
delivers on `user:<id>` only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from backend.context import RequestContext
from backend.errors import Invalid
from backend.notifications.schemas import (
    MarkReadIn,
    MarkReadOut,
    NotificationKind,
    NotificationOut,
    NotificationPage,
)
from backend.notifications.signals import NotificationCreated, NotificationsRead
from engine import db
from engine.ids import uuid7
from engine.signals import emit
from engine.tenancy import current_tenant

# By slug: engine-driven work (the agent runner) knows its tenant by slug only.
_READERS_SQL = """
SELECT u.id FROM users u, orgs o
WHERE u.id = ANY($1::uuid[]) AND o.slug = $2
  AND (o.visibility = 'public'
       OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.org_id = o.id))
"""

_INSERT_SQL = """
INSERT INTO notification (id, user_id, kind, post_id, thread_id, actor_user_id, actor_agent_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, kind, post_id) WHERE post_id IS NOT NULL DO NOTHING
RETURNING id
"""


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


async def _readers(user_ids: Sequence[str]) -> set[str]:
    """Of `user_ids`, those who may read this org (members, or anyone for a public org)."""
    if not user_ids:
        return set()
    rows = await db.fetch(_READERS_SQL, [uuid.UUID(u) for u in user_ids], current_tenant().slug)
    return {str(r["id"]) for r in rows}


async def _create(
    recipients: dict[str, NotificationKind],
    *,
    post_id: str | None,
    thread_id: str | None,
    actor_user_id: str | None,
    actor_agent_id: str | None,
) -> list[str]:
    created: list[str] = []
    allowed = await _readers(list(recipients))
    for user_id, kind in recipients.items():
        if user_id not in allowed:
            continue
        notification_id = await db.fetchval(
            _INSERT_SQL,
            uuid7(),
            uuid.UUID(user_id),
            kind,
            _uuid(post_id),
            _uuid(thread_id),
            _uuid(actor_user_id),
            actor_agent_id,
        )
        if notification_id is None:
            continue  # already notified of this post
        created.append(str(notification_id))
        await emit(
            NotificationCreated(
                notification_id=str(notification_id),
                user_id=user_id,
                kind=kind,
                post_id=post_id,
                thread_id=thread_id,
                actor_user_id=actor_user_id,
                actor_agent_id=actor_agent_id,
            )
        )
    return created


async def notify_for_post(
    *,
    post_id: str,
    thread_id: str,
    author_user_id: str | None,
    author_agent_id: str | None = None,
    mentioned_user_ids: Sequence[str] = (),
    reply_to_post_id: str | None = None,
) -> list[str]:
    """Notify the users a new post mentions and the author of the post it replies to.

    Call inside the post-creating transaction, in the tenant scope (the request boundary's). Skips the
    author, users who cannot read the org, and duplicates (one notification per user, kind and post;
    a user both mentioned and replied to gets the mention). Returns the new notification ids; each
    emits `forum.notification.created`.
    """
    recipients: dict[str, NotificationKind] = {}
    if reply_to_post_id:
        replied_to = await db.fetchval("SELECT author_user_id FROM post WHERE id = $1", uuid.UUID(reply_to_post_id))
        if replied_to is not None:
            recipients[str(replied_to)] = "reply"
    for user_id in mentioned_user_ids:
        recipients[str(uuid.UUID(user_id))] = "mention"
    if author_user_id:
        recipients.pop(str(uuid.UUID(author_user_id)), None)
    return await _create(
        recipients,
        post_id=post_id,
        thread_id=thread_id,
        actor_user_id=author_user_id,
        actor_agent_id=author_agent_id,
    )


async def notify_agent_escalation(
    *, thread_id: str, post_id: str | None, agent_id: str, user_ids: Sequence[str]
) -> list[str]:
    """An agent hands a thread to humans (experts, moderators): one notification each."""
    recipients: dict[str, NotificationKind] = {str(uuid.UUID(u)): "agent_escalation" for u in user_ids}
    return await _create(recipients, post_id=post_id, thread_id=thread_id, actor_user_id=None, actor_agent_id=agent_id)


async def notify_user(
    *, user_id: str, kind: str, thread_id: str | None, post_id: str | None, agent_id: str
) -> list[str]:
    """One notification from an agent to one member (e.g. a welcome)."""
    recipients: dict[str, NotificationKind] = {str(uuid.UUID(user_id)): kind}  # type: ignore[dict-item]
    return await _create(recipients, post_id=post_id, thread_id=thread_id, actor_user_id=None, actor_agent_id=agent_id)


async def notify_expert_request(*, thread_id: str, post_id: str | None, agent_id: str, user_id: str) -> list[str]:
    """The routing agent asks a member to look at an unanswered or escalated thread."""
    recipients: dict[str, NotificationKind] = {str(uuid.UUID(user_id)): "expert_request"}
    return await _create(recipients, post_id=post_id, thread_id=thread_id, actor_user_id=None, actor_agent_id=agent_id)


async def notify_digest(*, thread_id: str, post_id: str, agent_id: str, user_ids: Sequence[str]) -> list[str]:
    """A category's weekly digest was posted: one notification per subscriber."""
    recipients: dict[str, NotificationKind] = {str(uuid.UUID(u)): "digest" for u in user_ids}
    return await _create(recipients, post_id=post_id, thread_id=thread_id, actor_user_id=None, actor_agent_id=agent_id)


_LIST_SQL = """
SELECT n.id, n.kind, n.post_id, n.thread_id, t.title AS thread_title, n.actor_user_id,
       u.username AS actor_username, n.actor_agent_id, n.read_at, n.created_at
FROM notification n
LEFT JOIN thread t ON t.id = n.thread_id
LEFT JOIN users u ON u.id = n.actor_user_id
WHERE n.user_id = $1 AND ($2::uuid IS NULL OR n.id < $2) AND (NOT $3 OR n.read_at IS NULL)
ORDER BY n.id DESC
LIMIT $4
"""


async def list_notifications(
    ctx: RequestContext, *, cursor: str | None, limit: int, unread_only: bool
) -> NotificationPage:
    principal = ctx.require_user()
    ctx.require_org()
    if not 1 <= limit <= 100:
        raise Invalid("limit must be between 1 and 100", field="limit")
    try:
        before = uuid.UUID(cursor) if cursor else None
    except ValueError:
        raise Invalid("invalid cursor", field="cursor") from None
    user = uuid.UUID(principal.user_id)
    rows = await db.fetch(_LIST_SQL, user, before, unread_only, limit + 1)
    unread = await db.fetchval("SELECT count(*) FROM notification WHERE user_id = $1 AND read_at IS NULL", user)
    items = [
        NotificationOut(
            id=str(r["id"]),
            kind=r["kind"],
            post_id=str(r["post_id"]) if r["post_id"] else None,
            thread_id=str(r["thread_id"]) if r["thread_id"] else None,
            thread_title=r["thread_title"],
            actor_user_id=str(r["actor_user_id"]) if r["actor_user_id"] else None,
            actor_username=r["actor_username"],
            actor_agent_id=r["actor_agent_id"],
            read_at=r["read_at"],
            created_at=r["created_at"],
        )
        for r in rows[:limit]
    ]
    next_cursor = items[-1].id if len(rows) > limit else None
    return NotificationPage(items=items, next_cursor=next_cursor, unread_count=int(unread))


async def mark_read(ctx: RequestContext, data: MarkReadIn) -> MarkReadOut:
    principal = ctx.require_user()
    ctx.require_org()
    user = uuid.UUID(principal.user_id)
    if data.all:
        status = await db.execute(
            "UPDATE notification SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user
        )
        ids: list[str] = []
    elif data.ids:
        try:
            wanted = [uuid.UUID(i) for i in data.ids]
        except ValueError:
            raise Invalid("ids must be notification ids", field="ids") from None
        rows = await db.fetch(
            "UPDATE notification SET read_at = now() WHERE user_id = $1 AND id = ANY($2::uuid[])"
            " AND read_at IS NULL RETURNING id",
            user,
            wanted,
        )
        ids = [str(r["id"]) for r in rows]
        status = f"UPDATE {len(rows)}"
    else:
        raise Invalid("send ids or all: true")
    updated = int(status.rsplit(" ", 1)[-1])
    if updated:
        await emit(NotificationsRead(user_id=principal.user_id, notification_ids=ids, all=data.all))
    return MarkReadOut(updated=updated)
