"""Expert-request preferences: a member opts out of (or back into) the routing agent's requests."""

from __future__ import annotations

import uuid

import msgspec

from backend.context import RequestContext
from engine import db


class RoutingPreference(msgspec.Struct, forbid_unknown_fields=True):
    opted_out: bool


async def get_preference(ctx: RequestContext) -> RoutingPreference:
    ctx.require_role("member")
    user_id = uuid.UUID(ctx.require_user().user_id)
    return RoutingPreference(
        opted_out=bool(await db.fetchval("SELECT 1 FROM routing_opt_out WHERE user_id = $1", user_id))
    )


async def set_preference(ctx: RequestContext, data: RoutingPreference) -> RoutingPreference:
    ctx.require_role("member")
    user_id = uuid.UUID(ctx.require_user().user_id)
    if data.opted_out:
        await db.execute("INSERT INTO routing_opt_out (user_id) VALUES ($1) ON CONFLICT DO NOTHING", user_id)
    else:
        await db.execute("DELETE FROM routing_opt_out WHERE user_id = $1", user_id)
    return data
