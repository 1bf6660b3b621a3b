"""Two workers receiving the same directive at once (a duplicate delivery: two jobs for one directive):
one effect. The database holds one agent post; a thread subscriber receives one `forum.post.created`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.agents.queue import JOB_NAME, DirectiveQueue
from engine.agents.router import SignalRouter
from tests.realtime_helpers import Account, connect, nothing_more, recv, start_node, subscribe
from tests.test_agents import _forum_with_agent, _last_signal, _newbie_posts
from tests.test_agents_worker import start_worker, stop, wait_for

pytestmark = pytest.mark.slow


async def test_two_workers_run_the_same_directive_at_once_with_one_effect(
    app: Any, make_client: Any, pool: Any, servers: Any, settings: Any, tmp_path: Path
) -> None:
    node = await start_node(servers, tmp_path)
    _, org, base = await _forum_with_agent(make_client)
    slug = org["slug"]
    newbie, thread = await _newbie_posts(make_client, org, base, body="hello, two workers")
    # The directive exists only as a row (no job yet): routed as the router would, minus the enqueue.
    services = app.state.services
    runtime = services.agents
    saved_enqueue, runtime.enqueue = runtime.enqueue, None
    try:
        router = SignalRouter(redis=services.redis, streams=services.streams, runtime=runtime, consumer="t")
        [directive] = await router.route(await _last_signal(pool, slug, "forum.post.created"))
    finally:
        runtime.enqueue = saved_enqueue
    ws = await connect(node, slug, Account(newbie, {}))
    assert (await subscribe(ws, f"thread:{thread['id']}"))["op"] == "subscribed"
    slow = {
        "FORUM_LLM_OFFLINE_DELAY_S": "0.05",
        "FORUM_AGENT_REQUEUE_AFTER_S": "60",
        "FORUM_AGENT_JOB_HEARTBEAT_S": "6",
    }
    workers = [await asyncio.to_thread(start_worker, servers, settings, **slow) for _ in range(2)]
    queue = DirectiveQueue(servers.redis_url)
    try:
        await queue.connect()
        # Two jobs for one directive, delivered at the same moment (e.g. a requeue racing a retry).
        await asyncio.gather(
            *(
                queue.queue.enqueue(
                    JOB_NAME, key=f"{slug}:{directive.id}:dup{i}", tenant=slug, directive_id=directive.id, timeout=60
                )
                for i in range(2)
            )
        )
        schema = f'"org_{slug}"'
        status = await wait_for(
            lambda: pool.fetchval(
                f"SELECT status FROM {schema}.directive WHERE id = $1::uuid AND status IN ('succeeded', 'failed')",
                directive.id,
            )
        )
        assert status == "succeeded"
        await asyncio.sleep(3)  # let the other job finish whatever it does
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.signal WHERE type = 'forum.agent.responded'") == 1
        executions = await pool.fetch(
            f"SELECT status FROM {schema}.execution WHERE directive_id = $1::uuid", directive.id
        )
        assert [e["status"] for e in executions].count("succeeded") == 1, executions
        assert all(e["status"] != "running" for e in executions), executions
        # The subscriber saw the agent's post created once.
        got: list[dict[str, Any]] = []
        try:
            while True:
                msg = await recv(ws, 3)
                if msg["op"] == "event":
                    got.append(msg)
        except TimeoutError:
            pass
        created = [e for e in got if e["type"] == "forum.post.created" and e["data"].get("role") == "agent"]
        created = created or [e for e in got if e["type"] == "forum.post.created"]
        assert len(created) == 1, got
        assert len({e["id"] for e in got}) == len(got)  # no event delivered twice
        await nothing_more(ws, 0.5)
        await ws.close()
    finally:
        for worker in workers:
            await asyncio.to_thread(stop, worker)
        await queue.disconnect()
        await asyncio.to_thread(node.stop)
