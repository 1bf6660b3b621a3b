"""The agent engine in real worker processes: killed mid-execution, and with its Redis restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.embedded import EmbeddedRedis
from engine.agents.router import SignalRouter
from tests.factories import create_org, register_and_login
from tests.test_agents import _forum_with_agent, _last_signal, _newbie_posts

pytestmark = pytest.mark.slow
FORUM = str(Path(sys.executable).parent / "forum")


def start_worker(servers, settings, redis_url: str | None = None, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FORUM_DATABASE_URL": servers.database_url,
        "FORUM_REDIS_URL": redis_url or servers.redis_url,
        "FORUM_SECRET_KEY": settings.secret_key,
        "FORUM_LLM_PROVIDER": "offline",
        "FORUM_AGENT_JOB_HEARTBEAT_S": "2",
        "FORUM_AGENT_WORKER_SWEEP_S": "1",
        "FORUM_AGENT_CLAIM_IDLE_MS": "2000",
        "FORUM_AGENT_REQUEUE_INTERVAL_S": "1",
        "FORUM_AGENT_REQUEUE_AFTER_S": "1",
        "FORUM_SWEEPER_INTERVAL_S": "0.5",
        **extra,
    }
    proc = subprocess.Popen([FORUM, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if "worker ready" in line:
            # keep draining its output so a full pipe never blocks the worker
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("the worker did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for(predicate, within_s: float = 40.0, interval: float = 0.2):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError("timed out waiting")


async def test_worker_killed_mid_execution_posts_once(app, make_client, pool, servers, settings):
    worker = start_worker(servers, settings, FORUM_LLM_OFFLINE_DELAY_S="0.15")
    try:
        _, org, base = await _forum_with_agent(make_client)
        await _newbie_posts(make_client, org, base, body="hello there")
        schema = f'"org_{org["slug"]}"'
        await wait_for(lambda: pool.fetchval(f"SELECT count(*) FROM {schema}.execution WHERE status = 'running'"))
        await asyncio.sleep(0.5)  # well into the stream of tokens
        worker.kill()  # SIGKILL: no cleanup, the job stays active in SAQ, the execution row stays running
        worker.wait()
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 0
        worker = start_worker(servers, settings)
        status = await wait_for(
            lambda: pool.fetchval(f"SELECT status FROM {schema}.directive WHERE status IN ('succeeded', 'failed')")
        )
        assert status == "succeeded"
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
        attempts = await pool.fetch(f"SELECT attempt, status, error FROM {schema}.execution ORDER BY started_at")
        assert len(attempts) >= 2
        assert attempts[0]["status"] == "failed" and "abandoned" in attempts[0]["error"]
        assert attempts[-1]["status"] == "succeeded"
    finally:
        stop(worker)


async def test_redis_restart_loses_no_directive(app, make_client, pool, servers, settings, tmp_path):
    private = EmbeddedRedis(tmp_path / "redis", persist=False)
    redis_url = private.start()
    worker = start_worker(servers, settings, redis_url=redis_url)
    try:
        _, org, base = await _forum_with_agent(make_client)
        await _newbie_posts(make_client, org, base)
        schema = f'"org_{org["slug"]}"'
        # Route it as if the enqueue was lost with Redis: the directive exists only as a row.
        services = app.state.services
        runtime = services.agents
        saved_enqueue, runtime.enqueue = runtime.enqueue, None
        try:
            router = SignalRouter(redis=services.redis, streams=services.streams, runtime=runtime, consumer="t")
            created = await router.route(await _last_signal(pool, org["slug"], "forum.post.created"))
        finally:
            runtime.enqueue = saved_enqueue
        assert len(created) == 1
        private.stop()  # Redis goes away with everything it held…
        await asyncio.sleep(1.0)
        private = EmbeddedRedis(tmp_path / "redis", persist=False)
        assert private.start() == redis_url  # …and comes back empty on the same socket
        status = await wait_for(
            lambda: pool.fetchval(f"SELECT status FROM {schema}.directive WHERE status IN ('succeeded', 'failed')")
        )
        assert status == "succeeded"
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
    finally:
        stop(worker)
        private.stop()


async def test_worker_routes_live_signals(app, make_client, pool, servers, settings):
    """The whole path through real processes: HTTP write → outbox → stream → router → SAQ → post."""
    worker = start_worker(servers, settings)
    try:
        _, org, base = await _forum_with_agent(make_client)
        newbie, thread = await _newbie_posts(make_client, org, base, body="Hi! First time brewing a stout.")

        async def agent_post():
            r = await newbie.get(f"{base}/threads/{thread['id']}")
            return [p for p in r.json()["posts"] if p["role"] == "agent"]

        posts = await wait_for(agent_post)
        assert len(posts) == 1 and posts[0]["author_agent_id"] == "welcome-agent"
    finally:
        stop(worker)


async def test_factories_still_work_after_worker_tests(make_client):
    client = make_client()
    await register_and_login(client)
    await create_org(client)
