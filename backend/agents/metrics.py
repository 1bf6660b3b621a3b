"""Question metrics (spec §14.1) for `/agents/metrics`: how fast and how well new questions get answered,
and what the agents contribute. Every figure is null ("no data") when there is nothing to measure.

A question is a thread started in the window that was not imported. A response is the first post in it
by someone other than its author — a person, or an agent's answer (greetings, summaries and decision
lists are not answers). Times are measured from the post the response answers (the opening post)."""

from __future__ import annotations

from typing import Any

from backend.context import RequestContext
from engine import db

NOT_ANSWERS = ("welcome", "summary", "decisions")

_SQL = """
WITH q AS (
    SELECT t.id, t.created_at, t.author_user_id, t.is_solved, t.solution_post_id
    FROM thread t
    WHERE t.created_at >= now() - make_interval(days => $1)
      AND NOT EXISTS (SELECT 1 FROM import_record r WHERE r.kind = 'thread' AND r.local_id = t.id)
),
first_response AS (
    SELECT q.id, min(p.created_at) AS at
    FROM q JOIN post p ON p.thread_id = q.id
    WHERE NOT p.is_deleted AND p.created_at > q.created_at
      AND (p.role = 'human' AND p.author_user_id IS DISTINCT FROM q.author_user_id
           OR p.role = 'agent' AND coalesce(p.agent_purpose, '') <> ALL($2::text[]))
    GROUP BY q.id
),
solved_by_agent AS (
    SELECT q.id FROM q JOIN post s ON s.id = q.solution_post_id
    WHERE q.is_solved AND s.role = 'agent'
      AND NOT EXISTS (SELECT 1 FROM post h WHERE h.thread_id = q.id AND h.role = 'human' AND NOT h.is_deleted
                      AND h.author_user_id IS DISTINCT FROM q.author_user_id)
)
SELECT
    (SELECT count(*) FROM q) AS questions,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - q.created_at))
       FROM q JOIN first_response f ON f.id = q.id) AS median_first_response_s,
    (SELECT count(*) FROM q JOIN first_response f ON f.id = q.id
       WHERE f.at <= q.created_at + interval '24 hours') AS answered_24h,
    (SELECT count(*) FROM q LEFT JOIN first_response f ON f.id = q.id
       WHERE q.created_at <= now() - interval '24 hours' OR f.at <= q.created_at + interval '24 hours')
       AS decided_24h,
    (SELECT count(*) FROM q WHERE q.is_solved) AS solved,
    (SELECT count(*) FROM solved_by_agent) AS solved_by_agent,
    (SELECT count(DISTINCT (s.payload->>'thread_id')) FROM signal s JOIN q ON q.id::text = s.payload->>'thread_id'
       WHERE s.type = 'forum.agent.escalated') AS escalated,
    (SELECT count(*) FROM post p JOIN q ON q.id = p.thread_id
       WHERE p.role = 'agent' AND p.agent_purpose = 'faq_answer' AND NOT p.is_deleted) AS agent_answers,
    (SELECT count(*) FROM agent_feedback f JOIN post p ON p.id = f.post_id JOIN q ON q.id = p.thread_id
       WHERE p.agent_purpose = 'faq_answer') AS feedback,
    (SELECT count(*) FROM agent_feedback f JOIN post p ON p.id = f.post_id JOIN q ON q.id = p.thread_id
       WHERE p.agent_purpose = 'faq_answer' AND f.helpful) AS helpful,
    (SELECT coalesce(sum(cost_usd), 0) FROM agent_usage WHERE day >= current_date - $1) AS cost_usd
"""


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def question_metrics(ctx: RequestContext, days: int = 30) -> dict[str, Any]:
    ctx.require_role("moderator")
    row = await db.fetchrow(_SQL, days, list(NOT_ANSWERS))
    questions = int(row["questions"])
    solved = int(row["solved"])
    median = row["median_first_response_s"]
    return {
        "window_days": days,
        "questions": questions,
        "time_to_first_response_s": round(float(median), 3) if median is not None else None,
        "answered_within_24h_rate": _ratio(int(row["answered_24h"]), int(row["decided_24h"])),
        "deflection_rate": _ratio(int(row["solved_by_agent"]), questions),
        "escalation_rate": _ratio(int(row["escalated"]), questions),
        "agent_answers": int(row["agent_answers"]),
        "helpful_rate": _ratio(int(row["helpful"]), int(row["feedback"])),
        "resolved": solved,
        "cost_usd": float(row["cost_usd"]),
        "cost_per_resolved_thread_usd": round(float(row["cost_usd"]) / solved, 6) if solved else None,
    }
