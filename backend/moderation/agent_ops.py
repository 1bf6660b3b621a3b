"""What the moderation domain offers agents: the facts a moderation scorer reads, flags and (approved)
hides, and the approval policy that may waive a hide's wait."""

from __future__ import annotations

from typing import Any

from agent_packages.forum_contract.directives import FlagCreate, PostHide
from agent_packages.forum_contract.reads import ModerationFactsQuery
from backend.moderation.directives import hide_waiver, make_flag_create_handler, make_post_hide_handler
from backend.moderation.reads import moderation_facts
from engine.agents.registry import AgentRuntime


async def facts(q: ModerationFactsQuery) -> dict[str, Any]:
    return await moderation_facts(q.post_id, q.revision, q.as_of)


def register(runtime: AgentRuntime) -> None:
    runtime.add_read(ModerationFactsQuery, facts)
    runtime.add_directive(FlagCreate, make_flag_create_handler(runtime))
    runtime.add_directive(PostHide, make_post_hide_handler(runtime))
    runtime.approval_waivers.append(hide_waiver)
