"""The `forum.digest.post` handler: the weekly digest as an agent post in the category's digest thread
(created by the agent the first time), recorded once per category and ISO week (`digest_run` primary key),
and a `digest` notification to the category's subscribers — the members who posted there in the last 30
days. Runs in the runner's tenant transaction; idempotent on the directive's key and on (category, week)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from backend.content import render_markdown
from backend.forum import signals as sig
from backend.forum.service import create_agent_post, slugify
from backend.notifications.service import notify_digest
from engine import db
from engine.agents.api import Decision, DirectiveView
from engine.agents.registry import AgentRuntime
from engine.ids import uuid7
from engine.signals import emit

SUBSCRIBER_DAYS = 30
MAX_SUBSCRIBERS = 500


async def _digest_thread(category_id: uuid.UUID, category_name: str, agent: str) -> uuid.UUID:
    title = f"Weekly digest: {category_name}"
    existing = await db.fetchval(
        "SELECT id FROM thread WHERE category_id = $1 AND author_agent_id = $2 AND title = $3"
        " ORDER BY created_at LIMIT 1",
        category_id,
        agent,
        title,
    )
    if existing is not None:
        return uuid.UUID(str(existing))
    now = datetime.now(UTC)
    thread_id, post_id = uuid7(), uuid7()
    slug = f"{slugify(title, 50)}-{thread_id.hex[-8:]}"
    body = (
        f"Each week the summary agent posts the top threads, unanswered questions and solved ones of {category_name}"
        " here."
    )
    await db.execute(
        "INSERT INTO thread (id, category_id, author_agent_id, title, slug, last_activity_at, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
        thread_id,
        category_id,
        agent,
        title,
        slug,
        now,
    )
    await db.execute(
        "INSERT INTO post (id, thread_id, author_agent_id, role, content_markdown, content_html, created_at,"
        " updated_at) VALUES ($1, $2, $3, 'agent', $4, $5, $6, $6)",
        post_id,
        thread_id,
        agent,
        body,
        render_markdown(body),
        now,
    )
    await db.execute(
        "UPDATE category SET thread_count = thread_count + 1, post_count = post_count + 1, last_activity_at = $2"
        " WHERE id = $1",
        category_id,
        now,
    )
    await emit(
        sig.ThreadCreated(
            thread_id=str(thread_id),
            category_id=str(category_id),
            first_post_id=str(post_id),
            author_user_id=None,
            title=title,
            slug=slug,
        )
    )
    return thread_id


def make_digest_post_handler(runtime: AgentRuntime) -> Any:
    async def digest_post(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload
        if decision.action != "reply" or not decision.output.strip():
            return {"posted": False, "reason": f"decision was {decision.action}"}
        category_id, week = uuid.UUID(payload["category_id"]), str(payload["week"])
        await db.execute("SELECT pg_advisory_xact_lock(hashtext('digest:' || $1::text))", str(category_id))
        done = await db.fetchrow(
            "SELECT post_id, thread_id FROM digest_run WHERE category_id = $1 AND week = $2", category_id, week
        )
        if done is not None:
            return {"posted": False, "reason": "this week's digest exists", "post_id": str(done["post_id"])}
        category = await db.fetchrow("SELECT name FROM category WHERE id = $1", category_id)
        if category is None:
            return {"posted": False, "reason": "category not found"}
        handle = runtime.packages[directive.package or ""].manifest.agent_handle
        thread_id = await _digest_thread(category_id, category["name"], handle)
        post_id, _, _ = await create_agent_post(
            thread_id=str(thread_id),
            agent_handle=handle,
            body=decision.output,
            idempotency_key=directive.idempotency_key,
            reply_to_post_id=None,
            confidence=decision.confidence,
            model=runtime.llm.model,
            citations=[],
        )
        await db.execute(
            "INSERT INTO digest_run (category_id, week, thread_id, post_id) VALUES ($1, $2, $3, $4)",
            category_id,
            week,
            thread_id,
            uuid.UUID(post_id),
        )
        subscribers = await db.fetch(
            "SELECT DISTINCT p.author_user_id FROM post p JOIN thread t ON t.id = p.thread_id WHERE t.category_id = $1"
            " AND p.role = 'human' AND p.author_user_id IS NOT NULL"
            " AND p.created_at > now() - make_interval(days => $2)"
            " LIMIT $3",
            category_id,
            SUBSCRIBER_DAYS,
            MAX_SUBSCRIBERS,
        )
        notified = await notify_digest(
            thread_id=str(thread_id),
            post_id=post_id,
            agent_id=handle,
            user_ids=[str(r["author_user_id"]) for r in subscribers],
        )
        return {"posted": True, "post_id": post_id, "thread_id": str(thread_id), "notified": len(notified)}

    return digest_post
