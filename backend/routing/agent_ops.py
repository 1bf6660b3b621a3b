"""What the routing domain offers agents: expert candidates and expert requests."""

from __future__ import annotations

from typing import Any

from agent_packages.forum_contract.directives import ExpertNotify
from agent_packages.forum_contract.reads import ExpertCandidatesQuery
from backend.routing.directives import make_expert_notify_handler
from backend.routing.reads import expert_candidates
from engine.agents.registry import AgentRuntime


async def candidates(q: ExpertCandidatesQuery) -> dict[str, Any]:
    return await expert_candidates(q.thread_id, q.limit, q.per_user_daily, q.window_days)


def register(runtime: AgentRuntime) -> None:
    runtime.add_read(ExpertCandidatesQuery, candidates)
    runtime.add_directive(ExpertNotify, make_expert_notify_handler(runtime))
