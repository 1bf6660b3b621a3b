"""The directive runner: claim → decide → apply → record, each its own module; replay reuses them.

- claim (engine/agents/claim.py): the directive becomes running with one execution row per attempt;
- decide (engine/agents/decide.py): the package decides outside any transaction, streaming its draft;
- apply (engine/agents/apply.py): the side effect, follow-up directives, the directive's new state, and
- record (engine/agents/record.py): the execution record and usage, all in ONE transaction with the
  outcome signals.

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
from typing import Any

import msgspec
from redis.asyncio import Redis

from engine import db
from engine.agents.api import Decision, DirectiveView
from engine.agents.apply import apply_decision
from engine.agents.claim import Claim, claim_directive
from engine.agents.decide import Decided, decide_directive
from engine.agents.directives import DirectiveRow, get_directive
from engine.agents.record import MeteredProvider, add_usage, finished_signal, record_execution
from engine.agents.registry import AgentRuntime
from engine.agents.router import merged_config
from engine.ids import uuid7
from engine.relay import StreamConfig
from engine.signals import SignalContext, emit
from engine.work import tenant_work

log = logging.getLogger("forum.runner")
Heartbeat = Callable[[], Awaitable[None]]

__all__ = ["MeteredProvider", "RecordedReader", "RunOutcome", "replay_execution", "run_directive"]


class RunOutcome(msgspec.Struct, frozen=True, kw_only=True):
    directive_id: str
    execution_id: str | None
    status: str  # succeeded | failed | refused | skipped | retry
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


async def _enqueue(runtime: AgentRuntime, tenant: str, rows: list[DirectiveRow]) -> None:
    if runtime.enqueue is None:
        return
    for row in rows:
        if row.status == "pending":
            try:
                await runtime.enqueue(tenant, row.id)
            except Exception as exc:  # the recovery sweep re-enqueues it from its row
                log.warning("runner: enqueue of follow-up %s failed (%s)", row.id, type(exc).__name__)


async def run_directive(
    runtime: AgentRuntime,
    redis: Redis,
    streams: StreamConfig,
    tenant: str,
    directive_id: str,
    *,
    heartbeat: Heartbeat | None = None,
    live_attempt_s: float | None = None,
) -> RunOutcome:
    """One attempt of a directive. `live_attempt_s`: see `claim_directive` (the worker passes its job
    heartbeat, so a duplicate delivery skips while the first attempt is alive)."""
    sys_ctx = SignalContext(actor_type="system", actor_id="runner", source="job", correlation_id=str(uuid.uuid4()))
    # 1. claim
    async with tenant_work(redis, streams, tenant, sys_ctx):
        claimed = await claim_directive(runtime, directive_id, live_attempt_s=live_attempt_s)
    if isinstance(claimed, str):
        return RunOutcome(directive_id=directive_id, execution_id=None, status="skipped", error=claimed)
    await _end_abandoned_drafts(runtime, tenant, claimed.view, claimed.abandoned)
    if claimed.refusal is not None or claimed.package is None:
        return await _finish_failed(
            runtime, redis, streams, tenant, claimed, claimed.refusal or "no package", retry=False, decided=None
        )
    package = claimed.package
    view = claimed.view

    # 2. decide: outside any transaction; stream the draft
    ctx = runtime.context(tenant, package.manifest, claimed.config)
    draft = runtime.drafts(tenant, view, claimed.execution_id) if runtime.drafts else None
    last_beat = time.monotonic()

    async def on_delta(text: str) -> None:
        nonlocal last_beat
        if draft is not None:
            await draft.delta(text)
        if heartbeat is not None and time.monotonic() - last_beat > 2:
            last_beat = time.monotonic()
            await heartbeat()

    try:
        decided = await decide_directive(runtime, package, view, ctx, on_delta)
    except asyncio.CancelledError:  # the job was cancelled (timeout, shutdown): its draft is over
        if draft is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(draft.end(None, outcome="abandoned"))
        raise
    if decided.decision is None:
        if draft is not None:
            with contextlib.suppress(Exception):
                await draft.end(None, outcome="failed")
        return await _finish_failed(
            runtime,
            redis,
            streams,
            tenant,
            claimed,
            decided.error or "no decision",
            retry=decided.retryable,
            decided=decided,
        )
    decision = decided.decision

    # 3. apply + 4. record: the effect, the directive's state and the outcome signals in one transaction
    package_name = package.manifest.name
    followups: list[DirectiveRow] = []
    async with tenant_work(
        redis, streams, tenant, _agent_context(package_name, claimed.directive.correlation_id, directive_id)
    ):
        current = await get_directive(directive_id, lock=True)
        assert current is not None
        refusals: list[str] = []
        if current.status == "succeeded":
            result = current.result or {}  # a concurrent attempt applied it first: never twice
        else:
            applied = await apply_decision(runtime, package, claimed.directive, view, decision, claimed.execution_id)
            result, followups, refusals = applied.result, applied.followups, applied.refusals
            await db.execute(
                "UPDATE directive SET status = 'succeeded', result = $2::jsonb, error = NULL, updated_at = now(),"
                " finished_at = now() WHERE id = $1",
                uuid.UUID(directive_id),
                msgspec.json.encode(result).decode(),
            )
        await record_execution(
            claimed.execution_id,
            "succeeded",
            ctx,
            decided.metered,
            decision,
            decided.latency_ms,
            None,
            refusals=refusals,
        )
        await add_usage(package_name, decided.metered.cost_usd)
        await emit(
            finished_signal(
                claimed.execution_id,
                directive_id,
                package_name,
                "succeeded",
                decision=decision,
                metered=decided.metered,
                latency_ms=decided.latency_ms,
            )
        )
    if draft is not None:
        await draft.end(result)
    await _enqueue(runtime, tenant, followups)
    return RunOutcome(
        directive_id=directive_id,
        execution_id=claimed.execution_id,
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


async def _finish_failed(
    runtime: AgentRuntime,
    redis: Redis,
    streams: StreamConfig,
    tenant: str,
    claimed: Claim,
    error: str,
    *,
    retry: bool,
    decided: Decided | None,
) -> RunOutcome:
    """Record a failed (or refused) attempt; the directive goes back to pending while attempts remain."""
    view: DirectiveView = claimed.view
    refused = bool(decided and decided.refused)
    final = not retry or claimed.attempt >= claimed.directive.max_attempts
    status = "refused" if refused else "failed"
    package = view.package or ""
    metered = decided.metered if decided else None
    async with tenant_work(redis, streams, tenant, _agent_context(package, claimed.directive.correlation_id, view.id)):
        await record_execution(
            claimed.execution_id, status, decided.ctx if decided else None, metered, None, None, error
        )
        await db.execute(
            "UPDATE directive SET status = $2, error = $3, updated_at = now(),"
            " finished_at = CASE WHEN $2 IN ('failed', 'refused') THEN now() ELSE NULL END"
            " WHERE id = $1 AND status = 'running'",
            uuid.UUID(view.id),
            status if final else "pending",
            error,
        )
        if metered is not None and metered.cost_usd:
            await add_usage(package, metered.cost_usd)
        await emit(finished_signal(claimed.execution_id, view.id, package, status, metered=metered, error=error))
    log.warning("runner: %s attempt %d %s: %s", view.id, claimed.attempt, status, error)
    return RunOutcome(
        directive_id=view.id,
        execution_id=claimed.execution_id,
        status=status if final else "retry",
        error=error,
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
    """Re-run the package on an execution's recorded input (decide, then apply and record like a run).
    A dry run records the decision it would make now and changes nothing; a real replay goes through the
    directive's handler, whose idempotency key makes a second effect impossible."""
    sys_ctx = SignalContext(actor_type="user", actor_id=replayed_by, source="web", correlation_id=str(uuid.uuid4()))
    async with tenant_work(redis, streams, tenant, sys_ctx):
        original = await db.fetchrow("SELECT * FROM execution WHERE id = $1", uuid.UUID(execution_id))
        if original is None:
            raise LookupError("execution not found")
        directive = await get_directive(str(original["directive_id"]))
        assert directive is not None
        installation = await db.fetchrow("SELECT config FROM installation WHERE package = $1", directive.package)
        view = directive.view()
    package = runtime.packages.get(directive.package or "")
    if package is None:
        raise LookupError(f"package {directive.package!r} is not available")
    recorded = original["context"]
    recorded = msgspec.json.decode(recorded) if isinstance(recorded, str) else (recorded or {})
    live = runtime.reader_for(tenant)
    reader = RecordedReader(recorded.get("reads", []), live) if dry_run else live
    config = merged_config(package, installation["config"] if installation else {})
    ctx = runtime.context(tenant, package.manifest, config, reader)

    async def no_draft(_text: str) -> None:
        return None

    decided = await decide_directive(runtime, package, view, ctx, no_draft)
    if decided.decision is None:
        raise RuntimeError(f"replay failed: {decided.error}")
    decision = decided.decision
    new_id = str(uuid7())
    result: dict[str, Any] | None = None
    followups: list[DirectiveRow] = []
    package_name = directive.package or ""
    async with tenant_work(
        redis, streams, tenant, _agent_context(package_name, directive.correlation_id, directive.id)
    ):
        await db.execute(
            "INSERT INTO execution (id, directive_id, attempt, package, status, dry_run, replay_of, provider, model)"
            " VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8)",
            uuid.UUID(new_id),
            uuid.UUID(directive.id),
            directive.attempts,
            package_name,
            dry_run,
            uuid.UUID(execution_id),
            runtime.llm.name,
            runtime.llm.model,
        )
        refusals: list[str] = []
        if not dry_run:
            applied = await apply_decision(runtime, package, directive, view, decision, new_id)
            result, followups, refusals = applied.result, applied.followups, applied.refusals
        await record_execution(
            new_id, "succeeded", ctx, decided.metered, decision, decided.latency_ms, None, refusals=refusals
        )
        if not dry_run:
            await add_usage(package_name, decided.metered.cost_usd)
        await emit(
            finished_signal(
                new_id,
                directive.id,
                package_name,
                "succeeded",
                decision=decision,
                metered=decided.metered,
                latency_ms=decided.latency_ms,
            )
        )
    await _enqueue(runtime, tenant, followups)
    return RunOutcome(
        directive_id=directive.id, execution_id=new_id, status="succeeded", decision=decision, result=result
    )
