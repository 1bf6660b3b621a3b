"""Agent path latency: signal → directive → execution start, with the offline provider.

Ours: `forum web` + `forum worker` as real processes. N newcomers each post their first thread at a
fixed rate; each post commits a `forum.post.created` signal, which the router turns into a welcome
directive, which SAQ hands to the runner. Latencies are read back from the rows (signal.occurred_at,
directive.created_at, the first execution's started_at; one clock, one machine).
Baseline, same run, same Redis and PostgreSQL: the bare mechanism with nothing of ours in it — XADD to a
stream, XREADGROUP, INSERT one row, SAQ enqueue, SAQ job start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from saq import Worker
from saq.queue.redis import RedisQueue

from bench.harness import (
    FORUM,
    Servers,
    forum_env,
    forum_web,
    percentile,
    print_table,
    progress,
    running,
    servers,
    write_json,
)

PASSWORD = "bench password 1234"


def run(args: argparse.Namespace) -> None:
    newcomers = 12 if args.quick else 30  # the welcome agent may act 30 times per org per hour (manifest)
    rate = 6.0  # first posts per second
    with servers("agents") as infra:
        result = asyncio.run(_bench(infra, newcomers, rate))
    write_json("agents", result, enabled=not args.no_json)


def _env(infra: Servers) -> dict[str, str]:
    return forum_env(
        infra,
        FORUM_LLM_PROVIDER="offline",
        FORUM_REGISTER_MAX_PER_IP="100000",
        FORUM_AGENT_MAX_DIRECTIVES_PER_HOUR="100000",
    )


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(FORUM), "worker"],
        env={**os.environ, **env, "FORUM_LOG_LEVEL": "INFO"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "worker ready" in log_path.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the worker did not start: see {log_path}")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within 20 s (a loaded machine can slow its shutdown)."""
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        progress("the worker did not stop within 20 s: killed")
        worker.kill()
        worker.wait(timeout=10)


async def _bench(infra: Servers, newcomers: int, rate: float) -> dict[str, Any]:
    env = _env(infra)
    web = forum_web(infra, env, "web.log")
    with running(web):
        progress("starting forum worker")
        worker = start_worker(env, infra.workdir / "worker.log")
        try:
            slug = await _setup(web.base_url, newcomers, rate)
            ours = await _collect(infra.database_url, slug, newcomers)
        finally:
            stop_worker(worker)
    progress("baseline: XADD → XREADGROUP → INSERT → SAQ enqueue → job start")
    baseline = await _baseline(infra.database_url, infra.redis_url, newcomers, rate)
    to_directive = ours["to_directive_ms"]
    to_start = ours["to_execution_start_ms"]
    rows = [
        [
            "ours: signal → directive",
            percentile(to_directive, 50),
            percentile(to_directive, 99),
            max(to_directive),
        ],
        ["ours: signal → execution start", percentile(to_start, 50), percentile(to_start, 99), max(to_start)],
        ["baseline: XADD → job start", percentile(baseline, 50), percentile(baseline, 99), max(baseline)],
        [
            "ours / baseline (execution start)",
            percentile(to_start, 50) / percentile(baseline, 50),
            percentile(to_start, 99) / percentile(baseline, 99),
            "",
        ],
    ]
    print_table(f"agent path: {newcomers} first posts at {rate:.0f}/s (ms)", ["path", "p50", "p99", "max"], rows)
    return {
        "newcomers": newcomers,
        "rate_per_s": rate,
        "ours": {k: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for k, v in ours.items()},
        "baseline": {"p50": percentile(baseline, 50), "p99": percentile(baseline, 99)},
    }


