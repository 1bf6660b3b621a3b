"""Real time across processes: two web nodes, a slow consumer, dead peers, Redis restarted mid-session,
graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from backend.embedded import EmbeddedRedis
from backend.settings import Settings
from engine import db
from engine.relay import StreamConfig, sweep_outbox
from engine.signals import SignalPayload, signal_type
from tests.realtime_helpers import (
    account,
    add_member,
    bearer_token,
    connect,
    emit_direct,
    events,
    make_category,
    make_org,
    make_thread,
    recv,
    start_node,
    subscribe,
)

pytestmark = pytest.mark.slow


@signal_type("forum.test.bulk")
class Bulk(SignalPayload, frozen=True, kw_only=True):
    thread_id: str
    n: int
    filler: str


async def test_write_on_node_a_reaches_subscriber_on_node_b_and_shutdown_says_going_away(
    app: object, servers: Any, tmp_path: Path
) -> None:
    node_a = await start_node(servers, tmp_path / "a")
    node_b = await start_node(servers, tmp_path / "b")
    try:
        admin = await account(node_a)
        org = await make_org(admin)
        cat = await make_category(admin, org["slug"])
        async with await connect(node_b, org["slug"]) as ws:
            await subscribe(ws, "org")
            await subscribe(ws, f"category:{cat['id']}")
            newcomer = await account(node_a)
            await add_member(admin, org["slug"], newcomer)
            created = await make_thread(admin, org["slug"], cat["slug"])
            got = await events(ws, 4)
            assert [e["type"] for e in got] == [
                "org.member.added",
                "forum.thread.created",
                "forum.thread.created",
                "forum.post.created",
            ]
            assert got[0]["data"]["user_id"] == newcomer.id
            assert {e["data"]["thread_id"] for e in got[1:]} == {created["thread"]["id"]}
            # Graceful shutdown of node B: its sockets are told "going away" (1001).
            node_b.stop()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await recv(ws, 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001, closed.value
    finally:
        node_a.stop()
        node_b.stop()


async def test_slow_consumer_is_closed_while_others_keep_receiving(
    app: object, servers: Any, tmp_path: Path, redis: Redis, settings: Settings
) -> None:
    node = await start_node(servers, tmp_path, ws_queue_size=32)
    streams = StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)
    try:
        admin = await account(node)
        org = await make_org(admin)
        cat = await make_category(admin, org["slug"])
        thread_id = (await make_thread(admin, org["slug"], cat["slug"]))["thread"]["id"]
        channel = f"thread:{thread_id}"
        raw = socket.create_connection(("127.0.0.1", node.port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow = await websockets.connect(node.ws_url(org["slug"]), sock=raw, max_queue=1, compression=None)
        fast = await connect(node, org["slug"], compression=None)
        await subscribe(slow, channel)
        await subscribe(fast, channel)
        total, filler = 600, "x" * 16_000
        received: list[int] = []
        gaps: list[float] = []

        async def read_fast() -> None:
            last = time.monotonic()
            while len(received) < total:
                msg = await recv(fast, 20)
                if msg["op"] == "event":
                    received.append(msg["data"]["n"])
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

        async def drain_slow() -> websockets.ConnectionClosed:
            try:
                while True:
                    await asyncio.wait_for(slow.recv(), 20)
            except websockets.ConnectionClosed as exc:
                return exc

        reader = asyncio.create_task(read_fast())
        await emit_direct(org, redis, streams, [Bulk(thread_id=thread_id, n=i, filler=filler) for i in range(300)])
        deadline = time.monotonic() + 15
        while "closing a slow socket" not in node.log():
            assert time.monotonic() < deadline, "the slow socket was not closed"
            await asyncio.sleep(0.1)
        # The slow client starts reading only now: what the server had buffered, then its close frame.
        slow_drain = asyncio.create_task(drain_slow())
        await emit_direct(
            org, redis, streams, [Bulk(thread_id=thread_id, n=i, filler=filler) for i in range(300, total)]
        )
        closed = await slow_drain
        await asyncio.wait_for(reader, 60)
        assert received == list(range(total))  # all of them, in order, while the slow one was dropped
        assert max(gaps) < 2.0
        assert closed.rcvd is not None and closed.rcvd.code == 4008, closed
        assert "too slow" in closed.rcvd.reason
        await fast.close()
    finally:
        node.stop()


async def test_dead_peer_is_dropped_by_heartbeats(app: object, servers: Any, tmp_path: Path) -> None:
    node = await start_node(
        servers, tmp_path, ws_ping_interval_s=0.5, ws_ping_timeout_s=0.5, ws_max_connections_per_user=1
    )
    try:
        user = await account(node)
        org = await make_org(user)
        # A peer that completes the handshake, then goes silent (never reads, never answers pings).
        dead = socket.create_connection(("127.0.0.1", node.port))
        dead.sendall(
            (
                f"GET /api/v1/o/{org['slug']}/ws HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nCookie: {user.cookie}\r\n\r\n"
            ).encode()
        )
        assert b" 101 " in dead.recv(4096)
        # While it lives, the user's one allowed connection is taken.
        async with await connect(node, org["slug"], user) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029
        deadline = time.monotonic() + 10
        while True:
            async with await connect(node, org["slug"], user) as ws:
                try:
                    await ws.send(json.dumps({"op": "ping"}))
                    assert (await recv(ws))["op"] == "pong"
                    break
                except websockets.ConnectionClosed:
                    if time.monotonic() > deadline:
                        raise
            await asyncio.sleep(0.3)
        dead.close()
    finally:
        node.stop()


async def test_redis_restart_during_a_session_loses_nothing_committed(
    app: object, servers: Any, tmp_path: Path
) -> None:
    own = EmbeddedRedis(tmp_path / "redis", persist=True)
    redis_url = own.start()
    node = await start_node(servers, tmp_path, redis_url=redis_url)
    try:
        admin = await account(node)
        org = await make_org(admin)
        token = await bearer_token(admin, org["slug"])
        api = node.client()
        api.headers["Authorization"] = f"Bearer {token}"
        people = [await account(node) for _ in range(4)]

        async def add(i: int) -> None:
            r = await api.post(
                f"/api/v1/orgs/{org['slug']}/members",
                json={"username": people[i].user["username"], "role": "member"},
            )
            assert r.status_code == 201, r.text

        live = await connect(node, org["slug"], admin)
        await subscribe(live, "org")
        dropped = await connect(node, org["slug"], admin)
        await subscribe(dropped, "org")
        await add(0)
        first = (await events(live, 1))[0]
        assert (await events(dropped, 1))[0]["id"] == first["id"]
        await dropped.close()

        own.stop()  # Redis goes away; a write commits anyway (its signal waits in the outbox)
        await add(1)
        own.start()  # back, with its stream (AOF)
        await add(2)  # the relay publishes this one right away
        async with Redis.from_url(redis_url) as client:
            assert await sweep_outbox(db.pool(), client, StreamConfig(), older_than_s=0) >= 1
        await add(3)
        got = await events(live, 3, within_s=20)
        assert [e["data"]["user_id"] for e in got] == [people[2].id, people[1].id, people[3].id] or sorted(
            e["data"]["user_id"] for e in got
        ) == sorted(p.id for p in people[1:])
        assert len({e["id"] for e in got}) == 3
        # The client that dropped during the outage resumes from its last id: the rest, once, in order.
        async with await connect(node, org["slug"], admin) as again:
            ack = await subscribe(again, "org", since=first["id"])
            assert ack["op"] == "subscribed", ack
            replayed = [m for m in ack["before"] if m["op"] == "event"]
            assert [e["id"] for e in replayed] == [e["id"] for e in got]
        await live.close()
    finally:
        node.stop()
        own.stop()
