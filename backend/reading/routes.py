"""Routes of per-member reading state (under /api/v1/o/{org})."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from backend.context import Ctx
from backend.reading import service
from backend.reading.service import ReadMark, ThreadChanges


class ReadingController(Controller):
    path = "/api/v1/o/{org:str}"
    tags = ["forum"]

    @get("/threads/{ref:str}/changes")
    async def changes(self, ctx: Ctx, org: FromPath[str], ref: FromPath[str]) -> ThreadChanges:
        """What changed since you last marked this thread read: a short summary of the new posts by others,
        each point linked to its post (members)."""
        return await service.changes_since_last_read(ctx, ref)

    @post("/threads/{ref:str}/read", status_code=HTTP_200_OK)
    async def mark_read(self, ctx: Ctx, org: FromPath[str], ref: FromPath[str]) -> ReadMark:
        """Mark this thread read now (members)."""
        return await service.mark_read(ctx, ref)
