"""Time-driven agent triggers, run by every worker (any number of them): each turns "time has passed" into
an ordinary signal, deduplicated so that two workers (or two runs) record it once, and the router takes
it from there like any other signal.

- `sweep_unanswered`: for orgs with the routing agent enabled, a question with no reply from anyone but
  its asker after `unanswered_after_minutes` → `forum.thread.unanswered` (dedupe `unanswered:<thread>`).
- `sweep_digests`: for orgs with the summary agent enabled (`digest` on), each category once per ISO week →
  `forum.digest.due` (dedupe `digest:<category>:<week>`); the summary agent's `forum.digest.post` directive
  (key per category and week) and the `digest_run` primary key make the digest once per week per category.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from backend.forum import signals as sig
from engine import db
from engine.agents.registry import AgentRuntime
from engine.agents.router import merged_config
from engine.relay import StreamConfig
from engine.signals import SignalContext, emit
from engine.work import tenant_work

log = logging.getLogger("forum.periodic")
MAX_THREADS_PER_SWEEP = 200


def iso_week(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def _context(name: str) -> SignalContext:
    return SignalContext(actor_type="system", actor_id=name, source="job", correlation_id=str(uuid.uuid4()))


async def _orgs() -> list[str]:
    async with db.transaction():
        rows = await db.fetch("SELECT slug FROM public.orgs ORDER BY slug")
    return [r["slug"] for r in rows]


async def _config(runtime: AgentRuntime, package: str) -> dict[str, Any] | None:
    row = await db.fetchrow("SELECT enabled, config FROM installation WHERE package = $1", package)
    if row is None or not row["enabled"] or package not in runtime.packages:
        return None
    return merged_config(runtime.packages[package], row["config"])


async def sweep_unanswered(runtime: AgentRuntime, redis: Redis, streams: StreamConfig) -> int:
    emitted = 0
    for slug in await _orgs():
        async with tenant_work(redis, streams, slug, _context("unanswered-sweep")):
            config = await _config(runtime, "forum_routing_agent")
            if config is None:
                continue
            delay_s = max(0, int(config.get("unanswered_after_minutes", 60))) * 60
            rows = await db.fetch(
                "SELECT t.id, t.category_id, extract(epoch FROM now() - t.created_at) AS waited FROM thread t"
                " WHERE t.status = 'open' AND NOT t.is_solved AND t.author_user_id IS NOT NULL"
                " AND t.created_at < now() - make_interval(secs => $1) AND t.created_at > now() - interval '14 days'"
                " AND NOT EXISTS (SELECT 1 FROM post p WHERE p.thread_id = t.id AND p.role = 'human'"
                "   AND NOT p.is_deleted AND p.author_user_id IS DISTINCT FROM t.author_user_id)"
                " AND NOT EXISTS (SELECT 1 FROM signal s WHERE s.dedupe_key = 'unanswered:' || t.id::text)"
                " ORDER BY t.created_at LIMIT $2",
                float(delay_s),
                MAX_THREADS_PER_SWEEP,
            )
            for row in rows:
                signal = await emit(
                    sig.ThreadUnanswered(
                        thread_id=str(row["id"]), category_id=str(row["category_id"]), waited_s=float(row["waited"])
                    ),
                    dedupe_key=f"unanswered:{row['id']}",
                )
                emitted += signal is not None
    return emitted


async def sweep_digests(runtime: AgentRuntime, redis: Redis, streams: StreamConfig, now: datetime | None = None) -> int:
    week = iso_week(now or datetime.now(UTC))
    emitted = 0
    for slug in await _orgs():
        async with tenant_work(redis, streams, slug, _context("digest-sweep")):
            config = await _config(runtime, "forum_summary_agent")
            if config is None or not config.get("digest", True):
                continue
            rows = await db.fetch(
                "SELECT c.id FROM category c WHERE NOT c.is_archived"
                " AND NOT EXISTS (SELECT 1 FROM digest_run d WHERE d.category_id = c.id AND d.week = $1)"
                " ORDER BY c.position, c.name",
                week,
            )
            for row in rows:
                signal = await emit(
                    sig.DigestDue(category_id=str(row["id"]), week=week), dedupe_key=f"digest:{row['id']}:{week}"
                )
                emitted += signal is not None
    return emitted
