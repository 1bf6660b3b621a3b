"""Moderation routes (API.md, under /api/v1/o/{org}). Thin: parse, call the service, shape."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.context import Ctx
from backend.idempotency import IDEMPOTENT
from backend.moderation import members, policy, service
from backend.moderation.schemas import (
    FlagEnvelope,
    FlagIn,
    QueuePage,
    QueueStatus,
    QueueSummary,
    ResolveIn,
    ResolveOut,
    SilenceIn,
    SilenceOut,
)


class ModerationController(Controller):
    path = "/api/v1/o/{org:str}"
    tags = ["moderation"]

    @post("/posts/{post_id:str}/flags", status_code=HTTP_201_CREATED, opt=IDEMPOTENT)
    async def flag_post(
        self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str], data: JSONBody[FlagIn]
    ) -> FlagEnvelope:
        """Flag a post for moderators (any member; not your own post; once while your flag is open)."""
        return FlagEnvelope(flag=await service.create_flag(ctx, post_id, data))

    @get("/moderation/queue")
    async def queue(
        self,
        ctx: Ctx,
        org: FromPath[str],
        status: FromQuery[QueueStatus] = "open",
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> QueuePage:
        """Flagged posts, most recently flagged first, with their flags (moderators; cursor pagination)."""
        return await service.list_queue(ctx, status=status, cursor=cursor, limit=limit)

    @post("/moderation/flags/{flag_id:str}/resolve", status_code=HTTP_200_OK)
    async def resolve(
        self, ctx: Ctx, org: FromPath[str], flag_id: FromPath[str], data: JSONBody[ResolveIn]
    ) -> ResolveOut:
        """Resolve an open flag: dismiss, hide or restore the post, or close its thread (moderators).
        Every other open flag of the same post is resolved the same way."""
        return await service.resolve_flag(ctx, flag_id, data)

    @post("/moderation/policy/dry-run", status_code=HTTP_200_OK, opt={"reads_only": True})
    async def policy_dry_run(
        self, ctx: Ctx, org: FromPath[str], data: JSONBody[policy.PolicyDryRunIn]
    ) -> policy.PolicyDryRunOut:
        """How many flags (and which) the moderation agent would have raised over the last `days` of posts
        with this threshold / rule set, next to the current config. Changes nothing (admin)."""
        return await policy.dry_run(ctx, data)

    @get("/moderation/summary")
    async def summary(self, ctx: Ctx, org: FromPath[str]) -> QueueSummary:
        """How many posts wait in the open queue (moderators): the badge every page shows."""
        return QueueSummary(open_posts=await members.open_queue_count(ctx))

    @post("/members/{username:str}/silence", status_code=HTTP_200_OK)
    async def silence(
        self, ctx: Ctx, org: FromPath[str], username: FromPath[str], data: JSONBody[SilenceIn]
    ) -> SilenceOut:
        """Silence a member for `days` days (0 lifts it): they can read but not post (moderators)."""
        return await members.silence_member(ctx, username, data)
