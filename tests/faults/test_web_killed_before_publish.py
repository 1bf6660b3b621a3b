"""A web process killed with SIGKILL after its transaction committed and before its XADD: the worker's
sweeper publishes the signal, and each subscriber receives it exactly once, also when resuming."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.faults.redis_gate import RedisGate
from tests.realtime_helpers import (
    account,
    add_member,
    connect,
    events,
    make_category,
    make_org,
    make_thread,
    nothing_more,
    start_node,
    subscribe,
)
from tests.test_agents_worker import start_worker, stop

pytestmark = pytest.mark.slow


async def test_web_killed_between_commit_and_xadd(app: Any, pool: Any, servers: Any, settings: Any, tmp_path: Path):
    gate = await RedisGate(servers.redis_url).start()
    doomed = await start_node(servers, tmp_path / "doomed", redis_url=gate.url)
    survivor = await start_node(servers, tmp_path / "survivor")
    worker = await asyncio.to_thread(start_worker, servers, settings)
    try:
        admin = await account(survivor)
        writer = await account(survivor)
        org = await make_org(admin)
        slug = org["slug"]
        await add_member(admin, slug, writer)
        assert (await admin.client.put(f"/api/v1/o/{slug}/settings", json={"posting": {"enabled": False}})).is_success
        cat = await make_category(admin, slug)
        thread_id = (await make_thread(admin, slug, cat["slug"]))["thread"]["id"]
        channel = f"thread:{thread_id}"
        watchers = [await connect(survivor, slug, admin) for _ in range(2)]
        on_doomed = await connect(doomed, slug, admin)  # its node dies: it must resume elsewhere
        for ws in [*watchers, on_doomed]:
            assert (await subscribe(ws, channel))["op"] == "subscribed"
        first = await writer.client.post(f"/api/v1/o/{slug}/threads/{thread_id}/posts", json={"body": "before"})
        assert first.status_code == 201
        before = [(await events(ws, 1))[0] for ws in [*watchers, on_doomed]]
        assert {e["type"] for e in before} == {"forum.post.created"} and len({e["id"] for e in before}) == 1

        # The doomed node's relay script never reaches Redis: the write has committed, the XADD hangs.
        gate.hold(b"EVALSHA", b"EVAL", b"XADD")
        doomed_writer = doomed.client()
        doomed_writer.cookies.update(writer.client.cookies)
        request = asyncio.create_task(
            doomed_writer.post(
                f"/api/v1/o/{slug}/threads/{thread_id}/posts",
                json={"body": "committed, then the node died"},
                headers={"x-csrftoken": writer.client.cookies["csrftoken"]},
            )
        )
        assert await gate.wait_held(20)
        schema = f'"org_{slug}"'
        post = await pool.fetchrow(
            f"SELECT id FROM {schema}.post WHERE content_markdown = 'committed, then the node died'"
        )
        assert post is not None, "the write should have committed before the XADD"
        await asyncio.to_thread(doomed.stop, signal.SIGKILL)
        assert doomed.proc.returncode == -signal.SIGKILL
        with pytest.raises(Exception):  # noqa: B017 (the client sees its connection die: any transport error)
            await request

        # The worker's sweeper publishes what the dead node left in the outbox; each watcher gets it once.
        for ws in watchers:
            [event] = await events(ws, 1, within_s=30)
            assert event["type"] == "forum.post.created" and event["data"]["post_id"] == str(post["id"])
            await nothing_more(ws, 1.0)
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.signal_outbox") == 0
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE thread_id = $1::uuid", thread_id) == 3
        signal_id = await pool.fetchval(
            f"SELECT id FROM {schema}.signal WHERE type = 'forum.post.created' AND payload->>'post_id' = $1",
            str(post["id"]),
        )
        assert str(signal_id) == event["id"]

        # The client of the dead node resumes on the survivor from the last event it saw: that one, once.
        again = await connect(survivor, slug, admin)
        ack = await subscribe(again, channel, since=before[-1]["id"])
        assert ack["op"] == "subscribed", ack
        replayed = [m for m in ack["before"] if m["op"] == "event"]
        assert [e["id"] for e in replayed] == [event["id"]]
        await nothing_more(again, 1.0)
        # Sweeping again (as every worker keeps doing) publishes nothing twice.
        await asyncio.sleep(1.5)
        for ws in [*watchers, again]:
            await nothing_more(ws, 0.5)
        for ws in [*watchers, again, on_doomed]:
            await ws.close()
    finally:
        await asyncio.to_thread(stop, worker)
        await asyncio.to_thread(doomed.stop, signal.SIGKILL)
        await asyncio.to_thread(survivor.stop)
        await gate.close()
