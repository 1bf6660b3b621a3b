"""The directive runner: one execution row per attempt; the package decides (streaming its draft);
the side effect and the directive's new state commit in ONE transaction with the outcome signals.

Idempotency: a directive that already succeeded is never applied again, and handlers key their effects
on the directive's idempotency key (e.g. a post's unique idempotency_key), so a worker killed between
the effect and the acknowledgement, a retry or a replay produce one effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from redis.asyncio import Redis

from engine import db
from engine.agents.api import AgentContext, Decision, DirectiveView
from engine.agents.directives import RUNNABLE, get_directive
from engine.agents.registry import AgentRuntime
from engine.agents.router import merged_config
from engine.agents.signals import ExecutionFinished, ExecutionStarted
from engine.ids import uuid7
from engine.llm import LLMProvider, LLMRequest, LLMResult
from engine.relay import StreamConfig
from engine.signals import SignalContext, emit
from engine.work import tenant_work

log = logging.getLogger("forum.runner")
Heartbeat = Callable[[], Awaitable[None]]


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


class RunOutcome(msgspec.Struct, frozen=True, kw_only=True):
    directive_id: str
    execution_id: str | None
    status: str  # succeeded | failed | skipped | retry
    decision: Decision | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


def _agent_context(package: str, correlation_id: str, directive_id: str) -> SignalContext:
    return SignalContext(
        actor_type="agent",
        actor_id=package,
        source="job",
        correlation_id=correlation_id,
        causation_id=directive_id,
    )


async def _usage_today(package: str) -> float:
    value = await db.fetchval("SELECT cost_usd FROM agent_usage WHERE day = current_date AND package = $1", package)
    return float(value or 0)


async def _org_usage_today() -> float:
    value = await db.fetchval("SELECT sum(cost_usd) FROM agent_usage WHERE day = current_date")
    return float(value or 0)


async def run_directive(
    runtime: AgentRuntime,
    redis: Redis,
    streams: StreamConfig,
    tenant: str,
    directive_id: str,
    *,
    heartbeat: Heartbeat | None = None,
) -> RunOutcome:
    sys_ctx = SignalContext(actor_type="system", actor_id="runner", source="job", correlation_id=str(uuid.uuid4()))
    # 1. claim: one execution row per attempt
    async with tenant_work(redis, streams, tenant, sys_ctx):
        directive = await get_directive(directive_id, lock=True)
        if directive is None:
            return RunOutcome(directive_id=directive_id, execution_id=None, status="skipped", error="not found")
        if directive.status not in RUNNABLE:
            return RunOutcome(
                directive_id=directive_id,
                execution_id=None,
                status="skipped",
                error=f"directive is {directive.status}",
            )
        package_name = directive.package or ""
        package = runtime.packages.get(package_name)
        installation = await db.fetchrow("SELECT enabled, config FROM installation WHERE package = $1", package_name)
        attempt = directive.attempts + 1
        execution_id = str(uuid7())
        await db.execute(
            "UPDATE directive SET status = 'running', attempts = $2, updated_at = now() WHERE id = $1",
            uuid.UUID(directive_id),
            attempt,
        )
        abandoned = await db.fetch(
            "UPDATE execution SET status = 'failed', error = 'abandoned: its worker was lost',"
            " finished_at = now() WHERE directive_id = $1 AND status = 'running' RETURNING id",
            uuid.UUID(directive_id),
        )
        await db.execute(
            "INSERT INTO execution (id, directive_id, attempt, package, status, provider, model)"
            " VALUES ($1, $2, $3, $4, 'running', $5, $6)",
            uuid.UUID(execution_id),
            uuid.UUID(directive_id),
            attempt,
            package_name,
            runtime.llm.name,
            runtime.llm.model,
        )
        await emit(
            ExecutionStarted(
                execution_id=execution_id,
                directive_id=directive_id,
                package=package_name,
                attempt=attempt,
                dry_run=False,
            ),
            context=_agent_context(package_name, directive.correlation_id, directive_id),
        )
        refusal = None
        if package is None:
            refusal = f"package {package_name!r} is not available on this worker"
        elif installation is None or not installation["enabled"]:
            refusal = f"package {package_name} is not enabled in this org"
        elif directive.type not in runtime.handlers:
            refusal = f"no handler for directive type {directive.type}"
        else:
            cap = min(
                package.manifest.daily_cost_cap_usd,
                float(
                    merged_config(package, installation["config"]).get(
                        "daily_cost_cap_usd", package.manifest.daily_cost_cap_usd
                    )
                ),
            )
            if await _usage_today(package_name) >= cap:
                refusal = f"daily cost cap of ${cap:.2f} reached for {package_name}"
            elif await _org_usage_today() >= runtime.limits.daily_cost_cap_usd:
                refusal = f"this org's daily agent cost cap of ${runtime.limits.daily_cost_cap_usd:.2f} is reached"
        view = directive.view(attempt)
        config = merged_config(package, installation["config"]) if package and installation else {}
    await _end_abandoned_drafts(runtime, tenant, view, [str(row["id"]) for row in abandoned])
    if refusal is not None:
        return await _finish_failed(
            runtime,
            redis,
            streams,
            tenant,
            view,
            execution_id,
            directive.correlation_id,
            refusal,
            retry=False,
            attempt=attempt,
            max_attempts=directive.max_attempts,
        )
    assert package is not None

    # 2. decide: outside any transaction (an LLM call can take seconds); stream the draft
    metered = MeteredProvider(runtime.llm, package.manifest.max_tokens)
    ctx = AgentContext(tenant, config, runtime.reader_for(tenant))
    draft = runtime.drafts(tenant, view, execution_id) if runtime.drafts else None
    last_beat = time.monotonic()

    async def on_delta(text: str) -> None:
        nonlocal last_beat
        if draft is not None:
            await draft.delta(text)
        if heartbeat is not None and time.monotonic() - last_beat > 2:
            last_beat = time.monotonic()
            await heartbeat()

    started = time.perf_counter()
    try:
        decision = await package.decide(view, ctx, metered, on_delta)
    except asyncio.CancelledError:  # the job was cancelled (timeout, shutdown): its draft is over
        if draft is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(draft.end(None, outcome="abandoned"))
        raise
    except Exception as exc:
        if draft is not None:
            with contextlib.suppress(Exception):
                await draft.end(None, outcome="failed")
        return await _finish_failed(
            runtime,
            redis,
            streams,
            tenant,
            view,
            execution_id,
            directive.correlation_id,
            f"{type(exc).__name__}: {exc}",
            retry=True,
            attempt=attempt,
            max_attempts=directive.max_attempts,
            ctx=ctx,
            metered=metered,
        )
    latency_ms = (time.perf_counter() - started) * 1000

    # 3. apply: the side effect, the directive's state and the outcome signals in one transaction
    async with tenant_work(
        redis, streams, tenant, _agent_context(package_name, directive.correlation_id, directive_id)
    ):
        current = await get_directive(directive_id, lock=True)
        assert current is not None
        if current.status == "succeeded":
            result = current.result or {}  # a concurrent attempt applied it first: never twice
        else:
            result = await runtime.handlers[directive.type](view, decision, execution_id)
            await db.execute(
                "UPDATE directive SET status = 'succeeded', result = $2::jsonb, error = NULL, updated_at = now(),"
                " finished_at = now() WHERE id = $1",
                uuid.UUID(directive_id),
                msgspec.json.encode(result).decode(),
            )
        await _record_execution(execution_id, "succeeded", ctx, metered, decision, latency_ms, None)
        await _add_usage(package_name, metered.cost_usd)
        await emit(
            ExecutionFinished(
                execution_id=execution_id,
                directive_id=directive_id,
                package=package_name,
                status="succeeded",
                action=decision.action,
                confidence=decision.confidence,
                cost_usd=metered.cost_usd,
                latency_ms=latency_ms,
                error=None,
            )
        )
    if draft is not None:
        await draft.end(result)
    return RunOutcome(
        directive_id=directive_id,
        execution_id=execution_id,
        status="succeeded",
        decision=decision,
        result=result,
    )


async def _end_abandoned_drafts(
    runtime: AgentRuntime, tenant: str, view: DirectiveView, execution_ids: list[str]
) -> None:
    """End the drafts of attempts whose worker died mid-stream (their rows were just marked failed), so
    open pages drop them and new subscribers are not replayed them. If Redis is unreachable the
    worker's draft sweep ends them later."""
    if runtime.drafts is None:
        return
    for execution_id in execution_ids:
        draft = runtime.drafts(tenant, view, execution_id)
        if draft is None:
            continue
        try:
            await draft.end(None, outcome="abandoned")
        except Exception:
            log.warning("runner: could not end the draft of abandoned execution %s", execution_id, exc_info=True)


