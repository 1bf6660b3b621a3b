"""A killed agent attempt must not leave its draft on open thread pages (issue 11, item 7).

A crash leaves the draft's text in Redis (replayed to new subscribers for its TTL) and the execution
row `running`; the next attempt, or the worker's draft sweep, must end it with `draft_end` naming the
outcome, so open pages drop it and new subscribers no longer get it replayed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from backend.agents.jobs import end_orphaned_drafts
from engine.agents.registry import DraftStream
from engine.agents.runner import run_directive
from realtime.drafts import DRAFT_PUBSUB_CHANNEL, DraftNotice, draft_snapshots
from tests.realtime_helpers import connect, recv_until, start_node, subscribe
from tests.test_agents import _forum_with_agent, _last_signal, _newbie_posts, _router
from tests.test_agents_worker import start_worker, stop, wait_for

pytestmark = pytest.mark.slow


async def test_killed_attempt_draft_is_ended_by_the_retry(app, make_client, pool, servers, settings, redis, tmp_path):
    node = await start_node(servers, tmp_path / "web")
    worker = start_worker(servers, settings, FORUM_LLM_OFFLINE_DELAY_S="0.15")
    try:
        _, org, base = await _forum_with_agent(make_client)
        slug = org["slug"]
        _, thread = await _newbie_posts(make_client, org, base, body="hello there")
        channel = f"thread:{thread['id']}"
        async with await connect(node, slug) as ws:
            ack = await subscribe(ws, channel)
            seen = [m for m in ack["before"] if m["op"] == "draft"]
            if not seen:
                seen = [
                    m for m in await recv_until(ws, lambda m: m["op"] == "draft", within_s=30) if m["op"] == "draft"
                ]
            killed = seen[-1]["execution_id"]
            worker.kill()  # SIGKILL mid-stream: no cleanup at all
            worker.wait()
            # What a crash leaves: the draft still replayable, the execution still "running".
            assert [s.execution_id for s in await draft_snapshots(redis, slug, thread["id"])] == [killed]
            schema = f'"org_{slug}"'
            assert (
                await pool.fetchval(f"SELECT status FROM {schema}.execution WHERE id = $1::uuid", killed) == "running"
            )
            worker = start_worker(servers, settings)
            msgs = await recv_until(ws, lambda m: m["op"] == "draft_end" and m["execution_id"] == killed, within_s=60)
            end = msgs[-1]
            assert end["post_id"] is None and end["outcome"] == "abandoned", end
            await wait_for(lambda: pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'"))
        # A page opened now is not shown the dead attempt's draft.
        async with await connect(node, slug) as late:
            ack = await subscribe(late, channel)
            assert [m for m in ack["before"] if m["op"] == "draft" and m["execution_id"] == killed] == []
        assert killed not in [s.execution_id for s in await draft_snapshots(redis, slug, thread["id"])]
    finally:
        stop(worker)
        node.stop()


class ProcessDied(BaseException):
    """Stands for the process dying at this exact point (nothing after it runs, no except clause)."""


def _dying_at_draft_end(factory: Any) -> Any:
    """The runtime's real draft factory, except that the process dies instead of ending the draft."""

    class Dying:
        def __init__(self, inner: DraftStream) -> None:
            self.inner = inner

        async def delta(self, text: str) -> None:
            await self.inner.delta(text)

        async def end(self, result: Mapping[str, Any] | None, **_: Any) -> None:
            raise ProcessDied

    def drafts(tenant: str, view: Any, execution_id: str) -> Any:
        inner = factory(tenant, view, execution_id)
        return Dying(inner) if inner is not None else None

    return drafts


async def _notices(redis: Redis, into: list[DraftNotice], ready: asyncio.Event) -> None:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(DRAFT_PUBSUB_CHANNEL)
    ready.set()
    try:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message and message["type"] == "message":
                into.append(msgspec.json.decode(message["data"], type=DraftNotice))
    finally:
        await pubsub.aclose()


async def test_sweep_ends_the_draft_of_an_attempt_that_died_after_saving(app, make_client, pool, redis):
    _, org, base = await _forum_with_agent(make_client)
    slug = org["slug"]
    _, thread = await _newbie_posts(make_client, org, base, body="hello there")
    created = await _router(app).route(await _last_signal(pool, slug, "forum.post.created"))
    services = app.state.services
    runtime = dataclasses.replace(services.agents, drafts=_dying_at_draft_end(services.agents.drafts))
    with pytest.raises(ProcessDied):
        await run_directive(runtime, services.redis, services.streams, slug, created[0].id)
    schema = f'"org_{slug}"'
    execution = await pool.fetchrow(f"SELECT id, status FROM {schema}.execution")
    assert execution["status"] == "succeeded"
    post_id = await pool.fetchval(f"SELECT id FROM {schema}.post WHERE role = 'agent'")
    assert [s.execution_id for s in await draft_snapshots(redis, slug, thread["id"])] == [str(execution["id"])]
    # A retry has nothing to do (the directive succeeded), so only the sweep can end this draft.
    again = await run_directive(services.agents, services.redis, services.streams, slug, created[0].id)
    assert again.status == "skipped"
    assert len(await draft_snapshots(redis, slug, thread["id"])) == 1

    notices: list[DraftNotice] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_notices(redis, notices, ready))
    await ready.wait()
    try:
        assert await end_orphaned_drafts(redis, stale_after_s=60) >= 1
        await wait_for(lambda: _async(any(n.execution_id == str(execution["id"]) for n in notices)), within_s=5)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    end = next(n for n in notices if n.execution_id == str(execution["id"]))
    assert end.kind == "end" and end.post_id == str(post_id) and end.outcome == "saved"
    assert await draft_snapshots(redis, slug, thread["id"]) == []


async def test_sweep_leaves_a_live_attempt_draft_alone(app, make_client, pool, redis):
    _, org, base = await _forum_with_agent(make_client)
    slug = org["slug"]
    _, thread = await _newbie_posts(make_client, org, base, body="hello there")
    created = await _router(app).route(await _last_signal(pool, slug, "forum.post.created"))
    services = app.state.services
    gate = asyncio.Event()
    streaming = asyncio.Event()
    real = services.agents.drafts

    class Slow:
        def __init__(self, inner: DraftStream) -> None:
            self.inner = inner

        async def delta(self, text: str) -> None:
            await self.inner.delta(text)
            streaming.set()
            await gate.wait()

        async def end(self, result: Mapping[str, Any] | None, **kw: Any) -> None:
            await self.inner.end(result, **kw)

    runtime = dataclasses.replace(services.agents, drafts=lambda t, v, e: Slow(real(t, v, e)))
    run = asyncio.create_task(run_directive(runtime, services.redis, services.streams, slug, created[0].id))
    await asyncio.wait_for(streaming.wait(), 10)
    assert await end_orphaned_drafts(redis, stale_after_s=60) == 0
    assert len(await draft_snapshots(redis, slug, thread["id"])) == 1
    gate.set()
    assert (await run).status == "succeeded"
    assert await draft_snapshots(redis, slug, thread["id"]) == []


async def _async(value: Any) -> Any:
    return value
