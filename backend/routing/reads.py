"""Agent reads for expert routing (registered in backend/agents/readers.py).

`forum.expert_candidates` ranks the members who could answer a thread from their participation history in
its category over the last `window_days`: accepted answers (5 each), helpful reactions received on their
posts (1 each), replies written (0.5 each), each weighted by recency (half-life 30 days). It leaves out the
asker, agents, members who opted out of expert requests, people already asked about this thread, and people
who reached `per_user_daily` requests in the last 24 hours. Scores and their parts are returned so the
decision record says why each person was chosen.
"""

from __future__ import annotations

import uuid
from typing import Any

from engine import db

_CANDIDATES_SQL = """
WITH target AS (
    SELECT t.id, t.category_id, t.author_user_id FROM thread t WHERE t.id = $1
), history AS (
    SELECT p.author_user_id AS user_id, p.id AS post_id, p.created_at,
           (t.solution_post_id = p.id) AS accepted,
           power(0.5, extract(epoch FROM now() - p.created_at) / (30 * 86400.0)) AS recency
    FROM post p JOIN thread t ON t.id = p.thread_id, target
    WHERE t.category_id = target.category_id AND p.role = 'human' AND NOT p.is_deleted AND NOT p.is_hidden
      AND p.created_at > now() - make_interval(days => $2) AND p.author_user_id IS NOT NULL
      AND p.id <> (SELECT f.id FROM post f WHERE f.thread_id = t.id ORDER BY f.created_at, f.id LIMIT 1)
), helpful AS (
    SELECT h.user_id, count(*) AS n, sum(h.recency) AS weighted FROM history h
    JOIN reaction r ON r.post_id = h.post_id AND r.type IN ('like', 'upvote') AND r.user_id <> h.user_id
    GROUP BY h.user_id
), scored AS (
    SELECT h.user_id, count(*) AS replies, count(*) FILTER (WHERE h.accepted) AS accepted,
           sum(h.recency * (0.5 + CASE WHEN h.accepted THEN 5 ELSE 0 END)) AS base, max(h.created_at) AS last_at
    FROM history h GROUP BY h.user_id
)
SELECT s.user_id, u.username, s.replies, s.accepted, coalesce(hp.n, 0) AS helpful, s.last_at,
       s.base + coalesce(hp.weighted, 0) AS score
FROM scored s JOIN users u ON u.id = s.user_id LEFT JOIN helpful hp ON hp.user_id = s.user_id, target
WHERE s.user_id IS DISTINCT FROM target.author_user_id
  AND NOT EXISTS (SELECT 1 FROM routing_opt_out o WHERE o.user_id = s.user_id)
  AND NOT EXISTS (SELECT 1 FROM expert_notification e WHERE e.thread_id = target.id AND e.user_id = s.user_id)
  AND (SELECT count(*) FROM expert_notification e WHERE e.user_id = s.user_id
       AND e.notified_at > now() - interval '1 day') < $3
  AND NOT EXISTS (SELECT 1 FROM post a WHERE a.thread_id = target.id AND a.author_user_id = s.user_id)
ORDER BY score DESC, s.last_at DESC
LIMIT $4
"""


async def expert_candidates(
    thread_id: str, limit: int = 3, per_user_daily: int = 2, window_days: int = 180
) -> dict[str, Any]:
    thread = await db.fetchrow(
        "SELECT t.id, t.title, t.reply_count, t.is_solved, t.status, t.category_id FROM thread t WHERE t.id = $1",
        uuid.UUID(thread_id),
    )
    if thread is None:
        return {"thread_id": thread_id, "skip": "thread not found", "candidates": [], "already_notified": 0}
    already = await db.fetchval("SELECT count(*) FROM expert_notification WHERE thread_id = $1", thread["id"])
    rows = await db.fetch(_CANDIDATES_SQL, thread["id"], window_days, per_user_daily, max(0, min(limit, 20)))
    return {
        "thread_id": thread_id,
        "title": thread["title"],
        "is_solved": thread["is_solved"],
        "status": thread["status"],
        "already_notified": int(already),
        "candidates": [
            {
                "user_id": str(r["user_id"]),
                "username": r["username"],
                "score": round(float(r["score"]), 4),
                "replies": int(r["replies"]),
                "accepted": int(r["accepted"]),
                "helpful": int(r["helpful"]),
            }
            for r in rows
        ],
    }
