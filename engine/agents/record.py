"""Record: what an execution used and produced (reads, decision, tokens, cost, latency), the daily usage
that cost caps read, and the `agent.execution.finished` signal. Runs inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from engine import db
from engine.agents.api import AgentContext, Decision
from engine.agents.signals import ExecutionFinished
from engine.llm import LLMProvider, LLMRequest, LLMResult


class MeteredProvider:
    """Wraps the runtime's LLM: clamps max_tokens to the package's budget and sums usage and cost."""

    def __init__(self, inner: LLMProvider, max_tokens: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.max_tokens = max_tokens
        self.results: list[LLMResult] = []

    async def generate(
        self, request: LLMRequest, on_delta: Callable[[str], Awaitable[None]] | None = None
    ) -> LLMResult:
        if request.max_tokens > self.max_tokens:
            request = msgspec.structs.replace(request, max_tokens=self.max_tokens)
        result = await self.inner.generate(request, on_delta)
        self.results.append(result)
        return result

    async def aclose(self) -> None:
        """The wrapped provider belongs to the runtime: closing the meter leaves it open."""
        return None

    @property
    def input_tokens(self) -> int:
        return sum(r.usage.input_tokens for r in self.results)

    @property
    def output_tokens(self) -> int:
        return sum(r.usage.output_tokens for r in self.results)

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results)

    @property
    def first_token_ms(self) -> float | None:
        return self.results[0].first_token_ms if self.results else None


async def usage_today(package: str) -> float:
    value = await db.fetchval("SELECT cost_usd FROM agent_usage WHERE day = current_date AND package = $1", package)
    return float(value or 0)


async def org_usage_today() -> float:
    value = await db.fetchval("SELECT sum(cost_usd) FROM agent_usage WHERE day = current_date")
    return float(value or 0)


async def record_execution(
    execution_id: str,
    status: str,
    ctx: AgentContext | None,
    metered: MeteredProvider | None,
    decision: Decision | None,
    latency_ms: float | None,
    error: str | None,
    *,
    refusals: list[str] | None = None,
) -> None:
    context: dict[str, object] = {"reads": ctx.reads, "config": ctx.config} if ctx else {}
    all_refusals = [*(ctx.refusals if ctx else []), *(refusals or [])]
    if all_refusals:
        context["refusals"] = all_refusals
    last = metered.results[-1] if metered and metered.results else None
    await db.execute(
        "UPDATE execution SET status = $2, context = $3::jsonb, decision = $4::jsonb, output = $5, input_tokens = $6,"
        " output_tokens = $7, cost_usd = $8, latency_ms = $9, first_token_ms = $10, error = $11, finished_at = now(),"
        " heartbeat_at = now(), provider = coalesce($12, provider), model = coalesce($13, model) WHERE id = $1",
        uuid.UUID(execution_id),
        status,
        msgspec.json.encode(context).decode(),
        msgspec.json.encode(decision).decode() if decision else None,
        decision.output if decision else None,
        metered.input_tokens if metered else 0,
        metered.output_tokens if metered else 0,
        Decimal(str(round(metered.cost_usd, 6))) if metered else Decimal(0),
        latency_ms,
        metered.first_token_ms if metered else None,
        error,
        last.provider if last else None,
        last.model if last else None,
    )


async def add_usage(package: str, cost_usd: float) -> None:
    await db.execute(
        "INSERT INTO agent_usage (day, package, executions, cost_usd) VALUES ($1, $2, 1, $3)"
        " ON CONFLICT (day, package) DO UPDATE SET executions = agent_usage.executions + 1,"
        " cost_usd = agent_usage.cost_usd + EXCLUDED.cost_usd",
        datetime.now(UTC).date(),
        package,
        Decimal(str(round(cost_usd, 6))),
    )


def finished_signal(
    execution_id: str,
    directive_id: str,
    package: str,
    status: str,
    *,
    decision: Decision | None = None,
    metered: MeteredProvider | None = None,
    latency_ms: float = 0.0,
    error: str | None = None,
) -> ExecutionFinished:
    return ExecutionFinished(
        execution_id=execution_id,
        directive_id=directive_id,
        package=package,
        status=status,
        action=decision.action if decision else None,
        confidence=decision.confidence if decision else None,
        cost_usd=metered.cost_usd if metered else 0.0,
        latency_ms=latency_ms,
        error=error,
    )
