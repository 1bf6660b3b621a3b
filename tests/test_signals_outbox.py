"""Signals: written with the change, immutable, published to the Redis stream partition exactly once
(fast path after commit, sweeper after a crash or a Redis outage), nothing for a rolled-back write."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

import backend.app  # noqa: F401  (the composition root imports every signal module)
from backend.boundary import unit_of_work
from backend.console import operator_context
from backend.context import OrgRef, Principal
from backend.orgs.signals import MemberAdded
from engine import db
from engine.relay import StreamConfig, _xadd_once, publish_committed_signals, sweep_outbox
from engine.signals import (
    REGISTRY,
    Signal,
    SignalContext,
    SignalPayload,
    collect_signals,
    decode_payload,
    emit,
    signal_context,
)
from engine.tenancy import Tenant, tenant_scope
from tests.factories import create_org, register_and_login, unique


class Boom(Exception):
    pass


def ctx_for(actor_id: str | None = None) -> SignalContext:
    return SignalContext(
        actor_type="system" if actor_id is None else "user",
        actor_id=actor_id,
        source="job",
        correlation_id=str(uuid.uuid4()),
    )


def payload(tag: str | None = None) -> MemberAdded:
    return MemberAdded(user_id=str(uuid.uuid4()), username=tag or unique("p"), role="member", added_by="test")


def streams_of(app) -> StreamConfig:
    return app.state.services.streams


async def stream_count(redis: Redis, streams: StreamConfig, slug: str, signal_id: str) -> int:
    key = streams.stream_key(streams.partition_of(slug))
    entries = await redis.xrange(key)
    return sum(1 for _id, fields in entries if fields[b"id"] == signal_id.encode())


async def everywhere_count(redis: Redis, streams: StreamConfig, signal_id: str) -> int:
    total = 0
    for key in streams.all_stream_keys():
        total += sum(1 for _id, f in await redis.xrange(key) if f[b"id"] == signal_id.encode())
    return total


async def rows(pool, slug: str, signal_id: str) -> tuple[int, int]:
    schema = f'"org_{slug}"'
    sid = uuid.UUID(signal_id)
    return (
        await pool.fetchval(f"SELECT count(*) FROM {schema}.signal WHERE id = $1", sid),
        await pool.fetchval(f"SELECT count(*) FROM {schema}.signal_outbox WHERE signal_id = $1", sid),
    )


async def emit_and_commit(org: dict, *payloads: SignalPayload, dedupe_key: str | None = None) -> list[Signal]:
    """Commit signals the way the boundary does, but without the fast-path publish (a relay that died
    right after commit)."""
    with collect_signals() as pending:
        async with db.transaction():
            async with tenant_scope(db.current_connection(), Tenant(org_id=org["id"], slug=org["slug"])):
                with signal_context(ctx_for()):
                    for p in payloads:
                        await emit(p, dedupe_key=dedupe_key)
    return list(pending.items)


@pytest.fixture
async def org(client) -> dict[str, Any]:
    await register_and_login(client)
    return await create_org(client)


# --- org creation through HTTP -------------------------------------------------------------------------


async def test_org_creation_emits_signals_with_full_metadata_published_once(client, pool, redis, app):
    user = await register_and_login(client)
    correlation = str(uuid.uuid4())
    before = datetime.now(UTC)
    slug = unique("sig")
    r = await client.post(
        "/api/v1/orgs",
        json={"slug": slug, "name": "Signals", "visibility": "public"},
        headers={"x-request-id": correlation},
    )
    assert r.status_code == 201, r.text
    org = r.json()["org"]
    stored = await pool.fetch(f'SELECT * FROM "org_{slug}".signal ORDER BY id')
    assert [s["type"] for s in stored] == ["org.created", "org.member.added"]
    for s in stored:
        sid: uuid.UUID = s["id"]
        assert sid.version == 7
        ms = int.from_bytes(sid.bytes[:6], "big")
        assert abs(ms / 1000 - s["occurred_at"].timestamp()) < 1
        assert before - timedelta(seconds=1) <= s["occurred_at"] <= datetime.now(UTC)
        assert s["actor_type"] == "user" and s["actor_id"] == user["id"]
        assert s["source"] == "web"
        assert str(s["correlation_id"]) == correlation
        assert s["causation_id"] is None
        assert s["version"] == REGISTRY[s["type"]].version >= 1
    assert stored[0]["id"] < stored[1]["id"]
    created = json.loads(stored[0]["payload"])
    assert created == {
        "org_id": org["id"],
        "slug": slug,
        "name": "Signals",
        "visibility": "public",
        "created_by": user["id"],
    }
    added = json.loads(stored[1]["payload"])
    assert (added["user_id"], added["role"]) == (user["id"], "admin")

    streams = streams_of(app)
    assert await pool.fetchval(f'SELECT count(*) FROM "org_{slug}".signal_outbox') == 0
    key = streams.stream_key(streams.partition_of(slug))
    assert key == f"signals:{{{streams.partition_of(slug)}}}"
    for s in stored:
        assert await stream_count(redis, streams, slug, str(s["id"])) == 1
        assert await everywhere_count(redis, streams, str(s["id"])) == 1
    # The entry carries the whole envelope.
    entries = [f for _i, f in await redis.xrange(key) if f[b"id"] == str(stored[0]["id"]).encode()]
    envelope = msgspec.json.decode(entries[0][b"data"], type=Signal)
    assert envelope.tenant == slug and envelope.type == "org.created" and entries[0][b"tenant"] == slug.encode()
    # ... and when the fast path saw it commit: after the signal occurred, before now.
    assert envelope.occurred_at.timestamp() <= float(entries[0][b"committed"]) <= time.time()
    assert envelope.correlation_id == correlation and envelope.actor_id == user["id"]
    assert decode_payload(envelope).slug == slug
    # A sweep finds nothing left to publish for this org.
    await sweep_outbox(db.pool(), redis, streams, older_than_s=0)
    for s in stored:
        assert await everywhere_count(redis, streams, str(s["id"])) == 1


# --- immutability ---------------------------------------------------------------------------------------


async def test_signals_are_immutable(org, pool):
    schema = f'"org_{org["slug"]}"'
    first = await pool.fetchrow(f"SELECT * FROM {schema}.signal ORDER BY id LIMIT 1")
    statements = [
        (f"UPDATE {schema}.signal SET type = 'tampered' WHERE id = $1", [first["id"]]),
        (f"UPDATE {schema}.signal SET payload = '{{}}'::jsonb", []),
        (f"DELETE FROM {schema}.signal WHERE id = $1", [first["id"]]),
        (f"DELETE FROM {schema}.signal", []),
        (f"TRUNCATE {schema}.signal CASCADE", []),
    ]
    for sql, args in statements:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.PostgresError, match="immutable"):
                await conn.execute(sql, *args)
    assert await pool.fetchrow(f"SELECT * FROM {schema}.signal WHERE id = $1", first["id"]) == first
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.signal") == 2


# --- rollback --------------------------------------------------------------------------------------------


async def test_rolled_back_transaction_leaves_no_signal_and_publishes_nothing(org, pool, redis, app):
    streams = streams_of(app)
    emitted: list[Signal] = []
    with pytest.raises(Boom):
        with collect_signals() as pending:
            async with db.transaction():
                async with tenant_scope(db.current_connection(), Tenant(org_id=org["id"], slug=org["slug"])):
                    with signal_context(ctx_for()):
                        emitted.append(await emit(payload()))
                        assert await db.fetchval("SELECT count(*) FROM signal_outbox") == 1
                        raise Boom
    assert pending.items == emitted and emitted[0] is not None
    sid = emitted[0].id
    assert await rows(pool, org["slug"], sid) == (0, 0)
    await sweep_outbox(db.pool(), redis, streams, older_than_s=0)
    assert await everywhere_count(redis, streams, sid) == 0


async def test_unit_of_work_rollback_publishes_nothing(org, pool, redis, app):
    services = app.state.services
    streams = services.streams
    owner = await pool.fetchrow(
        "SELECT u.id, u.username FROM users u JOIN orgs o ON o.created_by = u.id WHERE o.id = $1",
        uuid.UUID(org["id"]),
    )
    principal = Principal(user_id=str(owner["id"]), username=owner["username"], via="session")
    ref = OrgRef(id=org["id"], slug=org["slug"], name=org["name"], visibility=org["visibility"])

    # Marked for rollback (what the middleware does for a 4xx/5xx response).
    ctx = operator_context(services, principal, ref, "admin")
    async with unit_of_work(ctx) as uow:
        rolled_back = await emit(payload())
        uow.mark_rollback()
    assert uow.published == 0
    # An exception inside the unit of work.
    ctx = operator_context(services, principal, ref, "admin")
    with pytest.raises(Boom):
        async with unit_of_work(ctx):
            raised = await emit(payload())
            raise Boom
    # And a committed one, as the control: published by the fast path, outbox emptied.
    ctx = operator_context(services, principal, ref, "admin")
    async with unit_of_work(ctx) as uow:
        committed = await emit(payload())
    assert uow.published == 1

    for gone in (rolled_back, raised):
        assert await rows(pool, org["slug"], gone.id) == (0, 0)
        assert await everywhere_count(redis, streams, gone.id) == 0
    assert await rows(pool, org["slug"], committed.id) == (1, 0)
    assert await stream_count(redis, streams, org["slug"], committed.id) == 1
    stored = await pool.fetchrow(f'SELECT * FROM "org_{org["slug"]}".signal WHERE id = $1', uuid.UUID(committed.id))
    assert stored["actor_id"] == str(owner["id"]) and stored["source"] == "web"


# --- crash recovery --------------------------------------------------------------------------------------


async def test_sweeper_publishes_what_the_relay_never_did_exactly_once(org, pool, redis, app):
    streams = streams_of(app)
    signals = await emit_and_commit(org, payload(), payload())
    assert len(signals) == 2
    for s in signals:
        assert await rows(pool, org["slug"], s.id) == (1, 1)
        assert await everywhere_count(redis, streams, s.id) == 0
    published = await sweep_outbox(db.pool(), redis, streams, older_than_s=0)
    assert published == 2
    for s in signals:
        assert await rows(pool, org["slug"], s.id) == (1, 0)
        assert await stream_count(redis, streams, org["slug"], s.id) == 1
    # In id order on the partition.
    key = streams.stream_key(streams.partition_of(org["slug"]))
    ids = [f[b"id"].decode() for _i, f in await redis.xrange(key) if f[b"tenant"] == org["slug"].encode()]
    assert ids[-2:] == [signals[0].id, signals[1].id]
    assert await sweep_outbox(db.pool(), redis, streams, older_than_s=0) == 0
    for s in signals:
        assert await everywhere_count(redis, streams, s.id) == 1


async def test_sweeper_leaves_fresh_rows_to_the_fast_path(org, pool, redis, app):
    streams = streams_of(app)
    [signal] = await emit_and_commit(org, payload())
    await sweep_outbox(db.pool(), redis, streams, older_than_s=3600)
    assert await rows(pool, org["slug"], signal.id) == (1, 1)
    assert await everywhere_count(redis, streams, signal.id) == 0
    await sweep_outbox(db.pool(), redis, streams, older_than_s=0)
    assert await everywhere_count(redis, streams, signal.id) == 1


async def test_relay_dying_after_xadd_is_not_duplicated_by_the_sweeper(org, pool, redis, app):
    streams = streams_of(app)
    [signal] = await emit_and_commit(org, payload())
    assert await _xadd_once(redis, streams, [signal]) == 1  # XADD happened, the DELETE never did
    assert await rows(pool, org["slug"], signal.id) == (1, 1)
    await sweep_outbox(db.pool(), redis, streams, older_than_s=0)
    assert await rows(pool, org["slug"], signal.id) == (1, 0)
    assert await everywhere_count(redis, streams, signal.id) == 1
    # The fast path retried late (e.g. a slow node) adds nothing either.
    assert await publish_committed_signals(db.pool(), redis, streams, [signal]) == 0
    assert await everywhere_count(redis, streams, signal.id) == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_redis_outage_leaves_the_outbox_row_for_the_sweeper(org, pool, redis, app, caplog):
    streams = streams_of(app)
    [signal] = await emit_and_commit(org, payload())
    down = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=1)
    try:
        with caplog.at_level(logging.WARNING, logger="forum.relay"):
            assert await publish_committed_signals(db.pool(), down, streams, [signal]) == 0
        assert any("left for the sweeper" in rec.getMessage() for rec in caplog.records)
        assert await rows(pool, org["slug"], signal.id) == (1, 1)
        # The sweeper against a dead Redis fails loudly and keeps the row.
        with pytest.raises(Exception):  # noqa: B017  (redis ConnectionError or OSError)
            await sweep_outbox(db.pool(), down, streams, older_than_s=0)
        assert await rows(pool, org["slug"], signal.id) == (1, 1)
    finally:
        await down.aclose()
    await sweep_outbox(db.pool(), redis, streams, older_than_s=0)
    assert await rows(pool, org["slug"], signal.id) == (1, 0)
    assert await stream_count(redis, streams, org["slug"], signal.id) == 1


async def test_dedupe_key_stores_one_signal(org, pool, redis, app):
    key = unique("dedupe")
    first = await emit_and_commit(org, payload(), dedupe_key=key)
    second = await emit_and_commit(org, payload(), dedupe_key=key)
    assert len(first) == 1 and second == []
    schema = f'"org_{org["slug"]}"'
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.signal WHERE dedupe_key = $1", key) == 1
    assert await rows(pool, org["slug"], first[0].id) == (1, 1)
    # Within one transaction too.
    other = unique("dedupe")
    both = await emit_and_commit(org, payload(), payload(), dedupe_key=other)
    assert len(both) == 1
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.signal WHERE dedupe_key = $1", other) == 1
    await sweep_outbox(db.pool(), redis, streams_of(app), older_than_s=0)
    assert await everywhere_count(redis, streams_of(app), first[0].id) == 1


async def test_unregistered_payload_and_missing_context_are_refused(org):
    class Stray(SignalPayload, frozen=True, kw_only=True):
        x: int

    async with db.transaction():
        async with tenant_scope(db.current_connection(), Tenant(org_id=org["id"], slug=org["slug"])):
            with signal_context(ctx_for()), pytest.raises(ValueError, match="unregistered"):
                await emit(Stray(x=1))
            with pytest.raises(RuntimeError, match="signal context"):
                await emit(payload())


# --- the registry schema test ----------------------------------------------------------------------------


def sample(t: msgspec.inspect.Type) -> Any:
    mi = msgspec.inspect
    if isinstance(t, mi.StrType):
        return "x" * max(t.min_length or 1, 1)
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.IntType):
        return max(t.ge or 1, 1)
    if isinstance(t, mi.FloatType):
        return 1.5
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.EnumType):
        return next(iter(t.cls)).value
    if isinstance(t, mi.UUIDType):
        return str(uuid.uuid4())
    if isinstance(t, mi.DateTimeType):
        return "2024-01-02T03:04:05+00:00"
    if isinstance(t, mi.DateType):
        return "2024-01-02"
    if isinstance(t, mi.UnionType):
        non_null = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return sample(non_null[0]) if non_null else None
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return [sample(t.item_type)]
    if isinstance(t, mi.DictType):
        return {"k": sample(t.value_type)}
    if isinstance(t, mi.StructType):
        return {f.encode_name: sample(f.type) for f in t.fields}
    if isinstance(t, mi.AnyType):
        return "any"
    raise AssertionError(f"no sample for {t!r}: extend the schema test")


def test_registry_is_not_empty():
    assert {"org.created", "org.member.added", "org.member.role_changed", "org.token.created"} <= set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registered_payload_schema(name):
    registered = REGISTRY[name]
    cls = registered.payload_type
    assert issubclass(cls, SignalPayload) and issubclass(cls, msgspec.Struct)
    assert cls.__struct_config__.frozen, f"{name}: payloads must be frozen"
    assert cls.signal_name == registered.name == name
    assert registered.version >= 1 and cls.signal_version == registered.version
    assert name == name.lower() and name.count(".") >= 1 and " " not in name
    info = msgspec.inspect.type_info(cls)
    instance = msgspec.convert(sample(info), cls)
    encoded = msgspec.json.encode(instance)
    assert msgspec.json.decode(encoded, type=cls) == instance
    if info.fields:
        with pytest.raises(AttributeError):
            setattr(instance, info.fields[0].name, None)
    # Through the envelope, as a consumer receives it.
    envelope = Signal(
        id=str(uuid.uuid4()),
        type=name,
        version=registered.version,
        tenant="t",
        actor_type="system",
        actor_id=None,
        source="job",
        correlation_id=str(uuid.uuid4()),
        causation_id=None,
        dedupe_key=None,
        occurred_at=datetime.now(UTC),
        payload=msgspec.to_builtins(instance),
    )
    received = msgspec.json.decode(msgspec.json.encode(envelope), type=Signal)
    assert decode_payload(received) == instance
