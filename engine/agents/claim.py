"""Claim: a directive becomes `running` with one new execution row per attempt (earlier running attempts
are marked abandoned), and the guards that can refuse it before any work (package present and enabled, a
handler for its type, cost caps). Runs inside the caller's tenant transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from engine import db
from engine.agents.api import AgentPackage, DirectiveView
from engine.agents.directives import RUNNABLE, DirectiveRow, get_directive
from engine.agents.record import org_usage_today, usage_today
from engine.agents.registry import AgentRuntime
from engine.agents.router import merged_config
from engine.agents.signals import ExecutionStarted
from engine.ids import uuid7
from engine.signals import SignalContext, emit


@dataclass(frozen=True, slots=True)
class Claim:
    directive: DirectiveRow
    view: DirectiveView
    execution_id: str
    attempt: int
    package: AgentPackage | None
    config: dict[str, Any]
    refusal: str | None  # why it must not run (recorded as a failed attempt, never retried)
    abandoned: list[str]  # earlier attempts whose worker died (marked failed now; their drafts must end)


async def claim_directive(
    runtime: AgentRuntime, directive_id: str, *, live_attempt_s: float | None = None
) -> Claim | str:
    """The claim of a runnable directive, or why there is nothing to run (not found, already done, or
    another attempt alive: a running attempt whose heartbeat is younger than `live_attempt_s` is a
    duplicate delivery of the job, e.g. to a second worker; None treats every running attempt as lost)."""
    directive = await get_directive(directive_id, lock=True)
    if directive is None:
        return "not found"
    if directive.status not in RUNNABLE:
        return f"directive is {directive.status}"
    if directive.status == "running" and live_attempt_s is not None:
        alive = await db.fetchval(
            "SELECT count(*) FROM execution WHERE directive_id = $1 AND status = 'running'"
            " AND heartbeat_at > now() - make_interval(secs => $2)",
            uuid.UUID(directive_id),
            float(live_attempt_s),
        )
        if alive:
            return "another attempt is running"
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
            execution_id=execution_id, directive_id=directive_id, package=package_name, attempt=attempt, dry_run=False
        ),
        context=SignalContext(
            actor_type="agent",
            actor_id=package_name,
            source="job",
            correlation_id=directive.correlation_id,
            causation_id=directive_id,
        ),
    )
    config = merged_config(package, installation["config"]) if package and installation else {}
    refusal = None
    if package is None:
        refusal = f"package {package_name!r} is not available on this worker"
    elif installation is None or not installation["enabled"]:
        refusal = f"package {package_name} is not enabled in this org"
    elif directive.type not in runtime.handlers:
        refusal = f"no handler for directive type {directive.type}"
    else:
        manifest = package.manifest
        cap = min(manifest.daily_cost_cap_usd, float(config.get("daily_cost_cap_usd", manifest.daily_cost_cap_usd)))
        if await usage_today(package_name) >= cap:
            refusal = f"daily cost cap of ${cap:.2f} reached for {package_name}"
        elif await org_usage_today() >= runtime.limits.daily_cost_cap_usd:
            refusal = f"this org's daily agent cost cap of ${runtime.limits.daily_cost_cap_usd:.2f} is reached"
    return Claim(
        directive=directive,
        view=directive.view(attempt),
        execution_id=execution_id,
        attempt=attempt,
        package=package,
        config=config,
        refusal=refusal,
        abandoned=[str(row["id"]) for row in abandoned],
    )
