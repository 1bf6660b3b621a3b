"""What the search domain offers agents: related earlier threads, visibility-checked for the asker
(the org's visibility inside `related_threads`, private categories here), so an agent can never cite a
thread the asker could not open."""

from __future__ import annotations

from agent_packages.forum_contract.reads import RelatedThread, RelatedThreadsQuery
from backend.forum.visibility import viewer_for_user, visible_category_ids
from backend.search.related import MAX_K, related_threads
from engine.agents.registry import AgentRuntime


async def related(q: RelatedThreadsQuery) -> list[RelatedThread]:
    k = max(1, min(q.k, 20))
    visible = {str(c) for c in await visible_category_ids(await viewer_for_user(q.asker_user_id))}
    found = await related_threads(
        q.text,
        min(MAX_K, k * 3),  # room for the threads of categories the asker may not open
        visible_to=q.asker_user_id,
        exclude_thread_ids=q.exclude_thread_ids,
        category_id=q.category_id,
    )
    return [
        RelatedThread(
            thread_id=t.thread_id,
            title=t.title,
            slug=t.slug,
            category_id=t.category_id,
            category_slug=t.category_slug,
            score=t.score,
            text_score=t.text_score,
            is_solved=t.is_solved,
            solution_post_id=t.solution_post_id,
            best_post_id=t.best_post_id,
            created_at=t.created_at.isoformat(),
        )
        for t in found
        if t.category_id in visible
    ][:k]


def register(runtime: AgentRuntime) -> None:
    runtime.add_read(RelatedThreadsQuery, related)
