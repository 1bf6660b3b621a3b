"""What the notifications domain offers agents: escalation to humans and notifying one member."""

from __future__ import annotations

import uuid
from typing import Any

from agent_packages.forum_contract import signals as sig
from agent_packages.forum_contract.directives import AgentEscalate, UserNotify
from backend.notifications.service import notify_agent_escalation, notify_user
from engine import db
from engine.agents.api import Decision, DirectiveView
from engine.agents.registry import AgentRuntime
from engine.signals import emit
from engine.tenancy import current_tenant


async def escalation_recipients(category_id: uuid.UUID, usernames: list[str]) -> list[str]:
    """The named targets, else the category's escalation targets, else the org's moderators and admins."""
    names = usernames or list(
        await db.fetchval("SELECT escalation_usernames FROM category WHERE id = $1", category_id) or []
    )
    if names:
        rows = await db.fetch(
            "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id JOIN orgs o ON o.id = m.org_id"
            " WHERE o.slug = $1 AND lower(u.username) = ANY($2::text[])",
            current_tenant().slug,
            [n.lower() for n in names],
        )
        if rows:
            return [str(r["id"]) for r in rows]
    rows = await db.fetch(
        "SELECT m.user_id FROM memberships m JOIN orgs o ON o.id = m.org_id"
        " WHERE o.slug = $1 AND m.role IN ('moderator', 'admin') ORDER BY m.user_id",
        current_tenant().slug,
    )
    return [str(r["user_id"]) for r in rows]


def make_handlers(runtime: AgentRuntime) -> tuple[Any, Any]:
    async def escalate(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload_as(AgentEscalate)
        package = runtime.packages[directive.package or ""].manifest
        category_id = await db.fetchval("SELECT category_id FROM thread WHERE id = $1", uuid.UUID(payload.thread_id))
        if category_id is None:
            return {"escalated": False, "reason": "thread not found"}
        recipients = await escalation_recipients(category_id, payload.target_usernames)
        await notify_agent_escalation(
            thread_id=payload.thread_id, post_id=payload.post_id, agent_id=package.agent_handle, user_ids=recipients
        )
        await emit(
            sig.AgentEscalated(
                agent=package.agent_handle,
                package=package.name,
                thread_id=payload.thread_id,
                category_id=str(category_id),
                post_id=payload.post_id,
                directive_id=directive.id,
                reason="; ".join(payload.reasons),
                reasons=payload.reasons,
                notified_user_ids=recipients,
            ),
            dedupe_key=f"forum.agent.escalated:{directive.idempotency_key}",
        )
        return {"escalated": True, "notified_user_ids": recipients}

    async def notify(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload_as(UserNotify)
        package = runtime.packages[directive.package or ""].manifest
        if decision.action not in ("apply", "reply"):
            return {"notified": False, "reason": f"decision was {decision.action}"}
        ids = await notify_user(
            user_id=payload.user_id,
            kind=payload.kind,
            thread_id=payload.thread_id,
            post_id=payload.post_id,
            agent_id=package.agent_handle,
        )
        return {"notified": bool(ids), "notification_ids": ids}

    return escalate, notify


def register(runtime: AgentRuntime) -> None:
    escalate, notify = make_handlers(runtime)
    runtime.add_directive(AgentEscalate, escalate)
    runtime.add_directive(UserNotify, notify)