async def _record_execution(
    execution_id: str,
    status: str,
    ctx: AgentContext | None,
    metered: MeteredProvider | None,
    decision: Decision | None,
    latency_ms: float | None,
    error: str | None,
) -> None:
    context = {"reads": ctx.reads, "config": ctx.config} if ctx else {}
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


async def _add_usage(package: str, cost_usd: float) -> None:
    await db.execute(
        "INSERT INTO agent_usage (day, package, executions, cost_usd) VALUES ($1, $2, 1, $3)"
        " ON CONFLICT (day, package) DO UPDATE SET executions = agent_usage.executions + 1,"
        " cost_usd = agent_usage.cost_usd + EXCLUDED.cost_usd",
        datetime.now(UTC).date(),
        package,
        Decimal(str(round(cost_usd, 6))),
    )


async def _finish_failed(
    runtime: AgentRuntime,
    redis: Redis,
    streams: StreamConfig,
    tenant: str,
    view: DirectiveView,
    execution_id: str,
    correlation_id: str,
    error: str,
    *,
    retry: bool,
    attempt: int,
    max_attempts: int,
    ctx: AgentContext | None = None,
    metered: MeteredProvider | None = None,
) -> RunOutcome:
    final = not retry or attempt >= max_attempts
    package = view.package or ""
    async with tenant_work(redis, streams, tenant, _agent_context(package, correlation_id, view.id)):
        await _record_execution(execution_id, "failed", ctx, metered, None, None, error)
        await db.execute(
            "UPDATE directive SET status = $2, error = $3, updated_at = now(),"
            " finished_at = CASE WHEN $2 = 'failed' THEN now() ELSE NULL END WHERE id = $1 AND status = 'running'",
            uuid.UUID(view.id),
            "failed" if final else "pending",
            error,
        )
        if metered is not None and metered.cost_usd:
            await _add_usage(package, metered.cost_usd)
        await emit(
            ExecutionFinished(
                execution_id=execution_id,
                directive_id=view.id,
                package=package,
                status="failed",
                action=None,
                confidence=None,
                cost_usd=metered.cost_usd if metered else 0.0,
                latency_ms=0.0,
                error=error,
            )
        )
    log.warning("runner: %s attempt %d failed: %s", view.id, attempt, error)
    return RunOutcome(
        directive_id=view.id, execution_id=execution_id, status="failed" if final else "retry", error=error
    )


