"""The directive job queue (SAQ). A job's key is its directive id, so enqueueing twice while it is
queued or running is a no-op; rows stay the source of truth (`requeue_stranded` rebuilds the queue
from them after a Redis loss or a dead worker)."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq.queue.redis import RedisQueue

from engine import db
from engine.migrator import tenant_schemas
from engine.tenancy import SCHEMA_PREFIX, quote_schema

log = logging.getLogger("forum.queue")
JOB_NAME = "run_directive"


class DirectiveQueue:
    def __init__(
        self,
        redis_url: str,
        *,
        timeout_s: int = 120,
        retries: int = 3,
        heartbeat_s: int = 30,
        name: str = "directives",
    ) -> None:
        # RedisQueue directly: saq's Queue.from_url rejects unix:// URLs (the embedded Redis uses one).
        self.queue = RedisQueue(Redis.from_url(redis_url), name=name)
        self._connected = False
        self.timeout_s = timeout_s
        self.retries = retries
        self.heartbeat_s = heartbeat_s

    @staticmethod
    def job_key(tenant: str, directive_id: str) -> str:
        return f"{tenant}:{directive_id}"

    async def enqueue(self, tenant: str, directive_id: str) -> None:
        if not self._connected:
            await self.connect()
        await self.queue.enqueue(
            JOB_NAME,
            key=self.job_key(tenant, directive_id),
            tenant=tenant,
            directive_id=directive_id,
            timeout=self.timeout_s,
            retries=self.retries,
            heartbeat=self.heartbeat_s,
        )

    async def connect(self) -> None:
        await self.queue.connect()
        self._connected = True

    async def disconnect(self) -> None:
        try:
            await self.queue.disconnect()
        except (RedisError, OSError) as exc:  # Redis already gone: nothing left to close cleanly
            log.info("queue: disconnect with Redis unreachable (%s)", type(exc).__name__)


async def requeue_stranded(
    queue: DirectiveQueue, *, pending_after_s: float = 10.0, running_stale_s: float = 120.0
) -> int:
    """Enqueue every directive whose row says it should run but whose job may be gone: pending or
    approved for a while, or running with no execution heartbeat for `running_stale_s`."""
    count = 0
    async with db.pool().acquire() as conn:
        for schema in await tenant_schemas(conn):
            q = quote_schema(schema)
            try:
                rows = await conn.fetch(
                    f"SELECT d.id FROM {q}.directive d WHERE (d.status IN ('pending', 'approved')"
                    f"  AND d.updated_at < now() - make_interval(secs => $1))"
                    f" OR (d.status = 'running' AND NOT EXISTS (SELECT 1 FROM {q}.execution e"
                    f"  WHERE e.directive_id = d.id AND e.heartbeat_at > now() - make_interval(secs => $2)))",
                    pending_after_s,
                    running_stale_s,
                )
            except Exception as exc:  # a tenant mid-migration: try it next time
                log.warning("requeue: %s skipped (%s)", schema, type(exc).__name__)
                continue
            for row in rows:
                await queue.enqueue(schema[len(SCHEMA_PREFIX) :], str(row["id"]))
                count += 1
    return count


async def heartbeat_execution(tenant: str, directive_id: str) -> None:
    async with db.pool().acquire() as conn:
        await conn.execute(
            f"UPDATE {quote_schema(SCHEMA_PREFIX + tenant)}.execution SET heartbeat_at = now()"
            " WHERE directive_id = $1::uuid AND status = 'running'",
            directive_id,
        )
