"""Per-node readers: one task per stream partition (XREAD, no consumer group) and one pub/sub listener
for drafts. They feed the hub and survive Redis outages: a reader that loses its connection retries
with backoff and resumes from the last entry id it dispatched, so nothing in the stream is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from realtime.drafts import DRAFT_PUBSUB_CHANNEL, decode_notice
from realtime.hub import Hub
from realtime.protocol import Draft, DraftEnd

log = logging.getLogger("forum.realtime")

_BACKOFF_START_S = 0.05
_BACKOFF_MAX_S = 2.0


def _reraise_if_cancelling(exc: Exception) -> None:
    """redis-py may turn a cancellation of a blocked command into a ConnectionError (it closes the
    connection): a task being cancelled must stop, not retry."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


class PartitionReader:
    """Reads `stream_key` from its tail (as of start) onward and dispatches every entry to the hub."""

    def __init__(
        self,
        redis: Redis,
        stream_key: str,
        hub: Hub,
        *,
        block_ms: int = 2000,
        count: int = 500,
        batch_deliveries: int = 65_536,
        on_entry: Callable[[dict[bytes, bytes]], None] | None = None,
    ):
        self.redis = redis
        self.on_entry = on_entry  # sees every entry first (revocations: realtime/revocation.py); never awaits
        self.stream_key = stream_key
        self.hub = hub
        self.block_ms = block_ms
        self.count = count
        self.batch_deliveries = batch_deliveries
        self.last_id: str | None = None  # concrete id: never "$" after the first read
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def _tail_id(self) -> str:
        newest = await self.redis.xrevrange(self.stream_key, max="+", min="-", count=1)
        if not newest:
            return "0-0"
        raw = newest[0][0]
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def run(self) -> None:
        backoff = _BACKOFF_START_S
        while True:
            try:
                if self.last_id is None:
                    self.last_id = await self._tail_id()
                self.connected.set()
                reply: Any = await self.redis.xread(
                    {self.stream_key: self.last_id}, count=self.count, block=self.block_ms
                )
                backoff = _BACKOFF_START_S
                for _key, entries in reply or []:
                    await self._dispatch(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # RedisError/OSError mostly; never let the reader die
                _reraise_if_cancelling(exc)
                self.connected.clear()
                self.reconnects += 1
                log.warning(
                    "realtime: reader %s lost Redis (%s); retrying from %s in %.2fs",
                    self.stream_key,
                    type(exc).__name__,
                    self.last_id,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _dispatch(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Dispatch in batches of about `batch_deliveries` socket deliveries (see `Hub.batch`)."""
        hub, i = self.hub, 0
        while i < len(entries):
            start = hub.delivered
            async with hub.batch():
                while i < len(entries) and hub.delivered - start < self.batch_deliveries:
                    raw_id, fields = entries[i]
                    i += 1
                    self.last_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                    try:
                        if self.on_entry is not None:
                            self.on_entry(fields)
                        hub.dispatch_entry(raw_id, fields)
                    except Exception:
                        log.exception("realtime: dispatching %s failed", self.last_id)
            await asyncio.sleep(0)


class DraftListener:
    """Subscribes to the drafts pub/sub channel and hands deltas and ends to the hub."""

    def __init__(self, redis: Redis, hub: Hub):
        self.redis = redis
        self.hub = hub
        self.connected = asyncio.Event()

    async def run(self) -> None:
        backoff = _BACKOFF_START_S
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(DRAFT_PUBSUB_CHANNEL)
                self.connected.set()
                backoff = _BACKOFF_START_S
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _reraise_if_cancelling(exc)
                self.connected.clear()
                log.warning(
                    "realtime: drafts listener lost Redis (%s); retrying in %.2fs",
                    type(exc).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except (RedisError, OSError):
                    pass

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            notice = decode_notice(raw)
        except ValueError:
            log.warning("realtime: undecodable draft notice")
            return
        channel = f"thread:{notice.thread_id}"
        message: Draft | DraftEnd
        if notice.kind == "delta":
            message = Draft(channel=channel, execution_id=notice.execution_id, seq=notice.seq, delta=notice.delta)
        else:
            message = DraftEnd(
                channel=channel,
                execution_id=notice.execution_id,
                post_id=notice.post_id or None,
                outcome=notice.outcome or ("saved" if notice.post_id else "failed"),
            )
        self.hub.dispatch_draft(notice.tenant, channel, message)
