"""The moderation domain's directive handlers (the only place an agent's moderation decision changes
forum state) and the approval policy for `forum.post.hide`.

- `forum.moderation.flag.create`: an open flag with the agent's category, score, rules and reasons, once
  per directive; `forum.spam.detected` / `forum.toxicity.detected` and the usual flag signals (which put it
  in the moderation queue live).
- `forum.post.hide`: hides the post (never deletes). The manifest makes it wait for a moderator's
  approval; `hide_waiver` approves it by policy only when the org's installation turned on
  `hide_pending_review_days` and the author's account (read from the database, not the payload) is younger.
Each runs inside the runner's tenant transaction and is idempotent on its directive.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from backend.forum import queries as forum_queries
from backend.forum import signals as sig
from backend.forum.schemas import LiveView
from engine import db
from engine.agents.api import Decision, DirectiveView
from engine.agents.directives import DirectiveRow
from engine.agents.registry import AgentRuntime
from engine.signals import attach_view, emit

HIDE_POLICY = "policy:hide_pending_review"


async def _post(post_id: str) -> Any:
    return await db.fetchrow(
        "SELECT p.id, p.thread_id, p.is_hidden, p.is_deleted, p.author_user_id, t.category_id FROM post p"
        " JOIN thread t ON t.id = p.thread_id WHERE p.id = $1 FOR UPDATE OF p",
        uuid.UUID(post_id),
    )


def make_flag_create_handler(runtime: AgentRuntime) -> Any:
    from backend.moderation.service import insert_flag

    async def flag_create(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        payload = directive.payload
        if decision.action != "flag":
            return {"flagged": False, "reason": f"decision was {decision.action}"}
        existing = await db.fetchval("SELECT id FROM moderation_flag WHERE directive_id = $1", uuid.UUID(directive.id))
        if existing is not None:
            return {"flagged": True, "flag_id": str(existing), "duplicate": True}
        post = await _post(payload["post_id"])
        if post is None or post["is_deleted"]:
            return {"flagged": False, "reason": "the post is gone"}
        package = runtime.packages[directive.package or ""]
        category = str(payload["category"])
        score = float(payload["scores"][category])
        detected: Any = sig.SpamDetected if category == "spam" else None
        if category == "toxicity":
            detected = sig.ToxicityDetected
        cause = None
        if detected is not None:
            cause = await emit(
                detected(
                    post_id=str(post["id"]), thread_id=str(post["thread_id"]), score=score, reasons=decision.reasons
                )
            )
        flag_id = await insert_flag(
            post_id=post["id"],
            thread_id=post["thread_id"],
            category_id=post["category_id"],
            reason=str(payload["reason"]),
            notes=f"{category} score {score:.2f}: " + "; ".join(decision.reasons),
            flagger_user_id=None,
            flagger_agent_id=package.manifest.agent_handle,
            causation_id=cause.id if cause is not None else None,
            category=category,
            score=score,
            rules=list(payload.get("rules") or []),
            directive_id=directive.id,
        )
        return {"flagged": True, "flag_id": str(flag_id), "category": category, "score": score}

    return flag_create


def make_post_hide_handler(runtime: AgentRuntime) -> Any:
    async def post_hide(directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]:
        post = await _post(directive.payload["post_id"])
        if post is None or post["is_deleted"]:
            return {"hidden": False, "reason": "the post is gone"}
        if post["is_hidden"]:
            return {"hidden": True, "changed": False}
        now = datetime.now(UTC)
        await db.execute("UPDATE post SET is_hidden = true, updated_at = $2 WHERE id = $1", post["id"], now)
        package = runtime.packages[directive.package or ""]
        hidden = await emit(
            sig.PostHidden(
                post_id=str(post["id"]),
                thread_id=str(post["thread_id"]),
                category_id=str(post["category_id"]),
                hidden_by_agent=package.manifest.agent_handle,
                directive_id=directive.id,
            )
        )
        if hidden is not None:  # the thread's readers drop its content (the view has none)
            attach_view(hidden, LiveView(post=await forum_queries.public_post_by_id(post["id"])))
        return {"hidden": True, "changed": True}

    return post_hide


async def hide_waiver(row: DirectiveRow, config: dict[str, Any]) -> str | None:
    """Approve a `forum.post.hide` at once when the org opted in for young accounts; None otherwise."""
    if row.type != "forum.post.hide":
        return None
    days = int(config.get("hide_pending_review_days") or 0)
    if days <= 0:
        return None
    created = await db.fetchval(
        "SELECT u.created_at FROM post p JOIN users u ON u.id = p.author_user_id WHERE p.id = $1",
        uuid.UUID(str(row.payload["post_id"])),
    )
    if created is None or (datetime.now(UTC) - created).total_seconds() >= days * 86_400:
        return None
    return HIDE_POLICY
