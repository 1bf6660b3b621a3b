"""One websocket session: limits, the op loop (subscribe/unsubscribe/ping) and resume. Sending is the
hub's `Subscriber` (attached to the socket's ASGI send here).

The composition root authenticates the socket and resolves its org first, then calls `serve_socket`
with a `SocketIdentity` and a `ChannelAuthorizer`; realtime never decides who may see what.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect
from redis.exceptions import RedisError

from realtime.drafts import draft_snapshots
from realtime.hub import Subscriber
from realtime.protocol import (
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_CONNECTIONS,
    Draft,
    Error,
    InvalidMessage,
    Ping,
    Pong,
    Resync,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    decode_client_op,
    encode,
    is_valid_channel_name,
)
from realtime.resume import replay_since

if TYPE_CHECKING:
    from realtime.runtime import Realtime

log = logging.getLogger("forum.realtime")


@dataclass(frozen=True, slots=True)
class SocketIdentity:
    """Who is on the socket, as the composition root established it."""

    tenant: str  # org slug
    user_id: str | None  # None: anonymous reader of a public org
    ip: str  # a keyed hash of the client address
    context: object = None  # the root's own auth context, handed back to the authorizer
    credential: str | None = None  # the root's handle on the credential used (re-checked on revocations)
    revocation_seq: int = 0  # `rt.sockets.seq` when authentication began: a later revocation re-checks it


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # "forbidden" | "not_found" | "invalid" | …
    detail: str


class ChannelAuthorizer(Protocol):
    async def authorize(self, identity: SocketIdentity, channel: str) -> Refusal | None:
        """None when `identity` may receive `channel`'s events; otherwise why not."""
        ...


