"""Apply: a decision's effect through the directive type's handler (registered by the domain that owns
it), then the follow-up directives the decision calls for, each checked against the package's manifest
(a refused one is recorded, never run). Runs inside the caller's tenant transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.agents.api import AgentPackage, Decision, DirectiveView
from engine.agents.directives import DirectiveRow, request_directive
from engine.agents.registry import AgentRuntime


@dataclass(slots=True)
class Applied:
    result: dict[str, Any]
    followups: list[DirectiveRow] = field(default_factory=list)  # created now, to enqueue after commit
    refusals: list[str] = field(default_factory=list)


async def apply_decision(
    runtime: AgentRuntime,
    package: AgentPackage,
    directive: DirectiveRow,
    view: DirectiveView,
    decision: Decision,
    execution_id: str,
) -> Applied:
    result = await runtime.handlers[view.type](view, decision, execution_id)
    applied = Applied(result=result)
    manifest = package.manifest
    for request in decision.followups:
        refusal = runtime.directive_refusal(manifest, request.type)
        row, created = await request_directive(
            request,
            manifest=manifest,
            signal=None,
            correlation_id=directive.correlation_id,
            depth=directive.depth,
            refusal=refusal,
        )
        if refusal is not None:
            applied.refusals.append(f"refused: {refusal}")
        elif created:
            applied.followups.append(row)
    return applied