class RecordedReader:
    """Serves a replay the reads its original execution made, in order; unknown reads go live."""

    def __init__(self, reads: list[dict[str, Any]], live: Callable[[str, Any], Awaitable[Any]]) -> None:
        self._reads = list(reads)
        self._live = live

    async def __call__(self, name: str, params: Any) -> Any:
        for index, read in enumerate(self._reads):
            if read["query"] == name and read["params"] == msgspec.to_builtins(dict(params)):
                return self._reads.pop(index)["result"]
        return await self._live(name, params)


async def replay_execution(
    runtime: AgentRuntime,
    redis: Redis,
    streams: StreamConfig,
    tenant: str,
    execution_id: str,
    *,
    dry_run: bool,
    replayed_by: str,
) -> RunOutcome:
    """Re-run the package on an execution's recorded input. A dry run records the decision it would
    make now and changes nothing; a real replay goes through the directive's handler, whose idempotency
    key makes a second effect impossible."""
    sys_ctx = SignalContext(actor_type="user", actor_id=replayed_by, source="web", correlation_id=str(uuid.uuid4()))
    async with tenant_work(redis, streams, tenant, sys_ctx):
        original = await db.fetchrow("SELECT * FROM execution WHERE id = $1", uuid.UUID(execution_id))
        if original is None:
            raise LookupError("execution not found")
        directive = await get_directive(str(original["directive_id"]))
        assert directive is not None
        installation = await db.fetchrow("SELECT config FROM installation WHERE package = $1", directive.package)
    package = runtime.packages.get(directive.package or "")
    if package is None:
        raise LookupError(f"package {directive.package!r} is not available")
    recorded = original["context"]
    recorded = msgspec.json.decode(recorded) if isinstance(recorded, str) else (recorded or {})
    live = runtime.reader_for(tenant)
    reader = RecordedReader(recorded.get("reads", []), live) if dry_run else live
    ctx = AgentContext(tenant, merged_config(package, installation["config"] if installation else {}), reader)
    metered = MeteredProvider(runtime.llm, package.manifest.max_tokens)
    new_id = str(uuid7())
    view = DirectiveView(
        id=directive.id,
        type=directive.type,
        idempotency_key=directive.idempotency_key,
        tenant=tenant,
        package=directive.package,
        payload=directive.payload,
        attempt=directive.attempts,
    )

    async def no_draft(_text: str) -> None:
        return None

    started = time.perf_counter()
    decision = await package.decide(view, ctx, metered, no_draft)
    latency_ms = (time.perf_counter() - started) * 1000
    result: dict[str, Any] | None = None
    async with tenant_work(
        redis,
        streams,
        tenant,
        _agent_context(directive.package or "", directive.correlation_id, directive.id),
    ):
        await db.execute(
            "INSERT INTO execution (id, directive_id, attempt, package, status, dry_run, replay_of, provider, model)"
            " VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8)",
            uuid.UUID(new_id),
            uuid.UUID(directive.id),
            directive.attempts,
            directive.package or "",
            dry_run,
            uuid.UUID(execution_id),
            runtime.llm.name,
            runtime.llm.model,
        )
        if not dry_run:
            result = await runtime.handlers[directive.type](view, decision, new_id)
        await _record_execution(new_id, "succeeded", ctx, metered, decision, latency_ms, None)
        if not dry_run:
            await _add_usage(directive.package or "", metered.cost_usd)
        await emit(
            ExecutionFinished(
                execution_id=new_id,
                directive_id=directive.id,
                package=directive.package or "",
                status="succeeded",
                action=decision.action,
                confidence=decision.confidence,
                cost_usd=metered.cost_usd,
                latency_ms=latency_ms,
                error=None,
            )
        )
    return RunOutcome(
        directive_id=directive.id, execution_id=new_id, status="succeeded", decision=decision, result=result
    )
