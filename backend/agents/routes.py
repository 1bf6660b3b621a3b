"""Agent administration routes (API.md, "Moderation and agents") and agent-post feedback."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from backend.agents import metrics_daily, service
from backend.agents.metrics import question_metrics
from backend.agents.metrics_moderation import moderation_metrics
from backend.agents.schemas import (
    AgentList,
    AgentOut,
    AskIn,
    DirectiveStatus,
    FeedbackIn,
    InstallationIn,
    Page,
    ReplayIn,
)
from backend.context import Ctx


class AgentsController(Controller):
    path = "/api/v1/o/{org:str}"
    tags = ["agents"]

    @get("/agents")
    async def list_agents(self, ctx: Ctx, org: FromPath[str]) -> AgentList:
        """Available packages and this org's installations with their config (moderators)."""
        return AgentList(agents=await service.list_agents(ctx))

    @put("/agents/{package:str}")
    async def install(
        self, ctx: Ctx, org: FromPath[str], package: FromPath[str], data: JSONBody[InstallationIn]
    ) -> AgentOut:
        """Install, reconfigure, enable or disable a package in this org (admin)."""
        return await service.install(ctx, package, data)

    @get("/agents/metrics")
    async def metrics(self, ctx: Ctx, org: FromPath[str]) -> dict[str, Any]:
        """Per agent: responses, helpful rate, escalation rate, flag precision, cost, time to response; under
        "questions" the org's question metrics (spec §14.1: time to first response, answered within 24 h,
        deflection, escalation, helpful rate, cost per resolved thread); under "moderation": flags per day,
        time to review, false-flag rate per rule and agent, spam incidence, confidence distribution per
        agent, routing success (moderators; null = no data)."""
        return {
            "agents": await service.metrics(ctx),
            "questions": await question_metrics(ctx),
            "moderation": await moderation_metrics(),
        }

    @get("/agents/metrics/daily")
    async def metrics_daily(self, ctx: Ctx, org: FromPath[str], days: FromQuery[int] = 14) -> dict[str, Any]:
        """Per day and agent: responses, escalations, helpful/unhelpful feedback, executions, cost (admin)."""
        return {"days": await metrics_daily.daily_metrics(ctx, days)}

    @get("/signals")
    async def signals(
        self,
        ctx: Ctx,
        org: FromPath[str],
        type: FromQuery[str | None] = None,
        correlation_id: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page:
        """Signal explorer, newest first; `type` may end with `*` (admin)."""
        items, next_cursor = await service.list_signals(
            ctx, type_=type, correlation_id=correlation_id, cursor=cursor, limit=limit
        )
        return Page(items=list(items), next_cursor=next_cursor)

    @get("/directives")
    async def directives(
        self,
        ctx: Ctx,
        org: FromPath[str],
        status: FromQuery[DirectiveStatus | None] = None,
        type: FromQuery[str | None] = None,
        package: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page:
        """Directive queue (the agents' activity history), newest first; filters: status, type, package (admin)."""
        items, next_cursor = await service.list_directives(
            ctx, status=status, type_=type, cursor=cursor, limit=limit, package=package
        )
        return Page(items=items, next_cursor=next_cursor)

    @post("/directives/{directive_id:str}/approve", status_code=HTTP_200_OK)
    async def approve(self, ctx: Ctx, org: FromPath[str], directive_id: FromPath[str]) -> dict[str, Any]:
        return await service.decide(ctx, directive_id, approve=True)

    @post("/directives/{directive_id:str}/reject", status_code=HTTP_200_OK)
    async def reject(self, ctx: Ctx, org: FromPath[str], directive_id: FromPath[str]) -> dict[str, Any]:
        return await service.decide(ctx, directive_id, approve=False)

    @get("/executions/{execution_id:str}")
    async def execution(self, ctx: Ctx, org: FromPath[str], execution_id: FromPath[str]) -> dict[str, Any]:
        """Context, decision record, output, tokens, cost and the signal → directive → execution chain."""
        return await service.get_execution(ctx, execution_id)

    @post("/executions/{execution_id:str}/replay", status_code=HTTP_200_OK)
    async def replay(
        self, ctx: Ctx, org: FromPath[str], execution_id: FromPath[str], data: JSONBody[ReplayIn]
    ) -> dict[str, Any]:
        """Re-run on the recorded input: a dry run changes nothing; a real one never duplicates an effect."""
        return await service.replay(ctx, execution_id, dry_run=data.dry_run)

    @post("/threads/{ref:str}/summary", status_code=HTTP_202_ACCEPTED)
    async def summary(self, ctx: Ctx, org: FromPath[str], ref: FromPath[str]) -> dict[str, Any]:
        """Ask the summary agent for a TL;DR of this thread; 202 with the directive id."""
        return await service.request_summary(ctx, ref)

    @post("/posts/{post_id:str}/feedback", status_code=HTTP_200_OK)
    async def feedback(
        self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str], data: JSONBody[FeedbackIn]
    ) -> dict[str, Any]:
        """Rate an agent's post: helpful or not, with an optional reason (one rating per member, changeable);
        `solved: true` marks the thread solved by this answer (its author or a moderator)."""
        return await service.record_feedback(ctx, post_id, helpful=data.helpful, reason=data.reason, solved=data.solved)

    @post("/threads/{ref:str}/ask", status_code=HTTP_202_ACCEPTED)
    async def ask(self, ctx: Ctx, org: FromPath[str], ref: FromPath[str], data: JSONBody[AskIn]) -> dict[str, Any]:
        """Ask an agent (default the FAQ agent) to answer in this thread; 202 with the directive."""
        return await service.request_answer(ctx, ref, data.agent, data.post_id)
