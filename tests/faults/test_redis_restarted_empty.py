"""Redis restarted EMPTY (no persistence) under a web node and a worker: streams and consumer groups are
recreated, the outbox written during the outage is republished, a directive whose job was lost runs
(once), and a client resuming from an id the new Redis never held is told to resync."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backend.embedded import EmbeddedRedis
from tests.realtime_helpers import (
    account,
    bearer_token,
    connect,
    events,
    make_category,
    make_org,
    recv_until,
    start_node,
    subscribe,
)
from tests.test_agents_worker import start_worker, stop, wait_for

pytestmark = pytest.mark.slow


async def test_redis_restarted_empty(app: Any, pool: Any, servers: Any, settings: Any, tmp_path: Path) -> None:
    own = EmbeddedRedis(tmp_path / "redis", persist=False)
    redis_url = own.start()
    node = await start_node(servers, tmp_path / "web", redis_url=redis_url)
    worker = await asyncio.to_thread(start_worker, servers, settings, redis_url=redis_url)
    try:
        admin = await account(node)
        org = await make_org(admin)
        slug = org["slug"]
        cat = await make_category(admin, slug)
        r = await admin.client.put(
            f"/api/v1/o/{slug}/agents/forum_welcome_agent",
            json={"enabled": True, "config": {"rules_url": "https://example.com/rules"}},
        )
        assert r.status_code == 200, r.text
        token = await bearer_token(admin, slug)  # the API keeps working without Redis sessions
        api = node.client()
        api.headers["Authorization"] = f"Bearer {token}"
        # A token socket: a cookie socket is closed (4401) once Redis comes back without its session (the
        # node re-checks its sockets after its revocation listener reconnects; see docs/hardening.md).
        live = await connect(node, slug, token=token)
        await subscribe(live, "org")
        r = await api.post(f"/api/v1/o/{slug}/categories", json={"name": "Before"})
        assert r.status_code == 201
        [before] = await events(live, 1)

        await asyncio.to_thread(own.stop)  # Redis goes away with its streams, groups, queue and sessions
        r = await api.post(f"/api/v1/o/{slug}/categories", json={"name": "During the outage"})
        assert r.status_code == 201, r.text  # committed; its signal waits in the outbox
        schema = f'"org_{slug}"'
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.signal_outbox") >= 1
        new = EmbeddedRedis(tmp_path / "redis", persist=False)
        assert await asyncio.to_thread(new.start) == redis_url  # back, empty, on the same socket
        own = new

        # The outbox is republished by the worker's sweeper: the live client gets the outage's write once.
        msgs = await recv_until(
            live, lambda m: m["op"] == "event" and m["data"].get("name") == "During the outage", within_s=40
        )
        outage_events = [m for m in msgs if m["op"] == "event" and m["data"].get("name") == "During the outage"]
        assert len(outage_events) == 1
        await wait_for(lambda: _outbox_empty(pool, schema), within_s=30)
        # Streams and the router's consumer groups exist again.
        from redis.asyncio import Redis

        async with Redis.from_url(redis_url) as client:
            keys = [k.decode() for k in await client.keys("signals:{*}")]
            assert any(":published:" not in k for k in keys), keys
            groups = [g for k in keys if ":published:" not in k for g in await client.xinfo_groups(k)]
            assert groups, "the router's consumer groups were not recreated"
        # After the restart: sessions were lost with Redis (sign in again); the newbie's first thread is
        # routed to the welcome agent, whose job goes through the new, empty queue: one answer.
        newbie = await account(node)
        r = await api.post(f"/api/v1/orgs/{slug}/members", json={"username": newbie.user["username"], "role": "member"})
        assert r.status_code == 201, r.text
        r = await newbie.client.post(
            f"/api/v1/o/{slug}/threads", json={"category": cat["slug"], "title": "First post", "body": "hi all"}
        )
        assert r.status_code == 201, r.text
        status = await wait_for(
            lambda: pool.fetchval(f"SELECT status FROM {schema}.directive WHERE status IN ('succeeded', 'failed')"),
            within_s=60,
        )
        assert status == "succeeded"
        await asyncio.sleep(1)
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
        # A client resuming from an id the new Redis never held is told to resync (then reloads).
        async with await connect(node, slug, token=token) as resumed:
            ack = await subscribe(resumed, "org", since=before["id"])
            ops = [m["op"] for m in ack["before"]] + [ack["op"]]
            assert "resync" in ops, ack
        await live.close()
    finally:
        await asyncio.to_thread(stop, worker)
        await asyncio.to_thread(node.stop)
        await asyncio.to_thread(own.stop)


async def _outbox_empty(pool: Any, schema: str) -> bool:
    return await pool.fetchval(f"SELECT count(*) FROM {schema}.signal_outbox") == 0
