"""Who may subscribe to which websocket channel (the realtime `ChannelAuthorizer` of this app).

Each subscription is checked afresh against the database in its own short transaction, the same way
an HTTP request is (`authorize_org`): a membership revoked after the socket opened stops new
subscriptions. Channel ids (category, thread) must exist in the socket's own tenant, so a socket can
never name another org's thread, and be in a category the socket's user may see (private categories).
"""

from __future__ import annotations

import uuid
from typing import cast

from backend.context import RequestContext
from backend.forum.visibility import can_see_category, viewer_of
from backend.middleware import Reject, authorize_org
from engine import db
from engine.tenancy import tenant_scope
from realtime.session import Refusal, SocketIdentity

# the category a category/thread channel belongs to (None: no such category or thread in this tenant)
_CATEGORY_OF_SQL = {
    "category": "SELECT id FROM category WHERE id = $1",
    "thread": "SELECT category_id FROM thread WHERE id = $1",
}


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class OrgChannelAuthorizer:
    async def authorize(self, identity: SocketIdentity, channel: str) -> Refusal | None:
        base = cast(RequestContext, identity.context)
        kind, _, arg = channel.partition(":")
        async with db.transaction():
            ctx = RequestContext(
                services=base.services,
                principal=base.principal,
                ip_hash=base.ip_hash,
                correlation_id=base.correlation_id,
            )
            try:
                await authorize_org(ctx, identity.tenant)
            except Reject:
                return Refusal("not_found", "org not found")
            org = ctx.require_org()
            if kind == "org" and not arg:
                return None
            if kind in _CATEGORY_OF_SQL and arg:
                ident = _uuid(arg)
                if ident is None:
                    return Refusal("not_found", f"{kind} not found")
                async with tenant_scope(db.current_connection(), org.tenant):
                    if not await db.fetchval("SELECT to_regclass($1) IS NOT NULL", kind):
                        return Refusal("not_found", f"{kind} not found")
                    category_id = await db.fetchval(_CATEGORY_OF_SQL[kind], ident)
                    # a private category's threads are not disclosed to outsiders (same 404 as unknown)
                    if category_id is None or not await can_see_category(viewer_of(ctx), category_id):
                        return Refusal("not_found", f"{kind} not found")
                return None
            if kind == "moderation" and not arg:
                if ctx.has_role("moderator"):
                    return None
                return Refusal("forbidden", "moderators only")
            if kind == "agent-activity" and not arg:
                if ctx.has_role("admin"):
                    return None
                return Refusal("forbidden", "admins only")
            if kind == "user" and arg:
                ident = _uuid(arg)
                principal = ctx.principal
                if principal is not None and ident is not None and str(ident) == principal.user_id:
                    return None
                return Refusal("forbidden", "only your own notifications")
            return Refusal("invalid", f"unknown channel {channel!r}")
