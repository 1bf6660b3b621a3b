"""Spec §14 metrics of moderation and routing, over the last `days`: flags per day, time to review,
false-flag rate (overall, per rule, per agent), spam incidence, the confidence distribution of each agent's
decisions, and the routing agent's success rate. A rate with nothing to divide is `None` ("no data"),
never 0. Merged into `GET /agents/metrics` under "moderation" (faq owns the rest of that response)."""

from __future__ import annotations

from typing import Any

from engine import db

BUCKETS = (0.2, 0.4, 0.6, 0.8, 1.0)


def _rate(part: int | None, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


async def moderation_metrics(days: int = 30) -> dict[str, Any]:
    window = "now() - make_interval(days => $1)"
    per_day = await db.fetch(
        f"SELECT date_trunc('day', created_at)::date AS day, count(*) AS flags,"
        f" count(*) FILTER (WHERE flagger_agent_id IS NOT NULL) AS agent_flags FROM moderation_flag"
        f" WHERE created_at > {window} GROUP BY 1 ORDER BY 1",
        days,
    )
    review = await db.fetchrow(
        f"SELECT count(*) AS n, avg(extract(epoch FROM resolved_at - created_at)) AS avg_s,"
        f" percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at)) AS median_s"
        f" FROM moderation_flag WHERE resolved_at IS NOT NULL AND created_at > {window}",
        days,
    )
    by_agent = await db.fetch(
        f"SELECT coalesce(flagger_agent_id, 'members') AS agent, count(*) AS flags,"
        f" count(*) FILTER (WHERE status = 'dismissed') AS dismissed,"
        f" count(*) FILTER (WHERE status = 'action_taken') AS acted FROM moderation_flag"
        f" WHERE created_at > {window} GROUP BY 1 ORDER BY 1",
        days,
    )
    by_rule = await db.fetch(
        f"SELECT coalesce(flagger_agent_id, 'members') AS agent, rule, count(*) AS flags,"
        f" count(*) FILTER (WHERE status = 'dismissed') AS dismissed,"
        f" count(*) FILTER (WHERE status = 'action_taken') AS acted"
        f" FROM moderation_flag, unnest(CASE WHEN cardinality(rules) = 0 THEN ARRAY[reason] ELSE rules END) AS rule"
        f" WHERE created_at > {window} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2",
        days,
    )
    spam = await db.fetchrow(
        f"SELECT (SELECT count(*) FROM post WHERE role = 'human' AND created_at > {window}) AS posts,"
        f" (SELECT count(DISTINCT f.post_id) FROM moderation_flag f JOIN post p ON p.id = f.post_id"
        f"   WHERE f.reason = 'spam' AND p.created_at > {window}) AS flagged,"
        f" (SELECT count(DISTINCT f.post_id) FROM moderation_flag f JOIN post p ON p.id = f.post_id"
        f"   WHERE f.reason = 'spam' AND f.status = 'action_taken' AND p.created_at > {window}) AS confirmed",
        days,
    )
    confidence = await db.fetch(
        f"SELECT package, (decision->>'confidence')::float AS c FROM execution WHERE status = 'succeeded'"
        f" AND NOT dry_run AND decision IS NOT NULL AND started_at > {window}",
        days,
    )
    routing = await db.fetchrow(
        f"SELECT count(*) AS notified, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM post p WHERE"
        f" p.thread_id = e.thread_id AND p.author_user_id = e.user_id AND p.created_at >= e.notified_at"
        f" AND NOT p.is_deleted)) AS answered FROM expert_notification e WHERE e.notified_at > {window}",
        days,
    )
    distribution: dict[str, dict[str, Any]] = {}
    for row in confidence:
        entry = distribution.setdefault(row["package"], {"decisions": 0, "buckets": dict.fromkeys(_labels(), 0)})
        entry["decisions"] += 1
        value = min(max(float(row["c"]), 0.0), 1.0)
        label = next(lbl for lbl, top in zip(_labels(), BUCKETS, strict=True) if value <= top)
        entry["buckets"][label] += 1

    def outcome_rates(row: Any) -> dict[str, Any]:
        resolved = row["dismissed"] + row["acted"]
        return {
            "flags": row["flags"],
            "resolved": resolved,
            "dismissed": row["dismissed"],
            "false_flag_rate": _rate(row["dismissed"], resolved),
        }

    total_flags = sum(r["flags"] for r in per_day)
    return {
        "days": days,
        "flags_per_day": [
            {"day": r["day"].isoformat(), "flags": r["flags"], "agent_flags": r["agent_flags"]} for r in per_day
        ],
        "flags_per_day_avg": round(total_flags / days, 3) if total_flags else None,
        "time_to_review_s": {
            "reviewed": review["n"],
            "median": round(float(review["median_s"]), 1) if review["n"] else None,
            "avg": round(float(review["avg_s"]), 1) if review["n"] else None,
        },
        "false_flag_rate": {
            "by_agent": {r["agent"]: outcome_rates(r) for r in by_agent},
            "by_rule": [{"agent": r["agent"], "rule": r["rule"], **outcome_rates(r)} for r in by_rule],
        },
        "spam_incidence": {
            "posts": spam["posts"],
            "flagged": spam["flagged"],
            "confirmed": spam["confirmed"],
            "flagged_rate": _rate(spam["flagged"], spam["posts"]),
            "confirmed_rate": _rate(spam["confirmed"], spam["posts"]),
        },
        "confidence": distribution,
        "routing": {
            "notified": routing["notified"],
            "answered": routing["answered"],
            "success_rate": _rate(routing["answered"], routing["notified"]),
        },
    }


def _labels() -> list[str]:
    lows = (0.0, *BUCKETS[:-1])
    return [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(lows, BUCKETS, strict=True)]
