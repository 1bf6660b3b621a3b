"""What the forum domain offers agents: the read queries it serves and the directives it applies.

Registered on the agent runtime by the composition root (backend/agents/runtime.py). Reads that return
content are visibility-checked for the asker (backend/forum/visibility.py); handlers run inside the
runner's tenant transaction and are idempotent on the directive's key.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from agent_packages.forum_contract import reads as r
from agent_packages.forum_contract import signals as sig
from agent_packages.forum_contract.directives import PostCreate, ThreadExtractDecisions, ThreadSummarize
from backend.forum.service import create_agent_post
from backend.forum.visibility import VISIBLE_POST_SQL, Viewer, can_see_category, viewer_for_user
from engine import db
from engine.agents.api import Decision, DirectiveView
from engine.agents.registry import AgentRuntime
from engine.signals import emit

# -- reads ---------------------------------------------------------------------------------------------


async def user_post_count(q: r.UserPostCountQuery) -> int:
    n: int = await db.fetchval(
        "SELECT count(*) FROM post WHERE author_user_id = $1 AND role = 'human'", uuid.UUID(q.user_id)
    )
    return n


async def user_thread_count(q: r.UserThreadCountQuery) -> int:
    n: int = await db.fetchval("SELECT count(*) FROM thread WHERE author_user_id = $1", uuid.UUID(q.user_id))
    return n


async def post(q: r.PostQuery) -> r.PostInfo:
    row = await db.fetchrow(
        "SELECT p.id, p.thread_id, p.content_markdown, p.role, p.author_agent_id, p.author_user_id, p.is_deleted,"
        " p.is_hidden, u.username, t.title FROM post p JOIN thread t ON t.id = p.thread_id"
        " LEFT JOIN users u ON u.id = p.author_user_id WHERE p.id = $1",
        uuid.UUID(q.post_id),
    )
    if row is None:
        raise LookupError("post not found")
    visible = not (row["is_deleted"] or row["is_hidden"])
    return r.PostInfo(
        id=str(row["id"]),
        thread_id=str(row["thread_id"]),
        thread_title=row["title"],
        body=row["content_markdown"] if visible else "",
        role=row["role"],
        author=row["username"] or row["author_agent_id"],
        author_user_id=str(row["author_user_id"]) if row["author_user_id"] else None,
    )


async def categories(_q: r.CategoriesQuery) -> list[r.CategoryInfo]:
    rows = await db.fetch(
        "SELECT name, slug, description FROM category WHERE NOT is_archived AND NOT is_private ORDER BY position, name"
    )
    return [r.CategoryInfo(name=x["name"], slug=x["slug"], description=x["description"]) for x in rows]


async def category(q: r.CategoryInfoQuery) -> r.CategoryInfo:
    row = await db.fetchrow("SELECT name, slug, description FROM category WHERE id = $1", uuid.UUID(q.category_id))
    if row is None:
        raise LookupError("category not found")
    return r.CategoryInfo(name=row["name"], slug=row["slug"], description=row["description"])


async def thread_reply_count(q: r.ThreadReplyCountQuery) -> int:
    n: int = await db.fetchval("SELECT reply_count FROM thread WHERE id = $1", uuid.UUID(q.thread_id)) or 0
    return n


async def thread_for(
    viewer: Viewer | None, thread_id: str, *, limit: int = 200, human_only: bool = False
) -> r.ThreadView:
    """A thread and its visible posts as `viewer` may see them; LookupError when it may not open it."""
    row = await db.fetchrow(
        "SELECT t.id, t.title, t.slug, t.category_id, t.is_solved, t.solution_post_id, c.slug AS category_slug"
        " FROM thread t JOIN category c ON c.id = t.category_id WHERE t.id = $1",
        uuid.UUID(thread_id),
    )
    if row is None or (viewer is not None and not await can_see_category(viewer, row["category_id"])):
        raise LookupError("thread not found")
    rows = await db.fetch(
        "SELECT p.id, p.role, p.content_markdown, coalesce(u.username, p.author_agent_id) AS author,"
        " (SELECT count(*) FILTER (WHERE x.type IN ('like', 'upvote')) - count(*) FILTER (WHERE x.type = 'downvote')"
        "  FROM reaction x WHERE x.post_id = p.id) AS score"
        f" FROM post p LEFT JOIN users u ON u.id = p.author_user_id WHERE p.thread_id = $1 AND {VISIBLE_POST_SQL}"
        + (" AND p.role = 'human'" if human_only else "")
        + " ORDER BY p.created_at, p.id LIMIT $2",
        row["id"],
        limit,
    )
    return r.ThreadView(
        id=str(row["id"]),
        title=row["title"],
        slug=row["slug"],
        category_id=str(row["category_id"]),
        category_slug=row["category_slug"],
        is_solved=row["is_solved"],
        solution_post_id=str(row["solution_post_id"]) if row["solution_post_id"] else None,
        posts=[
            r.ThreadPost(
                id=str(p["id"]),
                author=p["author"],
                role=p["role"],
                body=p["content_markdown"],
                is_solution=p["id"] == row["solution_post_id"],
                score=int(p["score"] or 0),
            )
            for p in rows
        ],
    )


async def thread(q: r.ThreadQuery) -> r.ThreadView:
    viewer = None if q.for_same_thread else await viewer_for_user(q.asker_user_id)
    return await thread_for(viewer, q.thread_id, limit=max(1, min(q.limit, 500)), human_only=q.human_only)


# -- directives ----------------------------------------------------------------------------------------


def _handle(runtime: AgentRuntime, directive: DirectiveView) -> tuple[str, str]:
    package = runtime.packages[directive.package or ""]
    return package.manifest.agent_handle, package.manifest.name


def make_post_handlers(runtime: AgentRuntime) -> tuple[Any, Any, Any]:
    async def write(
        directive: DirectiveView, decision: Decision, execution_id: str, payload: PostCreate
    ) -> dict[str, Any]:
        handle, package_name = _handle(runtime, directive)
        if decision.action != "reply" or not decision.output.strip():
            return {"posted": False, "reason": f"decision was {decision.action}"}
        body = decision.output
        if decision.label:
            body = f"{body}\n\n*{decision.label}*"
        post_id, category_id, created = await create_agent_post(
            thread_id=payload.thread_id,
            agent_handle=handle,
            body=body,
            idempotency_key=directive.idempotency_key,
            reply_to_post_id=payload.reply_to_post_id,
            confidence=decision.confidence,
            model=runtime.llm.model,
            citations=[msgspec.to_builtins(c) for c in decision.citations],
            purpose=payload.purpose,
            solution_eligible=payload.solution_eligible,
        )
        if created:
            await emit(
                sig.AgentResponded(
                    agent=handle,
                    package=package_name,
                    post_id=post_id,
                    thread_id=payload.thread_id,
                    category_id=category_id,
                    directive_id=directive.id,
                    execution_id=execution_id,
                    confidence=decision.confidence,
                )
            )
        return {"posted": True, "post_id": post_id, "duplicate": not created, "category_id": category_id}

    async def post_create(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        return await write(directive, decision, execution_id, directive.payload_as(PostCreate))

    async def decisions(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload_as(ThreadExtractDecisions)
        return await write(
            directive,
            decision,
            execution_id,
            PostCreate(purpose="decisions", thread_id=payload.thread_id, solution_eligible=False),
        )

    async def summarize(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload_as(ThreadSummarize)
        result = await write(
            directive,
            decision,
            execution_id,
            PostCreate(purpose="summary", thread_id=payload.thread_id, solution_eligible=False),
        )
        if result.get("posted") and not result.get("duplicate"):
            handle, package_name = _handle(runtime, directive)
            await emit(
                sig.AgentSummaryGenerated(
                    agent=handle,
                    package=package_name,
                    post_id=result["post_id"],
                    thread_id=payload.thread_id,
                    category_id=result["category_id"],
                    directive_id=directive.id,
                    summary_version=payload.summary_version,
                )
            )
        return result

    return post_create, summarize, decisions


def register(runtime: AgentRuntime) -> None:
    runtime.add_read(r.UserPostCountQuery, user_post_count)
    runtime.add_read(r.UserThreadCountQuery, user_thread_count)
    runtime.add_read(r.PostQuery, post)
    runtime.add_read(r.CategoriesQuery, categories)
    runtime.add_read(r.CategoryInfoQuery, category)
    runtime.add_read(r.ThreadReplyCountQuery, thread_reply_count)
    runtime.add_read(r.ThreadQuery, thread)
    post_create, summarize, decisions = make_post_handlers(runtime)
    runtime.add_directive(PostCreate, post_create)
    runtime.add_directive(ThreadSummarize, summarize)
    runtime.add_directive(ThreadExtractDecisions, decisions)
