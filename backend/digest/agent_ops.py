"""What the digest domain offers agents: a category's week, and posting the weekly digest."""

from __future__ import annotations

from typing import Any

from agent_packages.forum_contract.directives import DigestPost
from agent_packages.forum_contract.reads import DigestDataQuery
from backend.digest.directives import make_digest_post_handler
from backend.digest.reads import digest_data
from engine.agents.registry import AgentRuntime


async def week(q: DigestDataQuery) -> dict[str, Any]:
    return await digest_data(q.category_id, q.days, q.top)


def register(runtime: AgentRuntime) -> None:
    runtime.add_read(DigestDataQuery, week)
    runtime.add_directive(DigestPost, make_digest_post_handler(runtime))
