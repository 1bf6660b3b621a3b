"""Who may see what in an org's forum — the one place that decides it (people and agents alike).

A private category is visible to the org's moderators and admins and to its members
(`category_member`) only; every other category to anyone who may read the org. Hidden and deleted posts
are never shown to agents (and their bodies are concealed from people by the forum reads).
"""

from __future__ import annotations

import uuid

import msgspec

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
