"""Decide: the package's `decide` on one directive, outside any transaction (an LLM call can take
seconds), with a metered LLM and a permission-checked, recording read context."""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.agents.api import AgentContext, AgentPackage, Decision, DeltaSink, DirectiveView, PermissionRefused
from engine.agents.record import MeteredProvider
from engine.agents.registry import AgentRuntime


@dataclass(slots=True)
class Decided:
    ctx: AgentContext
    metered: MeteredProvider
    decision: Decision | None
    latency_ms: float
    error: str | None = None
    refused: bool = False  # the package asked for something its manifest does not permit
    retryable: bool = True


async def decide_directive(
    runtime: AgentRuntime, package: AgentPackage, view: DirectiveView, ctx: AgentContext, on_delta: DeltaSink
) -> Decided:
    metered = MeteredProvider(runtime.llm, package.manifest.max_tokens)
    started = time.perf_counter()
    try:
        decision = await package.decide(view, ctx, metered, on_delta)
    except PermissionRefused as exc:
        latency = (time.perf_counter() - started) * 1000
        return Decided(ctx, metered, None, latency, error=str(exc), refused=True, retryable=False)
    except Exception as exc:
        latency = (time.perf_counter() - started) * 1000
        return Decided(ctx, metered, None, latency, error=f"{type(exc).__name__}: {exc}")
    return Decided(ctx, metered, decision, (time.perf_counter() - started) * 1000)
