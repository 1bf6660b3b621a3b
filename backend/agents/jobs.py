"""Agent jobs run by the worker: the draft sweep.

A worker killed mid-stream leaves its draft in Redis (replayed to every new subscriber of the thread
until its TTL) and its execution row `running`. The next attempt ends that draft when it claims the
directive (engine/agents/runner.py); this sweep ends what no attempt will: drafts whose execution
already finished (the worker died between saving the post and announcing it), failed, is unknown, or
has been silent for `stale_after_s`.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from redis.asyncio import Redis

from engine import db
from engine.tenancy import InvalidSlug, quote_schema, schema_for
from realtime.drafts import DEFAULT_TTL_S, ActiveDraft, active_drafts, publish_draft_end

log = logging.getLogger("forum.worker")


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def end_orphaned_drafts(redis: Redis, *, stale_after_s: float, draft_ttl_s: int = DEFAULT_TTL_S) -> int:
    """End every draft whose attempt is over or gone; returns how many were ended."""
    by_tenant: dict[str, list[ActiveDraft]] = defaultdict(list)
    for draft in await active_drafts(redis, ttl_s=draft_ttl_s):
        by_tenant[draft.tenant].append(draft)
    ended = 0
    for tenant, drafts in by_tenant.items():
        try:
            schema = quote_schema(schema_for(tenant))
        except InvalidSlug:
            continue
        ids = [u for u in (_uuid(d.execution_id) for d in drafts) if u is not None]
        async with db.pool().acquire() as conn:
            try:
                rows = await conn.fetch(
                    f"SELECT e.id, e.status, e.heartbeat_at < now() - make_interval(secs => $2) AS silent,"
                    f" d.result->>'post_id' AS post_id FROM {schema}.execution e"
                    f" JOIN {schema}.directive d ON d.id = e.directive_id WHERE e.id = ANY($1::uuid[])",
                    ids,
                    stale_after_s,
                )
            except Exception as exc:  # a tenant dropped or mid-migration: next time
                log.warning("draft sweep: %s skipped (%s)", tenant, type(exc).__name__)
                continue
        executions = {str(r["id"]): r for r in rows}
        for draft in drafts:
            row = executions.get(draft.execution_id)
            post_id: str | None = None
            if row is None:
                if draft.idle_s < stale_after_s:
                    continue  # not committed yet, or not an execution of this worker's: leave it for now
                outcome = "abandoned"
            elif row["status"] == "succeeded":
                outcome, post_id = "saved", row["post_id"]
            elif row["status"] == "failed":
                outcome = "failed"
            elif row["silent"] and draft.idle_s >= stale_after_s:
                outcome = "abandoned"
            else:
                continue  # still being written
            await publish_draft_end(redis, tenant, draft.thread_id, draft.execution_id, post_id, outcome=outcome)
            ended += 1
    if ended:
        log.info("draft sweep: ended %d orphaned draft(s)", ended)
    return ended
