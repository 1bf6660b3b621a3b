"""Routes of expert routing preferences (under /api/v1/o/{org})."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from backend.context import Ctx
from backend.routing import service
from backend.routing.service import RoutingPreference


class RoutingController(Controller):
    path = "/api/v1/o/{org:str}"
    tags = ["agents"]

    @get("/me/expert-requests")
    async def preference(self, ctx: Ctx, org: FromPath[str]) -> RoutingPreference:
        """Whether the routing agent may ask you to answer questions in this org."""
        return await service.get_preference(ctx)

    @put("/me/expert-requests")
    async def set_preference(
        self, ctx: Ctx, org: FromPath[str], data: JSONBody[RoutingPreference]
    ) -> RoutingPreference:
        """Opt out of (or back into) the routing agent's requests to answer questions."""
        return await service.set_preference(ctx, data)