class ConnectionLimiter:
    """Open sockets per user and per client address on this node."""

    def __init__(self, max_per_user: int, max_per_ip: int) -> None:
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self._users: dict[str, int] = {}
        self._ips: dict[str, int] = {}

    def acquire(self, user_id: str | None, ip: str) -> str | None:
        if user_id is not None and self._users.get(user_id, 0) >= self.max_per_user:
            return f"too many connections for this user (max {self.max_per_user})"
        if self._ips.get(ip, 0) >= self.max_per_ip:
            return f"too many connections from this address (max {self.max_per_ip})"
        if user_id is not None:
            self._users[user_id] = self._users.get(user_id, 0) + 1
        self._ips[ip] = self._ips.get(ip, 0) + 1
        return None

    def release(self, user_id: str | None, ip: str) -> None:
        for table, key in ((self._users, user_id), (self._ips, ip)):
            if key is None:
                continue
            left = table.get(key, 1) - 1
            if left <= 0:
                table.pop(key, None)
            else:
                table[key] = left


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str, timeout_s: float = 10) -> None:
    """Send the close frame; a stalled peer gets it only after reading what is already buffered, so
    wait (bounded; this socket's own task) before the server drops the connection outright."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(socket.close(code=code, reason=reason[:120]), timeout=timeout_s)


async def serve_socket(rt: Realtime, socket: WebSocket[Any, Any, Any], identity: SocketIdentity) -> None:
    await socket.accept()
    refused = rt.limiter.acquire(identity.user_id, identity.ip)
    if refused is not None:
        await _close(socket, CLOSE_TOO_MANY_CONNECTIONS, refused)
        return
    sub = rt.hub.connect(identity.tenant, identity.user_id, identity.ip)
    rt.sockets.add(sub, identity)
    if rt.revocations is not None:
        rt.revocations.recheck_if_raced(sub, identity, identity.revocation_seq)
    send = socket.send
    sub.attach(
        lambda text: send({"type": "websocket.send", "text": text, "bytes": None}),
        gone=(WebSocketDisconnect, OSError, RuntimeError),  # RuntimeError: a send after the close
    )
    session = _Session(rt, socket, sub, identity)
    tasks = [
        asyncio.create_task(session.receive_loop()),
        asyncio.create_task(sub.killed.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("realtime: session failed", exc_info=result)
                sub.kill(1011, "internal error")
        rt.sockets.discard(sub)
        rt.hub.disconnect(sub)
        await sub.detach()
        rt.limiter.release(identity.user_id, identity.ip)
    if not (session.peer_gone or sub.peer_gone):
        await _close(socket, sub.close_code, sub.close_reason)


class _Session:
    def __init__(self, rt: Realtime, socket: WebSocket[Any, Any, Any], sub: Subscriber, identity: SocketIdentity):
        self.rt = rt
        self.socket = socket
        self.sub = sub
        self.identity = identity
        self.peer_gone = False
        self._window_start = time.monotonic()
        self._window_ops = 0

    async def receive_loop(self) -> None:
        limit = self.rt.config.max_message_bytes
        try:
            while True:
                message = await self.socket.receive()
                if message["type"] == "websocket.disconnect":
                    self.peer_gone = True
                    return
                text: Any = message.get("text")
                raw: str | bytes = text if isinstance(text, str) else (message.get("bytes") or b"")  # type: ignore[assignment]
                if len(raw) > limit or (isinstance(raw, str) and len(raw.encode()) > limit):
                    self.sub.kill(CLOSE_TOO_BIG, f"message too big (max {limit} bytes)")
                    return
                if not self._within_rate():
                    self.sub.push(encode(Error(code="rate_limited", detail="too many messages; slow down")))
                    continue
                try:
                    op = decode_client_op(raw)
                except InvalidMessage as exc:
                    self.sub.push(encode(Error(code="invalid", detail=f"invalid message: {exc}")))
                    continue
                await self.handle(op)
        except WebSocketDisconnect:
            self.peer_gone = True

    def _within_rate(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_ops = now, 0
        self._window_ops += 1
        return self._window_ops <= self.rt.config.max_ops_per_s

    async def handle(self, op: Subscribe | Unsubscribe | Ping) -> None:
        if isinstance(op, Ping):
            self.sub.push(encode(Pong()))
        elif isinstance(op, Unsubscribe):
            self.rt.hub.unsubscribe(self.sub, op.channel)
            self.sub.push(encode(Unsubscribed(channel=op.channel)))
        else:
            await self.subscribe(op)

    def _error(self, code: str, detail: str, channel: str | None) -> None:
        self.sub.push(encode(Error(code=code, detail=detail, channel=channel)))

    async def subscribe(self, op: Subscribe) -> None:
        sub, hub, channel = self.sub, self.rt.hub, op.channel
        if not is_valid_channel_name(channel):
            self._error("invalid", "unknown channel name", None)
            return
        if channel not in sub.channels and len(sub.channels) >= hub.limits.subscriptions_per_socket:
            self._error(
                "too_many_subscriptions",
                f"at most {hub.limits.subscriptions_per_socket} subscriptions per socket",
                channel,
            )
            return
        revocation_seq = self.rt.sockets.seq
        try:
            refusal = await self.rt.authorizer.authorize(self.identity, channel)
        except Exception:
            log.exception("realtime: authorizing %s failed", channel)
            self._error("unavailable", "could not check this subscription; try again", channel)
            return
        if refusal is not None:
            self._error(refusal.code, refusal.detail, channel)
            return
        is_thread = channel.startswith("thread:")
        state = hub.subscribe(sub, channel, replaying=op.since is not None or is_thread)
        if self.rt.revocations is not None:  # a revocation that raced this authorization re-checks it
            self.rt.revocations.recheck_if_raced(sub, self.identity, revocation_seq)
        replayed = 0
        try:
            if op.since is not None:
                try:
                    replay = await replay_since(
                        self.rt.redis,
                        self.rt.stream_key_for(sub.tenant),
                        sub.tenant,
                        channel,
                        op.since,
                        hub.channels_for,
                        max_entries=self.rt.config.replay_max_entries,
                        shape=hub.shape,
                    )
                except (RedisError, OSError):
                    replay = None
                if replay is None:
                    sub.push(encode(Resync(channel=channel)))
                else:
                    for stream_id, text in replay.messages:
                        if state.admit(stream_id, None, 0):
                            await sub.put(text)  # backpressure: this socket's task only
                            replayed += 1
            if is_thread:
                with contextlib.suppress(RedisError, OSError):
                    thread_id = channel.partition(":")[2]
                    for snap in await draft_snapshots(self.rt.redis, sub.tenant, thread_id):
                        if state.admit(None, snap.execution_id, snap.seq):
                            sub.push(
                                encode(
                                    Draft(
                                        channel=channel,
                                        execution_id=snap.execution_id,
                                        seq=snap.seq,
                                        delta=snap.text,
                                        snapshot=True,
                                    )
                                )
                            )
            sub.push(encode(Subscribed(channel=channel, replayed=replayed)))
        finally:
            sub.finish_replay(channel)
