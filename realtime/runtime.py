"""The realtime layer of one web node: its hub, readers and limits, started and stopped by the app's
lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from engine.relay import StreamConfig
from realtime.hub import ChannelsFor, Hub, HubLimits, ShapeEvent, payload_only
from realtime.readers import DraftListener, PartitionReader
from realtime.revocation import LiveSockets, Revocations, SocketAuthority
from realtime.session import ChannelAuthorizer, ConnectionLimiter

log = logging.getLogger("forum.realtime")


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    queue_size: int = 256
    replay_buffer: int = 1024
    max_subscriptions: int = 50
    max_message_bytes: int = 4096
    max_ops_per_s: int = 50
    max_connections_per_user: int = 20
    max_connections_per_ip: int = 200
    stall_timeout_s: float = 20.0  # a send blocked this long means a dead or hopeless peer
    check_interval_s: float = 5.0
    replay_max_entries: int = 10_000
    recheck_interval_s: float = 300.0  # every signed-in socket re-authorized this often (0: never), e.g. expiry
    block_ms: int = 2000
    shutdown_timeout_s: float = 5.0


class Realtime:
    def __init__(
        self,
        redis_url: str,
        streams: StreamConfig,
        channels_for: ChannelsFor,
        authorizer: ChannelAuthorizer,
        config: RealtimeConfig | None = None,
        authority: SocketAuthority | None = None,
        shape: ShapeEvent = payload_only,
    ) -> None:
        self.config = config or RealtimeConfig()
        self.streams = streams
        self.authorizer = authorizer
        self.hub = Hub(
            channels_for,
            HubLimits(
                queue_size=self.config.queue_size,
                replay_buffer=self.config.replay_buffer,
                subscriptions_per_socket=self.config.max_subscriptions,
            ),
            shape,
        )
        self.limiter = ConnectionLimiter(self.config.max_connections_per_user, self.config.max_connections_per_ip)
        # Readers block in XREAD: their own client, with a read timeout above the block time.
        self.redis: Redis = Redis.from_url(
            redis_url,
            decode_responses=False,
            socket_timeout=self.config.block_ms / 1000 + 10,
            socket_connect_timeout=5,
        )
        # Open sockets and, with an authority, their re-authorization on revocations (realtime/revocation.py).
        self.sockets = LiveSockets()
        self.revocations: Revocations | None = None
        if authority is not None:  # its pub/sub on a client of its own, apart from the readers' blocking XREADs
            notices = Redis.from_url(redis_url, decode_responses=False, socket_timeout=15, socket_connect_timeout=5)
            self.revocations = Revocations(self, authority, notices)
        watch = self.revocations.watch_entry if self.revocations is not None else None
        self.readers = [
            PartitionReader(self.redis, key, self.hub, block_ms=self.config.block_ms, on_entry=watch)
            for key in streams.all_stream_keys()
        ]
        self.drafts = DraftListener(self.redis, self.hub)
        self._tasks: list[asyncio.Task[None]] = []

    def stream_key_for(self, tenant: str) -> str:
        return self.streams.stream_key(self.streams.partition_of(tenant))

    async def start(self, ready_timeout_s: float = 5.0) -> None:
        self._tasks = [asyncio.create_task(r.run(), name=f"realtime-reader-{r.stream_key}") for r in self.readers]
        self._tasks.append(asyncio.create_task(self.drafts.run(), name="realtime-drafts"))
        self._tasks.append(asyncio.create_task(self._watch(), name="realtime-watch"))
        if self.revocations is not None:
            self._tasks.append(asyncio.create_task(self.revocations.run(), name="realtime-revocations"))
            self._tasks.append(asyncio.create_task(self.revocations.listen(), name="realtime-revocation-notices"))
            if self.config.recheck_interval_s > 0:
                self._tasks.append(
                    asyncio.create_task(
                        self.revocations.recheck_every(self.config.recheck_interval_s), name="realtime-recheck"
                    )
                )
        # Wait (bounded) until each reader has its starting position, so events committed after
        # startup are never missed; if Redis is down the readers keep trying in the background.
        waits = [r.connected.wait() for r in self.readers] + [self.drafts.connected.wait()]
        if self.revocations is not None:
            waits.append(self.revocations.connected.wait())
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=ready_timeout_s)
        except TimeoutError:
            log.warning("realtime: Redis not reachable at startup; readers keep retrying")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval_s)
            self.hub.drop_stalled(self.config.stall_timeout_s)

    async def stop(self) -> None:
        """Close every socket with 1001 "going away", wait for them (bounded), stop the readers."""
        self.hub.begin_shutdown()
        deadline = asyncio.get_running_loop().time() + self.config.shutdown_timeout_s
        while self.hub.subscribers and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        # Bounded: a task stuck in its cancellation (e.g. a Redis client closing a blocked XREAD) must not
        # hang the shutdown.
        _, stuck = await asyncio.wait(self._tasks, timeout=self.config.shutdown_timeout_s)
        for task in stuck:
            log.warning("realtime: task %s did not stop in time", task.get_name())
        for task in self._tasks:
            if task.done() and not task.cancelled():
                with contextlib.suppress(Exception):
                    task.result()
        self._tasks = []
        if self.revocations is not None:
            with contextlib.suppress(Exception):
                await self.revocations.redis.aclose()
        await self.redis.aclose()
