"""Signals the agent runtime emits about itself (shown on the `agent-activity` channel)."""

from __future__ import annotations

from engine.signals import SignalPayload, signal_type


@signal_type("agent.directive.created")
class DirectiveCreated(SignalPayload, frozen=True, kw_only=True):
    directive_id: str
    type: str
    package: str | None
    status: str
    signal_id: str | None


@signal_type("agent.directive.refused")
class DirectiveRefused(SignalPayload, frozen=True, kw_only=True):
    directive_id: str
    type: str
    package: str | None
    reason: str


@signal_type("agent.directive.decided")
class DirectiveDecided(SignalPayload, frozen=True, kw_only=True):
    directive_id: str
    type: str
    decision: str  # approved | rejected
    decided_by: str


@signal_type("agent.execution.started")
class ExecutionStarted(SignalPayload, frozen=True, kw_only=True):
    execution_id: str
    directive_id: str
    package: str
    attempt: int
    dry_run: bool


@signal_type("agent.execution.finished")
class ExecutionFinished(SignalPayload, frozen=True, kw_only=True):
    execution_id: str
    directive_id: str
    package: str
    status: str  # succeeded | failed
    action: str | None
    confidence: float | None
    cost_usd: float
    latency_ms: float
    error: str | None
