"""Drafts: an agent's reply streamed token by token to the thread's subscribers before it is saved.

`publish_draft_delta` appends the delta to the draft's text in Redis (kept with a TTL, so a late
subscriber first receives the text so far), numbers it (seq 1, 2, …) and publishes it on one pub/sub
channel that every web node listens to. `publish_draft_end` announces the outcome (the saved post, a
failure, or an attempt abandoned by a dead worker) and forgets the draft. `active_drafts` lists the
drafts Redis still holds, so a sweep can end those whose attempt is gone. Drafts are ephemeral:
Postgres holds the post itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from engine.tenancy import validate_slug

DRAFT_PUBSUB_CHANNEL = "realtime:drafts"
DEFAULT_TTL_S = 3600

_DELTA_LUA = """
local seq = redis.call('INCR', KEYS[2])
redis.call('APPEND', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[4], cjson.encode({kind='delta', tenant=ARGV[5], thread_id=ARGV[6],
  execution_id=ARGV[3], seq=seq, delta=ARGV[1]}))
return seq
"""

_END_LUA = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({kind='end', tenant=ARGV[3], thread_id=ARGV[4],
  execution_id=ARGV[1], post_id=ARGV[5], outcome=ARGV[6]}))
return 1
"""


class DraftNotice(msgspec.Struct, frozen=True):
    """What travels on the pub/sub channel."""

    kind: str  # "delta" | "end"
    tenant: str
    thread_id: str
    execution_id: str
    seq: int = 0
    delta: str = ""
    post_id: str = ""
    outcome: str = ""  # on "end": "saved" | "failed" | "abandoned"


DRAFT_OUTCOMES = frozenset({"saved", "failed", "abandoned"})
_notice_decoder = msgspec.json.Decoder(DraftNotice)


def decode_notice(raw: bytes | str) -> DraftNotice:
    return _notice_decoder.decode(raw)


def _keys(tenant: str, thread_id: str, execution_id: str) -> list[str]:
    validate_slug(tenant)
    tag = "{draft:" + tenant + "}"  # one Redis Cluster slot per tenant
    return [
        f"{tag}:{thread_id}:{execution_id}:text",
        f"{tag}:{thread_id}:{execution_id}:seq",
        f"{tag}:{thread_id}:active",
    ]


def _index_key(tenant: str, thread_id: str) -> str:
    return _keys(tenant, thread_id, "_")[2]


async def publish_draft_delta(
    redis: Redis, tenant: str, thread_id: str, execution_id: str, delta: str, *, ttl_s: int = DEFAULT_TTL_S
) -> int:
    """Append `delta` to the execution's draft in `thread:<thread_id>`; return its seq (1, 2, …)."""
    script = redis.register_script(_DELTA_LUA)
    seq = await script(
        keys=_keys(tenant, thread_id, execution_id),
        args=[delta, ttl_s, execution_id, DRAFT_PUBSUB_CHANNEL, tenant, thread_id],
    )
    return int(seq)


async def publish_draft_end(
    redis: Redis,
    tenant: str,
    thread_id: str,
    execution_id: str,
    post_id: str | None,
    *,
    outcome: str | None = None,
) -> None:
    """The draft became post `post_id`, or ended without one (`outcome` "failed" or "abandoned";
    by default "saved" with a post, "failed" without). Subscribers get `draft_end`."""
    outcome = outcome or ("saved" if post_id else "failed")
    if outcome not in DRAFT_OUTCOMES:
        raise ValueError(f"unknown draft outcome {outcome!r}")
    script = redis.register_script(_END_LUA)
    await script(
        keys=_keys(tenant, thread_id, execution_id),
        args=[execution_id, DRAFT_PUBSUB_CHANNEL, tenant, thread_id, post_id or "", outcome],
    )


@dataclass(frozen=True, slots=True)
class DraftSnapshot:
    execution_id: str
    seq: int
    text: str


async def draft_snapshots(redis: Redis, tenant: str, thread_id: str) -> list[DraftSnapshot]:
    """The drafts being written in a thread right now, each with its text so far."""
    members = await redis.smembers(_index_key(tenant, thread_id))
    out: list[DraftSnapshot] = []
    for member in sorted(members):
        execution_id = member.decode() if isinstance(member, bytes) else str(member)
        text_key, seq_key, _ = _keys(tenant, thread_id, execution_id)
        text, seq = await redis.mget([text_key, seq_key])
        if seq is None:
            continue
        out.append(
            DraftSnapshot(
                execution_id=execution_id,
                seq=int(seq),
                text=(text or b"").decode() if isinstance(text, bytes | None) else str(text),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class ActiveDraft:
    tenant: str
    thread_id: str
    execution_id: str
    idle_s: float  # since its last delta (each delta renews the keys' TTL)


async def active_drafts(redis: Redis, *, ttl_s: int = DEFAULT_TTL_S, limit: int = 10_000) -> list[ActiveDraft]:
    """Every draft Redis still holds (at most `limit`), found by SCAN over the per-thread indexes;
    `ttl_s` is the TTL the drafts were written with."""
    out: list[ActiveDraft] = []
    async for raw in redis.scan_iter(match="{draft:*}:*:active", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        tag, _, rest = key.partition("}:")
        tenant = tag.removeprefix("{draft:")
        thread_id = rest.removesuffix(":active")
        for member in await redis.smembers(key):
            execution_id = member.decode() if isinstance(member, bytes) else str(member)
            left_ms = await redis.pttl(_keys(tenant, thread_id, execution_id)[1])
            idle_s = ttl_s - left_ms / 1000 if left_ms > 0 else float(ttl_s)
            out.append(ActiveDraft(tenant=tenant, thread_id=thread_id, execution_id=execution_id, idle_s=idle_s))
            if len(out) >= limit:
                return out
    return out
