"""Publishing committed signals to the Redis stream partitions, exactly once.

Fast path: the boundary calls `publish_committed_signals` right after its commit. Slow path:
`sweep_outbox` publishes outbox rows that the fast path left behind (a crash or a Redis outage between
commit and XADD). Both go through one Lua script that XADDs only if the signal's publish marker is
new, so a signal published by the fast path and then swept (or swept twice) reaches the stream once.

Stream entry fields: `id`, `tenant`, `type`, `data` (the signal as JSON), `committed`, the Unix
time the fast path saw its transaction commit (empty from the sweeper): XADD time minus it is the
relay's lag, and the fan-out benchmark measures commit→receive from it; and `view` (fast path only,
may be empty): the producer's rendered view of what the signal changed (`engine.signals.attach_view`),
so web nodes push it to browsers without a database read.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.migrator import tenant_schemas
from engine.signals import Signal, row_to_signal
from engine.tenancy import SCHEMA_PREFIX, quote_schema, schema_for

log = logging.getLogger("forum.relay")

MARKER_TTL_S = 7 * 24 * 3600

# KEYS[1] stream, KEYS[2] publish marker. ARGV: maxlen, marker ttl, id, tenant, type, data, committed, view.
_PUBLISH_LUA = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                    'id', ARGV[3], 'tenant', ARGV[4], 'type', ARGV[5], 'data', ARGV[6], 'committed', ARGV[7],
                    'view', ARGV[8])
end
return false
"""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    partitions: int = 4
    maxlen: int = 100_000

    def partition_of(self, tenant_slug: str) -> int:
        return zlib.crc32(tenant_slug.encode()) % self.partitions

    def stream_key(self, partition: int) -> str:
        # The hash tag keeps a partition's stream and markers in one Redis Cluster slot.
        return f"signals:{{{partition}}}"

    def marker_key(self, partition: int, signal_id: str) -> str:
        return f"signals:{{{partition}}}:published:{signal_id}"

    def all_stream_keys(self) -> list[str]:
        return [self.stream_key(p) for p in range(self.partitions)]


_ENCODER = msgspec.json.Encoder()


async def _xadd_once(
    redis: Redis,
    streams: StreamConfig,
    signals: Sequence[Signal],
    committed_at: float | None = None,
    views: Mapping[str, bytes] | None = None,
) -> int:
    """Run the publish script for each signal in one round trip; return how many were new."""
    if not signals:
        return 0
    committed = f"{committed_at:.6f}" if committed_at is not None else ""
    script = redis.register_script(_PUBLISH_LUA)
    async with redis.pipeline(transaction=False) as pipe:
        for signal in signals:
            partition = streams.partition_of(signal.tenant)
            await script(
                keys=[streams.stream_key(partition), streams.marker_key(partition, signal.id)],
                args=[
                    streams.maxlen,
                    MARKER_TTL_S,
                    signal.id,
                    signal.tenant,
                    signal.type,
                    _ENCODER.encode(signal),
                    committed,
                    views.get(signal.id, b"") if views else b"",
                ],
                client=pipe,
            )
        results = await pipe.execute()
    return sum(1 for r in results if r)


async def publish_committed_signals(
    pool: asyncpg.Pool,
    redis: Redis,
    streams: StreamConfig,
    signals: Sequence[Signal],
    views: Mapping[str, bytes] | None = None,
) -> int:
    """Fast path, called only after the transaction that wrote `signals` committed; `views` (signal id →
    encoded view, see `attach_view`) go into the stream entries beside them.

    A Redis failure is logged and swallowed: the rows stay in the outbox for the sweeper.
    """
    if not signals:
        return 0
    committed_at = time.time()
    try:
        published = await _xadd_once(redis, streams, signals, committed_at, views)
    except (RedisError, OSError) as exc:
        log.warning("relay: %d signal(s) left for the sweeper (%s)", len(signals), type(exc).__name__)
        return 0
    by_schema: dict[str, list[uuid.UUID]] = {}
    for signal in signals:
        by_schema.setdefault(schema_for(signal.tenant), []).append(uuid.UUID(signal.id))
    async with pool.acquire() as conn:
        for schema, ids in by_schema.items():
            await conn.execute(
                f"DELETE FROM {quote_schema(schema)}.signal_outbox WHERE signal_id = ANY($1::uuid[])",
                ids,
            )
    return published


async def sweep_outbox(
    pool: asyncpg.Pool,
    redis: Redis,
    streams: StreamConfig,
    *,
    older_than_s: float = 5.0,
    batch_size: int = 500,
) -> int:
    """Slow path: publish every outbox row older than `older_than_s`, in id order, then delete it."""
    total = 0
    async with pool.acquire() as conn:
        for schema in await tenant_schemas(conn):
            slug = schema[len(SCHEMA_PREFIX) :]
            quoted = quote_schema(schema)
            while True:
                async with conn.transaction():
                    rows = await conn.fetch(
                        f"SELECT s.* FROM {quoted}.signal_outbox o JOIN {quoted}.signal s"
                        " ON s.id = o.signal_id"
                        " WHERE o.created_at < clock_timestamp() - make_interval(secs => $1)"
                        " ORDER BY s.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
                        older_than_s,
                        batch_size,
                    )
                    if not rows:
                        break
                    signals = [row_to_signal(r, slug) for r in rows]
                    total += await _xadd_once(redis, streams, signals)
                    await conn.execute(
                        f"DELETE FROM {quoted}.signal_outbox WHERE signal_id = ANY($1::uuid[])",
                        [r["id"] for r in rows],
                    )
                if len(rows) < batch_size:
                    break
    if total:
        log.info("sweeper: published %d signal(s) the relay had left", total)
    return total
