"""Handlers of the `forum.*` directives: the only place an agent's decision changes forum state.
Each runs inside the runner's tenant transaction and is idempotent on the directive's key."""

from __future__ import annotations

from typing import Any

import msgspec

from backend.forum import signals as sig
from backend.forum.service import create_agent_post
from engine.agents.api import Decision, DirectiveView
from engine.agents.registry import AgentRuntime
from engine.signals import emit


def make_post_create_handler(runtime: AgentRuntime) -> Any:
    async def post_create(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        package = runtime.packages[directive.package or ""]
        handle = package.manifest.agent_handle
        if decision.action != "reply" or not decision.output.strip():
            return {"posted": False, "reason": f"decision was {decision.action}"}
        post_id, category_id, created = await create_agent_post(
            thread_id=directive.payload["thread_id"],
            agent_handle=handle,
            body=decision.output,
            idempotency_key=directive.idempotency_key,
            reply_to_post_id=directive.payload.get("reply_to_post_id"),
            confidence=decision.confidence,
            model=runtime.llm.model,
            citations=[msgspec.to_builtins(c) for c in decision.citations],
        )
        if created and directive.type == "forum.thread.summarize":
            await emit(
                sig.AgentSummaryGenerated(
                    agent=handle,
                    package=package.manifest.name,
                    post_id=post_id,
                    thread_id=directive.payload["thread_id"],
                    category_id=category_id,
                    directive_id=directive.id,
                    summary_version=int(directive.payload.get("summary_version", 0)),
                )
            )
        if created:
            await emit(
                sig.AgentResponded(
                    agent=handle,
                    package=package.manifest.name,
                    post_id=post_id,
                    thread_id=directive.payload["thread_id"],
                    category_id=category_id,
                    directive_id=directive.id,
                    execution_id=execution_id,
                    confidence=decision.confidence,
                )
            )
        return {"posted": True, "post_id": post_id, "duplicate": not created}

    return post_create
