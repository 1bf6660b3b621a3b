"""Agent read for the weekly digest: a category's week in threads (registered in backend/agents/readers.py).
Only visible threads (not deleted/hidden first posts) of the category; bounded lists."""

from __future__ import annotations

import uuid
from typing import Any

from engine import db

_ACTIVE_SQL = """
SELECT t.id, t.title, t.is_solved, t.reply_count, t.created_at,
       (SELECT count(*) FROM post p WHERE p.thread_id = t.id AND p.created_at > now() - make_interval(days => $2)
          AND NOT p.is_deleted AND NOT p.is_hidden) AS week_posts,
       (SELECT count(*) FROM reaction r JOIN post p ON p.id = r.post_id WHERE p.thread_id = t.id
          AND r.created_at > now() - make_interval(days => $2) AND r.type IN ('like', 'upvote')) AS week_reactions,
       EXISTS (SELECT 1 FROM post p WHERE p.thread_id = t.id AND p.role = 'human' AND NOT p.is_deleted
          AND p.author_user_id IS DISTINCT FROM t.author_user_id) AS answered,
       (t.is_solved AND t.updated_at > now() - make_interval(days => $2)) AS solved_this_week
FROM thread t
WHERE t.category_id = $1 AND t.status <> 'archived' AND t.author_agent_id IS NULL
  AND t.last_activity_at > now() - make_interval(days => $2)
  AND NOT EXISTS (SELECT 1 FROM post f WHERE f.thread_id = t.id AND (f.is_deleted OR f.is_hidden)
                  AND f.id = (SELECT g.id FROM post g WHERE g.thread_id = t.id ORDER BY g.created_at, g.id LIMIT 1))
ORDER BY t.last_activity_at DESC
LIMIT 200
"""


async def digest_data(category_id: str, days: int = 7, top: int = 5) -> dict[str, Any]:
    category = await db.fetchrow("SELECT id, name, slug FROM category WHERE id = $1", uuid.UUID(category_id))
    if category is None:
        return {"skip": "category not found"}
    rows = [dict(r) for r in await db.fetch(_ACTIVE_SQL, category["id"], days)]

    def item(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(r["id"]),
            "title": r["title"],
            "posts": int(r["week_posts"]),
            "reactions": int(r["week_reactions"]),
        }

    ranked = sorted(rows, key=lambda r: (-(r["week_posts"] + 2 * r["week_reactions"]), r["title"]))
    return {
        "category": {"id": str(category["id"]), "name": category["name"], "slug": category["slug"]},
        "days": days,
        "top": [item(r) for r in ranked[:top]],
        "unanswered": [item(r) for r in rows if not r["answered"] and not r["is_solved"]][:top],
        "solved": [item(r) for r in rows if r["solved_this_week"]][:top],
        "active_threads": len(rows),
    }
