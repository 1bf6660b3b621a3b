"""Revocation reaches open sockets: re-authorize a user's sockets on this node when their access changes.

Two ways a change reaches every web node:
- committed tenant signals (a role changed, a member removed, a token revoked) arrive through the
  partition readers like every other signal; `Revocations.watch_entry` picks out the types the root's
  `SocketAuthority` names, without decoding the rest;
- changes that are not tenant signals (a logout ends a session) are published on one pub/sub channel
  (`publish_revocation`) that every node listens to. After that listener reconnects (notices may have
  been missed) every socket of a signed-in user on the node is re-checked.

Re-authorizing a socket asks the root's `SocketAuthority` whether its credential and org access still
hold (no: the socket is closed with the code it gives, 4401 or 4403), then re-runs the channel
authorizer for each channel it is subscribed to and drops those it lost (an `error` message names
each). A subscription or a connection whose authorization raced with a revocation is re-checked once it
is in place (`LiveSockets.revoked_since`), so an authorization read just before the change committed
cannot keep a channel. A re-check that fails (e.g. PostgreSQL unreachable) is retried a few
times, then the socket is closed with 1013 "try again later": access that cannot be re-checked is not
kept.

realtime never decides who may see what: the root's authority and authorizer do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.signals import Signal
from realtime.hub import Subscriber, decode_signal
from realtime.protocol import CLOSE_TRY_AGAIN_LATER, Error, encode

if TYPE_CHECKING:
    from realtime.runtime import Realtime
    from realtime.session import SocketIdentity

log = logging.getLogger("forum.realtime")

REVOCATION_PUBSUB_CHANNEL = "realtime:revocations"
_BACKOFF_START_S = 0.05
_BACKOFF_MAX_S = 2.0
_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # a socket whose re-check keeps failing is closed after these


class RevocationNotice(msgspec.Struct, frozen=True):
    """`user_id`'s access changed in org `tenant` (None: in every org, e.g. a session ended)."""

    user_id: str
    tenant: str | None = None
    reason: str = ""


_notice_decoder = msgspec.json.Decoder(RevocationNotice)


async def publish_revocation(redis: Redis, user_id: str, *, tenant: str | None = None, reason: str = "") -> None:
    """Tell every web node to re-authorize `user_id`'s sockets (for changes that are not tenant
    signals). Call it after the change is committed / in effect."""
    notice = RevocationNotice(user_id=user_id, tenant=tenant, reason=reason)
    await redis.publish(REVOCATION_PUBSUB_CHANNEL, msgspec.json.encode(notice))


class SocketAuthority(Protocol):
    """The composition root's side of re-authorization."""

    revocation_types: frozenset[str]  # signal types that may take access away

    def revocation_of(self, signal: Signal) -> RevocationNotice | None:
        """Whose access a committed signal of one of `revocation_types` changed."""
        ...

    async def recheck(self, identity: SocketIdentity) -> tuple[int, str] | None:
        """None while the socket's credential and org access hold; else (close code, reason)."""
        ...


class LiveSockets:
    """The sockets open on this node with their identities, and a short log of recent revocations."""

    def __init__(self, recent: int = 1024) -> None:
        self.identities: dict[Subscriber, SocketIdentity] = {}
        self.seq = 0  # revocations seen by this node
        self._recent: deque[tuple[int, str, str | None]] = deque(maxlen=recent)

    def add(self, sub: Subscriber, identity: SocketIdentity) -> None:
        self.identities[sub] = identity

    def discard(self, sub: Subscriber) -> None:
        self.identities.pop(sub, None)

    def note(self, notice: RevocationNotice) -> None:
        self.seq += 1
        self._recent.append((self.seq, notice.user_id, notice.tenant))

    def revoked_since(self, seq: int, user_id: str | None, tenant: str) -> bool:
        """Whether a revocation for `user_id` in `tenant` arrived after `seq` (or the log forgot)."""
        if user_id is None or seq >= self.seq:
            return False
        if not self._recent or self._recent[0][0] > seq + 1:
            return True  # older than the log: assume the worst
        return any(s > seq and u == user_id and t in (None, tenant) for s, u, t in self._recent)


