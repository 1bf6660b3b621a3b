"""Notification routes: the signed-in user's inbox in one org."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from backend.context import Ctx
from backend.notifications import service
from backend.notifications.schemas import MarkReadIn, MarkReadOut, NotificationPage


class NotificationController(Controller):
    path = "/api/v1/o/{org:str}/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_notifications(
        self,
        ctx: Ctx,
        org: FromPath[str],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 20,
        unread: FromQuery[bool] = False,
    ) -> NotificationPage:
        """Newest first; `cursor` is the previous page's `next_cursor`; `unread=true` filters."""
        return await service.list_notifications(ctx, cursor=cursor, limit=limit, unread_only=unread)

    @post("/read", status_code=HTTP_200_OK)
    async def mark_read(self, ctx: Ctx, org: FromPath[str], data: JSONBody[MarkReadIn]) -> MarkReadOut:
        """Mark `ids` (or `all`) of your notifications read; emits `forum.notification.read`."""
        return await service.mark_read(ctx, data)
