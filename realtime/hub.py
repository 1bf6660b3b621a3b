"""The per-node hub: (tenant, channel) → local subscribers, each with a bounded send backlog.

Dispatch never awaits. A delivery to an idle socket is sent right away, on the dispatcher's stack:
the ASGI server's send completes without suspending while the socket is writable, so fan-out to N
sockets costs N frame writes and no task switches (one wake-up per socket per event was most of the
cost). Only a send that would block (the peer's TCP window is full) moves to a task of that socket,
which also drains what queues behind it in order; a socket whose backlog overflows is killed (close
4008 "too slow") instead of being waited for, so one slow client never delays the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from engine.signals import Signal
from realtime.protocol import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, Draft, DraftEnd, Event, encode

log = logging.getLogger("forum.realtime")

StreamId = tuple[int, int]
ChannelKey = tuple[str, str]  # (tenant slug, channel)
ChannelsFor = Callable[[Signal], list[str]]
# The parsed `view` field of a stream entry: its top-level keys, values left encoded (never re-parsed).
View = dict[str, msgspec.Raw]
# The `data` of the event sent on one channel, given the signal and its view (None: no view came with it),
# or SKIP: this event is not for that channel's subscribers.
ShapeEvent = Callable[[Signal, str, View | None], Any]
SKIP: Any = object()
SendText = Callable[[str], Awaitable[None]]  # the socket's send of one text message
# A delivery held while a subscription replays: (stream id | None, execution id | None, seq, text)
Pending = tuple[StreamId | None, str | None, int, str]

_signal_decoder = msgspec.json.Decoder(Signal)
_view_decoder = msgspec.json.Decoder(View)


def payload_only(signal: Signal, channel: str, view: View | None) -> Any:
    """The default event shape: the signal's payload as it is."""
    return signal.payload


def parse_stream_id(value: str | bytes) -> StreamId:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def decode_signal(data: bytes | str) -> Signal:
    return _signal_decoder.decode(data)


def decode_view(data: bytes | None) -> View | None:
    """The `view` field of a stream entry (empty or missing: None; undecodable: None, logged)."""
    if not data:
        return None
    try:
        return _view_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.warning("realtime: undecodable view in a stream entry")
        return None


@dataclass(frozen=True, slots=True)
class HubLimits:
    queue_size: int = 256  # messages waiting for one socket (its backlog)
    replay_buffer: int = 1024  # live messages held for one subscription while it replays
    subscriptions_per_socket: int = 50


@dataclass(slots=True)
class ChannelState:
    """One socket's subscription to one channel."""

    high_water: StreamId | None = None  # the last stream entry delivered: older ones are duplicates
    draft_seq: dict[str, int] = field(default_factory=dict)  # execution id → last delta seq delivered
    buffer: list[Pending] | None = None  # not None while replaying: live deliveries wait here

    def admit(self, stream_id: StreamId | None, execution_id: str | None, seq: int) -> bool:
        if stream_id is not None:
            if self.high_water is not None and stream_id <= self.high_water:
                return False
            self.high_water = stream_id
        elif execution_id is not None and seq > 0:
            if seq <= self.draft_seq.get(execution_id, 0):
                return False
            self.draft_seq[execution_id] = seq
        return True


