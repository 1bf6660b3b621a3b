"""Agent metrics per day (the admin page's small charts): responses, escalations, helpful and unhelpful
feedback from the signals, executions and cost from the executions. Days without data are absent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backend.context import RequestContext
from engine import db

MAX_DAYS = 90

_SIGNALS_SQL = """
SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(payload->>'package', payload->>'agent') AS agent,
       count(*) FILTER (WHERE type = 'forum.agent.responded') AS responses,
       count(*) FILTER (WHERE type = 'forum.agent.escalated') AS escalations,
       count(*) FILTER (WHERE type = 'forum.agent.feedback.recorded' AND payload->>'helpful' = 'true') AS helpful,
       count(*) FILTER (WHERE type = 'forum.agent.feedback.recorded' AND payload->>'helpful' = 'false') AS unhelpful
FROM signal
WHERE type IN ('forum.agent.responded', 'forum.agent.escalated', 'forum.agent.feedback.recorded')
  AND occurred_at >= $1
GROUP BY 1, 2
"""
_EXECUTIONS_SQL = """
SELECT date_trunc('day', started_at AT TIME ZONE 'UTC')::date AS day, package AS agent,
       count(*) AS executions, coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM execution WHERE started_at >= $1 AND NOT dry_run GROUP BY 1, 2
"""


async def daily_metrics(ctx: RequestContext, days: int) -> list[dict[str, Any]]:
    """One row per (day, agent) with data in the last `days` days, oldest first (admin)."""
    ctx.require_role("admin")
    days = max(1, min(MAX_DAYS, days))
    since = datetime.now(UTC) - timedelta(days=days)
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(day: Any, agent: str | None) -> dict[str, Any]:
        key = (day.isoformat(), agent or "?")
        if key not in rows:
            rows[key] = {
                "day": key[0],
                "agent": key[1],
                "responses": 0,
                "escalations": 0,
                "helpful": 0,
                "unhelpful": 0,
                "executions": 0,
                "cost_usd": 0.0,
            }
        return rows[key]

    for r in await db.fetch(_SIGNALS_SQL, since):
        target = row(r["day"], r["agent"])
        for name in ("responses", "escalations", "helpful", "unhelpful"):
            target[name] += r[name]
    for r in await db.fetch(_EXECUTIONS_SQL, since):
        target = row(r["day"], r["agent"])
        target["executions"] += r["executions"]
        target["cost_usd"] += r["cost_usd"]
    return [rows[k] for k in sorted(rows)]