class Revocations:
    """Re-authorizes this node's sockets on revocation notices, one notice at a time, off the readers'
    path (a reader only queues the notice)."""

    def __init__(self, rt: Realtime, authority: SocketAuthority, redis: Redis, queue_size: int = 10_000) -> None:
        self.rt = rt
        self.authority = authority
        self.redis = redis
        self.sockets = rt.sockets
        self._queue: asyncio.Queue[RevocationNotice | None] = asyncio.Queue(maxsize=queue_size)
        self.connected = asyncio.Event()
        self.rechecked = 0  # sockets re-authorized (for tests and logs)
        self._types = frozenset(t.encode() for t in authority.revocation_types)
        self._failures: dict[Subscriber, int] = {}  # sockets whose re-check failed, and how many times

    # --- notices in -----------------------------------------------------------------------------------

    def notify(self, notice: RevocationNotice | None) -> None:
        """Queue a notice (None: re-check every signed-in socket). Never blocks."""
        if notice is not None:
            self.sockets.note(notice)
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:  # a flood: one full re-check covers everything queued
            log.warning("realtime: revocation queue full; re-checking every socket")
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self._queue.get_nowait()
            self._queue.put_nowait(None)

    def watch_entry(self, fields: dict[bytes, bytes]) -> None:
        """A partition reader's stream entry: queue a notice if it is a revocation signal."""
        kind = fields.get(b"type")
        if kind is None or kind not in self._types:
            return
        data = fields.get(b"data")
        if data is None:
            return
        try:
            signal = decode_signal(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        notice = self.authority.revocation_of(signal)
        if notice is not None:
            self.notify(notice)

    # --- re-authorization -----------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            notice = await self._queue.get()
            try:
                await self.reauthorize(notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("realtime: re-authorization failed")

    async def reauthorize(self, notice: RevocationNotice | None) -> int:
        """Re-check the sockets `notice` concerns (every signed-in one for None); returns how many."""
        count = 0
        for sub, identity in tuple(self.sockets.identities.items()):
            if identity.user_id is None or sub.killed.is_set():
                continue
            if notice is not None and (
                identity.user_id != notice.user_id or notice.tenant not in (None, identity.tenant)
            ):
                continue
            try:
                await self.reauthorize_socket(sub, identity)
                self._failures.pop(sub, None)
            except Exception:  # e.g. PostgreSQL unreachable: retry this socket, then fail closed
                self._retry_later(sub, identity)
            count += 1
        return count

    def _retry_later(self, sub: Subscriber, identity: SocketIdentity) -> None:
        failures = self._failures.get(sub, 0) + 1
        if failures > len(_RETRY_DELAYS_S):
            self._failures.pop(sub, None)
            log.warning("realtime: could not re-authorize a socket of %s; closing it (1013)", identity.tenant)
            sub.kill(CLOSE_TRY_AGAIN_LATER, "could not re-check your access; reconnect")
            return
        self._failures[sub] = failures
        log.warning(
            "realtime: re-authorizing a socket of %s failed; retry %d", identity.tenant, failures, exc_info=True
        )
        notice = RevocationNotice(user_id=identity.user_id or "", tenant=identity.tenant, reason="retry")
        asyncio.get_running_loop().call_later(_RETRY_DELAYS_S[failures - 1], self._retry_if_open, sub, notice)

    def _retry_if_open(self, sub: Subscriber, notice: RevocationNotice) -> None:
        if sub in self.sockets.identities and not sub.killed.is_set():
            self.notify(notice)
        else:
            self._failures.pop(sub, None)

    async def reauthorize_socket(self, sub: Subscriber, identity: SocketIdentity) -> None:
        self.rechecked += 1
        closing = await self.authority.recheck(identity)
        if closing is not None:
            sub.kill(*closing)
            return
        forget = getattr(self.rt.authorizer, "forget", None)
        if callable(forget):  # an authorizer that caches answers must not answer from its cache here
            forget(identity)
        for channel in tuple(sub.channels):
            refusal = await self.rt.authorizer.authorize(identity, channel)
            if refusal is not None and channel in sub.channels:
                self.rt.hub.unsubscribe(sub, channel)
                sub.push(encode(Error(code=refusal.code, detail=f"access revoked: {refusal.detail}", channel=channel)))

    def recheck_if_raced(self, sub: Subscriber, identity: SocketIdentity, seq: int) -> None:
        """After a subscribe or connect authorized as of revocation `seq`: if a revocation for this
        user arrived meanwhile, re-check the socket now that it is registered."""
        if self.sockets.revoked_since(seq, identity.user_id, identity.tenant) and identity.user_id is not None:
            self.notify(RevocationNotice(user_id=identity.user_id, tenant=identity.tenant, reason="raced"))

    async def recheck_every(self, interval_s: float) -> None:
        """The backstop: re-check every signed-in socket now and then, for what sends no notice (a
        session reaching its TTL, a notice lost with a node's Redis connection)."""
        while True:
            await asyncio.sleep(interval_s)
            self.notify(None)

    # --- the pub/sub listener (notices that are not tenant signals) -----------------------------------

    async def listen(self) -> None:
        backoff = _BACKOFF_START_S
        first = True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(REVOCATION_PUBSUB_CHANNEL)
                self.connected.set()
                if not first:  # notices published while we were away are lost: re-check everyone
                    self.notify(None)
                first = False
                backoff = _BACKOFF_START_S
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        self.notify(_notice_decoder.decode(message["data"]))
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        log.warning("realtime: undecodable revocation notice")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # redis-py may report a cancellation as an error
                    raise asyncio.CancelledError from exc
                self.connected.clear()
                log.warning(
                    "realtime: revocation listener lost Redis (%s); retrying in %.2fs", type(exc).__name__, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