async def _resume(step: Generator[Any, None, None], yielded: Any) -> None:
    """Finish an awaitable that was started by hand (`step.send(None)`) and suspended, yielding
    `yielded`: do for it what a Task does, wait for what it waits on, then resume it."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)  # a bare yield: it only asked for a turn of the loop
            else:
                # It yielded an asyncio future flagged "being awaited"; take the flag over as a Task does
                # (awaiting a future still flagged is an error).
                yielded._asyncio_future_blocking = False
                await yielded
        except BaseException as exc:  # the wait failed or we are cancelled: the awaitable sees it
            try:
                yielded = step.throw(exc)
            except StopIteration:
                return
            continue
        try:
            yielded = step.send(None)
        except StopIteration:
            return


class Subscriber:
    """One websocket on this node."""

    __slots__ = (
        "_blocked",
        "_drainer",
        "_gone",
        "_held",
        "_send",
        "backlog",
        "channels",
        "close_code",
        "close_reason",
        "hub",
        "ip",
        "killed",
        "peer_gone",
        "send_started",
        "tenant",
        "user_id",
    )

    def __init__(self, hub: Hub, tenant: str, user_id: str | None, ip: str) -> None:
        self.hub = hub
        self.tenant = tenant
        self.user_id = user_id
        self.ip = ip
        self.channels: dict[str, ChannelState] = {}
        self.backlog: deque[str] = deque()  # waiting behind a blocked send (or for `attach`)
        self.killed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""
        self.peer_gone = False  # a send failed: the connection is gone, no close frame to send
        self.send_started = 0.0  # monotonic time the blocked send began; 0 when none is blocked
        self._send: SendText | None = None
        self._held: list[str] | None = None  # pushed during a `Hub.batch`, sent when it releases us
        self._gone: tuple[type[BaseException], ...] = (OSError,)
        self._drainer: asyncio.Task[None] | None = None  # owns sending while a send is blocked
        self._blocked: Generator[Any, None, None] | None = None  # the half-run send it resumes

    def attach(self, send: SendText, gone: tuple[type[BaseException], ...] = (OSError,)) -> None:
        """Start sending through `send`, whose exceptions of the types in `gone` mean the peer has
        gone away; what was pushed before goes first."""
        self._send, self._gone = send, gone
        if self.backlog and self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(None, None))

    async def detach(self) -> None:
        """Stop sending: cancel a blocked send and drop the backlog; later pushes are ignored."""
        self._send = None
        self.killed.set()  # the session is over (its close code stays as it is)
        self.backlog.clear()
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.cancel()
            await asyncio.wait({drainer})
        blocked, self._blocked = self._blocked, None
        if blocked is not None:  # the drainer was cancelled before it took the send over
            blocked.close()

    def deliver(self, channel: str, stream_id: StreamId | None, execution_id: str | None, seq: int, text: str) -> None:
        state = self.channels.get(channel)
        if state is None:
            return
        if state.buffer is not None:
            if len(state.buffer) >= self.hub.limits.replay_buffer:
                self.kill(CLOSE_TOO_SLOW, "too slow: fell behind while catching up")
                return
            state.buffer.append((stream_id, execution_id, seq, text))
            return
        if state.admit(stream_id, execution_id, seq):
            self.push(text)

    def push(self, text: str) -> None:
        """Send `text` now if the socket is idle, else queue it behind the blocked send; never waits."""
        if self.killed.is_set():
            return
        if self._held is not None:  # waiting for its batch's release: keep the order
            self._held.append(text)
            return
        holding = self.hub._holding
        if holding is not None:  # inside a batch: hold it, so this socket's messages go out back to back
            self._held = [text]
            holding.append(self)
            return
        if self._send is None or self._drainer is not None:
            if len(self.backlog) >= self.hub.limits.queue_size:
                self.kill(CLOSE_TOO_SLOW, "too slow: send queue overflow")
                return
            self.backlog.append(text)
            return
        try:
            step = self._send(text).__await__()
            yielded = step.send(None)
        except StopIteration:
            return  # written: the common case
        except Exception as exc:
            self._send_failed(exc)
            return
        self.send_started = time.monotonic()
        self._blocked = step
        self._drainer = asyncio.create_task(self._drain(step, yielded))

    def _release(self) -> int:
        held, self._held = self._held, None
        for text in held or ():
            self.push(text)
        return len(held or ())

    async def put(self, text: str) -> None:
        """`push`, but wait (in the caller's task) while the backlog is half full rather than overflow
        it: for bulk sends that may wait, such as a replay."""
        while (drainer := self._drainer) is not None and len(self.backlog) >= self.hub.limits.queue_size // 2:
            await asyncio.wait({drainer})
        self.push(text)

    async def _drain(self, blocked: Generator[Any, None, None] | None, yielded: Any) -> None:
        try:
            if blocked is not None:
                self._blocked = None  # ours now: `_resume` finishes or cancels it
                await _resume(blocked, yielded)
            while self.backlog and self._send is not None:
                text = self.backlog.popleft()
                self.send_started = time.monotonic()
                await self._send(text)
        except Exception as exc:
            self._send_failed(exc)
        finally:
            self.send_started = 0.0
            if self._drainer is asyncio.current_task():
                self._drainer = None

    def _send_failed(self, exc: Exception) -> None:
        self.backlog.clear()
        if isinstance(exc, self._gone):
            self.peer_gone = True  # the client went away mid-send
            self.kill(1006, "connection lost")
        else:
            log.error("realtime: sending to a socket of %s failed", self.tenant, exc_info=exc)
            self.kill(1011, "internal error")

    def finish_replay(self, channel: str) -> None:
        """Deliver what arrived live during the replay, minus what the replay already sent."""
        state = self.channels.get(channel)
        if state is None or state.buffer is None:
            return
        held, state.buffer = state.buffer, None
        for stream_id, execution_id, seq, text in held:
            if state.admit(stream_id, execution_id, seq):
                self.push(text)

    def kill(self, code: int, reason: str) -> None:
        """Ask the socket's session to close with `code` (idempotent; never blocks)."""
        if self.killed.is_set():
            return
        self.close_code, self.close_reason = code, reason
        self.killed.set()
        if code == CLOSE_TOO_SLOW:
            self.hub.slow_closed += 1
            log.warning("realtime: closing a slow socket of %s (%s)", self.tenant, reason)


class Hub:
    def __init__(
        self, channels_for: ChannelsFor, limits: HubLimits | None = None, shape: ShapeEvent = payload_only
    ) -> None:
        self.channels_for = channels_for
        self.shape = shape
        self.limits = limits or HubLimits()
        self.subscribers: set[Subscriber] = set()
        self._by_key: dict[ChannelKey, set[Subscriber]] = {}
        self._tenant_subscriptions: dict[str, int] = {}
        self.closing = False
        self.delivered = 0
        self.rendered = 0  # event texts built: one per event and channel with subscribers, never per socket
        self.slow_closed = 0
        self._holding: list[Subscriber] | None = None  # subscribers with held messages, in a batch

    # --- membership --------------------------------------------------------------------------------

    def connect(self, tenant: str, user_id: str | None, ip: str) -> Subscriber:
        sub = Subscriber(self, tenant, user_id, ip)
        self.subscribers.add(sub)
        if self.closing:
            sub.kill(CLOSE_GOING_AWAY, "going away")
        return sub

    def disconnect(self, sub: Subscriber) -> None:
        for channel in list(sub.channels):
            self.unsubscribe(sub, channel)
        self.subscribers.discard(sub)

    def subscribe(self, sub: Subscriber, channel: str, *, replaying: bool) -> ChannelState:
        """Start delivering `channel` to `sub`; with `replaying`, live deliveries are held until
        `sub.finish_replay(channel)`."""
        state = sub.channels.get(channel)
        if state is None:
            state = ChannelState()
            sub.channels[channel] = state
            self._by_key.setdefault((sub.tenant, channel), set()).add(sub)
            self._tenant_subscriptions[sub.tenant] = self._tenant_subscriptions.get(sub.tenant, 0) + 1
        if replaying and state.buffer is None:
            state.buffer = []
        return state

    def unsubscribe(self, sub: Subscriber, channel: str) -> None:
        if sub.channels.pop(channel, None) is None:
            return
        key = (sub.tenant, channel)
        subs = self._by_key.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_key[key]
        remaining = self._tenant_subscriptions.get(sub.tenant, 1) - 1
        if remaining <= 0:
            self._tenant_subscriptions.pop(sub.tenant, None)
        else:
            self._tenant_subscriptions[sub.tenant] = remaining

    def has_subscribers(self, tenant: str) -> bool:
        return tenant in self._tenant_subscriptions

    # --- fan-out -----------------------------------------------------------------------------------

    @asynccontextmanager
    async def batch(self, release_chunk: int = 4096) -> AsyncIterator[None]:
        """Dispatch several entries in the body (which must not await), then send each socket its
        share back to back: its client reads them in one go, one wake-up instead of one per entry.
        The sends go out in chunks of about `release_chunk` messages with a turn of the loop between
        chunks; a socket still waiting for its turn keeps its later messages behind the held ones."""
        if self._holding is not None:  # nested: the outer batch releases
            yield
            return
        holding: list[Subscriber] = []
        self._holding = holding
        try:
            yield
        finally:
            self._holding = None
        i = sent = 0
        try:
            while i < len(holding):
                sent += holding[i]._release()
                i += 1
                if sent >= release_chunk:
                    sent = 0
                    await asyncio.sleep(0)
        finally:  # cancelled mid-release (shutdown): nobody may be left holding
            for sub in holding[i:]:
                sub._release()

    def dispatch_entry(self, stream_id: str | bytes, fields: dict[bytes, bytes]) -> None:
        """One stream entry (fields id, tenant, type, data) from a partition reader."""
        tenant_raw = fields.get(b"tenant")
        data = fields.get(b"data")
        if tenant_raw is None or data is None:
            return
        tenant = tenant_raw.decode()
        if tenant not in self._tenant_subscriptions:
            return  # nobody here listens to this org: skip decoding
        try:
            signal = decode_signal(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("realtime: undecodable stream entry %r", stream_id)
            return
        if signal.tenant != tenant:
            return
        self.dispatch_signal(parse_stream_id(stream_id), signal, fields.get(b"view"))

    def render(self, signal: Signal, channel: str, view: View | None) -> str | None:
        """The text of `signal`'s event on `channel`, built once and sent to every subscriber as is (None:
        not for this channel, see SKIP)."""
        data = self.shape(signal, channel, view)
        if data is SKIP:
            return None
        self.rendered += 1
        return encode(Event(channel=channel, id=signal.id, type=signal.type, data=data))

    def dispatch_signal(self, sid: StreamId, signal: Signal, raw_view: bytes | None = None) -> None:
        view: View | None = None
        parsed = False
        for channel in self.channels_for(signal):
            subs = self._by_key.get((signal.tenant, channel))
            if not subs:
                continue
            if not parsed:  # parse the view once per event, and only when someone here receives it
                view, parsed = decode_view(raw_view), True
            text = self.render(signal, channel, view)
            if text is None:
                continue
            for sub in tuple(subs):
                sub.deliver(channel, sid, None, 0, text)
            self.delivered += len(subs)

    def dispatch_draft(self, tenant: str, channel: str, message: Draft | DraftEnd) -> None:
        subs = self._by_key.get((tenant, channel))
        if not subs:
            return
        text = encode(message)
        if isinstance(message, Draft):
            execution_id: str | None = message.execution_id
            seq = message.seq
        else:
            execution_id, seq = None, 0
        for sub in tuple(subs):
            sub.deliver(channel, None, execution_id, seq, text)
        self.delivered += len(subs)

    # --- liveness and shutdown ---------------------------------------------------------------------

    def drop_stalled(self, stall_timeout_s: float) -> int:
        """Kill sockets whose current send has been blocked longer than `stall_timeout_s` (a dead
        peer with a full TCP window)."""
        now = time.monotonic()
        dropped = 0
        for sub in tuple(self.subscribers):
            if sub.send_started and now - sub.send_started > stall_timeout_s:
                sub.kill(CLOSE_TOO_SLOW, "too slow: send stalled")
                dropped += 1
        return dropped

    def begin_shutdown(self) -> None:
        """Close every socket with 1001 "going away" so clients reconnect to another node."""
        self.closing = True
        for sub in tuple(self.subscribers):
            sub.kill(CLOSE_GOING_AWAY, "going away")
