"""The `worker` process: background duties that must not depend on a web request.

For now: the outbox sweeper, which publishes committed signals the fast-path relay left behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from redis.asyncio import Redis

from backend.settings import Settings
from engine import db
from engine.relay import StreamConfig, sweep_outbox

log = logging.getLogger("forum.worker")


async def run_worker(settings: Settings) -> None:
    database_url, redis_url = settings.require_urls()
    await db.connect(database_url, min_size=1, max_size=4)
    redis = Redis.from_url(redis_url)
    streams = StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker ready: sweeping the signal outbox every %.1fs", settings.sweeper_interval_s)
    try:
        while not stop.is_set():
            try:
                await sweep_outbox(db.pool(), redis, streams, older_than_s=settings.sweeper_interval_s)
            except Exception:
                log.exception("outbox sweep failed; retrying in %.1fs", settings.sweeper_interval_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.sweeper_interval_s)
            except TimeoutError:
                pass
    finally:
        log.info("worker stopping")
        await redis.aclose()
        await db.disconnect()