async def _setup(base_url: str, newcomers: int, rate: float) -> str:
    slug = "bench_" + secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as admin:
        await _register(admin, "admin_" + slug)
        csrf = {"x-csrftoken": admin.cookies["csrftoken"]}
        r = await admin.post("/api/v1/orgs", json={"slug": slug, "name": "Bench", "visibility": "public"}, headers=csrf)
        r.raise_for_status()
        base = f"/api/v1/o/{slug}"
        (await admin.post(f"{base}/categories", json={"name": "General"}, headers=csrf)).raise_for_status()
        # all newcomers post from this one address: the per-IP posting throttle would refuse them
        (await admin.put(f"{base}/settings", json={"posting": {"enabled": False}}, headers=csrf)).raise_for_status()
        (
            await admin.put(f"{base}/agents/forum_welcome_agent", json={"enabled": True, "config": {}}, headers=csrf)
        ).raise_for_status()
    progress(f"{newcomers} newcomers post their first thread at {rate:.0f}/s")
    clients = []
    for i in range(newcomers):
        client = httpx.AsyncClient(base_url=base_url, timeout=30)
        await _register(client, f"n{i}_{slug}")
        (
            await client.post(f"/api/v1/orgs/{slug}/join", headers={"x-csrftoken": client.cookies["csrftoken"]})
        ).raise_for_status()
        clients.append(client)
    started = time.monotonic()
    tasks = []
    for i, client in enumerate(clients):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        tasks.append(
            asyncio.create_task(
                client.post(
                    f"/api/v1/o/{slug}/threads",
                    headers={"x-csrftoken": client.cookies["csrftoken"]},
                    json={
                        "category": "general",
                        "title": f"First question number {i}",
                        "body": "hello everyone",
                    },
                )
            )
        )
    for response in await asyncio.gather(*tasks):
        response.raise_for_status()
    for client in clients:
        await client.aclose()
    return slug


async def _register(client: httpx.AsyncClient, username: str) -> None:
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@bench.invalid", "password": PASSWORD},
    )
    r.raise_for_status()
    (await client.post("/api/v1/auth/login", json={"login": username, "password": PASSWORD})).raise_for_status()


async def _collect(database_url: str, slug: str, expected: int) -> dict[str, list[float]]:
    conn = await asyncpg.connect(database_url)
    schema = f'"org_{slug}"'
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            started = await conn.fetchval(f"SELECT count(DISTINCT directive_id) FROM {schema}.execution")
            if started >= expected:
                break
            await asyncio.sleep(0.2)
        rows = await conn.fetch(
            f"SELECT extract(epoch FROM d.created_at - s.occurred_at) * 1000 AS to_directive,"
            f" extract(epoch FROM min(e.started_at) - s.occurred_at) * 1000 AS to_start"
            f" FROM {schema}.directive d JOIN {schema}.signal s ON s.id = d.signal_id"
            f" JOIN {schema}.execution e ON e.directive_id = d.id GROUP BY d.id, s.occurred_at"
        )
    finally:
        await conn.close()
    if len(rows) < expected:
        raise RuntimeError(f"only {len(rows)} of {expected} directives started: see the worker log")
    return {
        "to_directive_ms": [float(r["to_directive"]) for r in rows],
        "to_execution_start_ms": [float(r["to_start"]) for r in rows],
    }


async def _baseline(database_url: str, redis_url: str, n: int, rate: float) -> list[float]:
    redis = Redis.from_url(redis_url)
    stream, group = f"bench:baseline:{uuid.uuid4().hex[:6]}", "g"
    await redis.xgroup_create(stream, group, id="$", mkstream=True)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id uuid PRIMARY KEY, t0 double precision)")
    queue = RedisQueue(Redis.from_url(redis_url), name="bench-baseline-" + uuid.uuid4().hex[:6])
    await queue.connect()
    latencies: list[float] = []
    done = asyncio.Event()

    async def job(ctx: dict[str, Any], *, t0: float) -> None:
        latencies.append((time.time() - t0) * 1000)
        if len(latencies) >= n:
            done.set()

    worker = Worker(queue, functions=[("job", job)], concurrency=4)
    worker_task = asyncio.create_task(worker.start())

    async def consume() -> None:
        while not done.is_set():
            reply = await redis.xreadgroup(group, "c", {stream: ">"}, count=50, block=200)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    t0 = float(fields[b"t0"])
                    row_id = uuid.uuid4()
                    await pool.execute("INSERT INTO bench_baseline (id, t0) VALUES ($1, $2)", row_id, t0)
                    await queue.enqueue("job", key=str(row_id), t0=t0)
                    await redis.xack(stream, group, entry_id)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.5)  # the worker is ready before producers start (STACK_NOTES)
    started = time.monotonic()
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await redis.xadd(stream, {"t0": repr(time.time())})
    await asyncio.wait_for(done.wait(), timeout=60)
    consumer.cancel()
    await worker.stop()
    worker_task.cancel()
    await asyncio.gather(consumer, worker_task, return_exceptions=True)
    await pool.execute("DROP TABLE bench_baseline")
    await pool.close()
    await queue.disconnect()
    await redis.delete(stream)
    await redis.aclose()
    return latencies
