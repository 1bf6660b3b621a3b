"""Profile route: a member's page in one org."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from backend.context import Ctx
from backend.profiles import service
from backend.profiles.schemas import ProfileOut


class ProfileController(Controller):
    path = "/api/v1/o/{org:str}/users"
    tags = ["profiles"]

    @get("/{username:str}")
    async def profile(self, ctx: Ctx, org: FromPath[str], username: FromPath[str]) -> ProfileOut:
        """A user's threads, replies, accepted answers and reactions received in this org."""
        return await service.get_profile(ctx, username)
