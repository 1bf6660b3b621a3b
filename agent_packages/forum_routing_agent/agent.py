"""The routing agent: when a question is still unanswered after the org's delay (the worker's sweep emits
`forum.thread.unanswered` once per thread) or when an agent escalates a thread (`forum.agent.escalated`),
it asks `forum.expert_candidates` for the members most likely to answer (participation history in the
category: accepted answers, helpful reactions, replies, recency; never the asker, never someone who opted
out or reached the daily cap) and requests one `forum.expert.notify` per person, at most `per_thread`
people per thread. Keys follow spec §8.4 (`forum.expert.notify:{tenant}:{thread_id}:{user_id}:{reason}`), so
a redelivered signal notifies nobody twice; the handler re-checks the caps when it applies.
"""

from __future__ import annotations

from typing import Any

from agent_packages.forum_contract.directives import ExpertNotify
from agent_packages.forum_contract.reads import ExpertCandidatesQuery
from engine.agents.api import (
    AgentContext,
    Decision,
    DeltaSink,
    DirectiveRequest,
    DirectiveView,
    PackageManifest,
)
from engine.llm import LLMProvider
from engine.signals import Signal

MANIFEST = PackageManifest(
    name="forum_routing_agent",
    version="1.0.0",
    title="Routing agent",
    description="Asks the members most likely to know (from their answers, accepted solutions and helpful "
    "reactions in the category) to look at questions nobody answered, and at escalated threads. Rate-limited: "
    "few people per thread, few requests per person per day, and members can opt out.",
    agent_handle="routing-agent",
    consumes=("forum.thread.unanswered", "forum.agent.escalated"),
    directives=("forum.expert.notify",),
    permissions=("read_forum", "notify_members"),
    rate_limit_per_hour=60,
    daily_cost_cap_usd=0.1,
    max_tokens=50,
    default_config={"unanswered_after_minutes": 60, "per_thread": 2, "per_user_daily": 2, "min_score": 0.5},
)


class RoutingAgent:
    manifest = MANIFEST

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        if signal.type not in self.manifest.consumes:
            return []
        reason = "unanswered" if signal.type == "forum.thread.unanswered" else "escalated"
        thread_id = str(signal.payload["thread_id"])
        per_thread = int(ctx.config.get("per_thread", 2))
        per_user_daily = int(ctx.config.get("per_user_daily", 2))
        found: dict[str, Any] = await ctx.query(
            ExpertCandidatesQuery(thread_id=thread_id, limit=per_thread, per_user_daily=per_user_daily)
        )
        if found.get("skip") or found.get("is_solved") or found.get("status") != "open":
            return []
        room = max(0, per_thread - int(found["already_notified"]))
        minimum = float(ctx.config.get("min_score", 0.5))
        chosen = [c for c in found["candidates"] if c["score"] >= minimum][:room]
        return [
            DirectiveRequest.of(
                ExpertNotify(
                    thread_id=thread_id,
                    user_id=c["user_id"],
                    username=c["username"],
                    reason=reason,
                    score=c["score"],
                    evidence={k: int(c[k]) for k in ("replies", "accepted", "helpful")},
                    per_thread=per_thread,
                    per_user_daily=per_user_daily,
                ),
                f"forum.expert.notify:{ctx.tenant}:{thread_id}:{c['user_id']}:{reason}",
            )
            for c in chosen
        ]

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        p = directive.payload_as(ExpertNotify)
        e = p.evidence
        reasons = [
            f"{p.reason} thread; {p.username} has {e['accepted']} accepted answer(s), {e['helpful']} helpful "
            f"reaction(s) and {e['replies']} repl(ies) in this category (score {p.score:.2f})"
        ]
        return Decision(action="apply", confidence=min(1.0, p.score / 10), reasons=reasons)
