"""Who may see what in an org's forum — the one place that decides it (people and agents alike).

A private category is visible to the org's moderators and admins and to its members
(`category_member`) only; every other category to anyone who may read the org. Hidden and deleted posts
are never shown to agents (and their bodies are concealed from people by the forum reads).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from backend.context import RequestContext
from backend.errors import NotFound
from engine import db
from engine.tenancy import current_tenant

STAFF_ROLES = ("moderator", "admin")
VISIBLE_POST_SQL = "NOT p.is_deleted AND NOT p.is_hidden"


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str | None  # None: an anonymous reader, or "what any member may see"
    is_staff: bool = False


async def viewer_for_user(user_id: str | None) -> Viewer:
    """The viewer for a user of the current tenant's org (its role decides staff)."""
    if user_id is None:
        return Viewer(user_id=None)
    role = await db.fetchval(
        "SELECT m.role FROM memberships m JOIN orgs o ON o.id = m.org_id WHERE o.slug = $1 AND m.user_id = $2",
        current_tenant().slug,
        uuid.UUID(user_id),
    )
    return Viewer(user_id=user_id, is_staff=role in STAFF_ROLES)


async def visible_category_ids(viewer: Viewer) -> list[uuid.UUID]:
    if viewer.is_staff:
        rows = await db.fetch("SELECT id FROM category")
    else:
        rows = await db.fetch(
            "SELECT c.id FROM category c WHERE NOT c.is_private OR EXISTS (SELECT 1 FROM category_member m"
            " WHERE m.category_id = c.id AND m.user_id = $1)",
            uuid.UUID(viewer.user_id) if viewer.user_id else None,
        )
    return [r["id"] for r in rows]


async def can_see_category(viewer: Viewer, category_id: uuid.UUID) -> bool:
    return category_id in set(await visible_category_ids(viewer))


def viewer_of(ctx: RequestContext) -> Viewer:
    """The viewer a request acts as (its principal, staff by its org role)."""
    return Viewer(
        user_id=ctx.principal.user_id if ctx.principal else None,
        is_staff=ctx.has_role("moderator"),
    )


async def require_visible_thread(ctx: RequestContext, thread: Any) -> None:
    """404 (not 403: its existence is not disclosed) when the request may not see `thread`'s category."""
    if not await can_see_category(viewer_of(ctx), thread["category_id"]):
        raise NotFound("thread not found")
