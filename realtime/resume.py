"""Resume after a dropped connection: replay one channel from its tenant's stream partition.

The client sends the id of the last signal it saw. Its stream entry is looked up by scanning the
partition from shortly before the signal's own timestamp (a UUIDv7 carries its creation time; the
entry was added after that, possibly much later by the outbox sweeper). Everything after that entry
that belongs to this tenant and channel is replayed in stream order. When the signal is not in the
retained stream (trimmed, unknown, or more than `max_entries` to scan), the answer is None: resync.
Replayed events carry no view (see `Hub.render`): what it showed may have been hidden since.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from realtime.hub import SKIP, ChannelsFor, ShapeEvent, StreamId, decode_signal, parse_stream_id, payload_only
from realtime.protocol import Event, encode

CLOCK_SLACK_MS = 60_000  # tolerated clock difference between web nodes and Redis
BATCH = 500


@dataclass(frozen=True, slots=True)
class Replay:
    messages: list[tuple[StreamId, str]]
    scanned: int


def signal_time_ms(signal_id: str) -> int | None:
    """The creation time of a UUIDv7 signal id, or None if it is not one."""
    try:
        value = uuid.UUID(signal_id)
    except (ValueError, AttributeError, TypeError):
        return None
    if value.version != 7:
        return None
    return value.int >> 80


async def replay_since(
    redis: Redis,
    stream_key: str,
    tenant: str,
    channel: str,
    since: str,
    channels_for: ChannelsFor,
    *,
    max_entries: int = 10_000,
    shape: ShapeEvent = payload_only,
) -> Replay | None:
    since_ms = signal_time_ms(since)
    if since_ms is None:
        return None
    since_bytes = str(uuid.UUID(since)).encode()
    tenant_bytes = tenant.encode()
    cursor = f"{max(0, since_ms - CLOCK_SLACK_MS)}-0"
    found = False
    scanned = 0
    messages: list[tuple[StreamId, str]] = []
    while True:
        entries: list[Any] = await redis.xrange(stream_key, min=cursor, max="+", count=BATCH) or []
        for raw_id, fields in entries:
            scanned += 1
            if not found:
                found = fields.get(b"id") == since_bytes
                continue
            if fields.get(b"tenant") != tenant_bytes:
                continue
            data = fields.get(b"data")
            if data is None:
                continue
            try:
                signal = decode_signal(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if channel in channels_for(signal):
                # Without the stream entry's view: it showed the post as it was then (it may be hidden
                # since); the page fetches what it still needs (coalesced).
                data = shape(signal, channel, None)
                if data is SKIP:
                    continue
                text = encode(Event(channel=channel, id=signal.id, type=signal.type, data=data))
                messages.append((parse_stream_id(raw_id), text))
        if scanned > max_entries:
            return None
        if len(entries) < BATCH:
            break
        last = entries[-1][0]
        cursor = "(" + (last.decode() if isinstance(last, bytes) else str(last))
    if not found:
        return None
    return Replay(messages=messages, scanned=scanned)
