"""The `forum.expert.notify` handler: ask one member to look at a thread, within the caps.

Runs in the runner's tenant transaction, serialized per user (advisory lock), and re-checks everything the
plan saw, because other directives may have run since: the per-user opt-out, at most `per_user_daily`
requests per person in 24 hours, at most `per_thread` people per thread, one request per person and
thread (primary key). A capped request succeeds with `notified: false` and the reason.
"""

from __future__ import annotations

import uuid
from typing import Any

from backend.notifications.service import notify_expert_request
from engine import db
from engine.agents.api import Decision, DirectiveView
from engine.agents.registry import AgentRuntime


def make_expert_notify_handler(runtime: AgentRuntime) -> Any:
    async def expert_notify(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload
        user_id, thread_id = uuid.UUID(payload["user_id"]), uuid.UUID(payload["thread_id"])
        if decision.action != "apply":
            return {"notified": False, "reason": f"decision was {decision.action}"}
        await db.execute("SELECT pg_advisory_xact_lock(hashtext('expert:' || $1::text))", str(user_id))
        await db.execute("SELECT pg_advisory_xact_lock(hashtext('expert-thread:' || $1::text))", str(thread_id))
        if await db.fetchval(
            "SELECT 1 FROM expert_notification WHERE thread_id = $1 AND user_id = $2", thread_id, user_id
        ):
            return {"notified": False, "reason": "already asked about this thread"}
        if await db.fetchval("SELECT 1 FROM routing_opt_out WHERE user_id = $1", user_id):
            return {"notified": False, "reason": "opted out"}
        today = await db.fetchval(
            "SELECT count(*) FROM expert_notification WHERE user_id = $1 AND notified_at > now() - interval '1 day'",
            user_id,
        )
        if today >= int(payload["per_user_daily"]):
            return {"notified": False, "reason": "daily cap reached for this person"}
        on_thread = await db.fetchval("SELECT count(*) FROM expert_notification WHERE thread_id = $1", thread_id)
        if on_thread >= int(payload["per_thread"]):
            return {"notified": False, "reason": "enough people were asked about this thread"}
        first_post = await db.fetchval(
            "SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", thread_id
        )
        await db.execute(
            "INSERT INTO expert_notification (thread_id, user_id, directive_id, reason, score)"
            " VALUES ($1, $2, $3, $4, $5)",
            thread_id,
            user_id,
            uuid.UUID(directive.id),
            str(payload["reason"]),
            float(payload["score"]),
        )
        package = runtime.packages[directive.package or ""]
        created = await notify_expert_request(
            thread_id=str(thread_id),
            post_id=str(first_post) if first_post else None,
            agent_id=package.manifest.agent_handle,
            user_id=str(user_id),
        )
        return {"notified": True, "notification_ids": created}

    return expert_notify
