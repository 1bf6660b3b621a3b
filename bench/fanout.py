"""Fan-out: commit→receive latency and deliveries/s of the websocket layer, against a minimal baseline.

For each N in --sockets and each scenario:
- busy: all N sockets subscribe to one thread; every write reaches all of them;
- quiet: N sockets each on its own thread; writes go round-robin, each reaches one socket.
Writes go through the signal path at a fixed rate (--rate per second for --duration seconds): a
transaction that emits `forum.post.created` into the tenant's outbox, commit, then the relay's
`publish_committed_signals`; t0 is taken right after COMMIT, so the latency is commit→receive. Then a
burst (--burst signals in one transaction) measures deliveries/s at saturation (busy only).
Baseline: `bench.fanout_baseline` (Litestar websockets fed by Redis PUBLISH, no auth/tenancy/
persistence); t0 just before PUBLISH. Same client code for both. Memory per idle connection: the
server's RSS delta over the N connected, subscribed sockets divided by N.

`python -m bench.fanout --sockets 100,1000` (add 5000 where the machine allows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from redis.asyncio import Redis

from backend.context import OrgRef
from backend.forum.signals import PostCreated
from bench.harness import (
    FORUM,
    ServerProcess,
    free_port,
    percentile,
    print_table,
    progress,
    running,
    servers,
    write_json,
)
from engine import db
from engine.ids import uuid7
from engine.relay import StreamConfig, publish_committed_signals
from engine.signals import SignalContext, collect_signals, emit, signal_context
from engine.tenancy import tenant_scope

CONNECT_CONCURRENCY = 100


@dataclass
class Run:
    impl: str
    sockets: int
    scenario: str
    latencies_ms: list[float] = field(default_factory=list)
    expected: int = 0
    received: int = 0
    rate_deliveries_per_s: float = 0.0
    burst_deliveries_per_s: float | None = None
    kb_per_connection: float = 0.0
    connect_s: float = 0.0
    cpu_us_per_delivery: float = 0.0  # server CPU (user+system) in the fixed-rate phase / deliveries

    def row(self) -> list[object]:
        lat = self.latencies_ms or [float("nan")]
        return [
            f"{self.sockets} {self.scenario}",
            self.impl,
            percentile(lat, 50),
            percentile(lat, 99),
            max(lat),
            self.rate_deliveries_per_s,
            self.burst_deliveries_per_s if self.burst_deliveries_per_s is not None else "-",
            self.kb_per_connection,
            self.cpu_us_per_delivery,
            f"{self.received}/{self.expected}",
        ]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Target:
    """How to reach one implementation and how to write to it."""

    def __init__(self, name: str, process: ServerProcess, ws_url: str) -> None:
        self.name = name
        self.process = process
        self.ws_url = ws_url

    async def write(self, thread_id: str, count: int = 1) -> tuple[float, list[str]]:
        raise NotImplementedError


class Ours(Target):
    def __init__(
        self,
        process: ServerProcess,
        ws_url: str,
        org: OrgRef,
        category_id: str,
        redis: Redis,
        streams: StreamConfig,
    ) -> None:
        super().__init__("ours", process, ws_url)
        self.org, self.category_id, self.redis, self.streams = org, category_id, redis, streams
        self.ctx = SignalContext(actor_type="system", actor_id=None, source="job", correlation_id=str(uuid.uuid4()))

    async def write(self, thread_id: str, count: int = 1) -> tuple[float, list[str]]:
        post_ids = [str(uuid7()) for _ in range(count)]
        with collect_signals() as pending, signal_context(self.ctx):
            async with db.transaction():
                async with tenant_scope(db.current_connection(), self.org.tenant):
                    for post_id in post_ids:
                        await emit(
                            PostCreated(
                                post_id=post_id,
                                thread_id=thread_id,
                                category_id=self.category_id,
                                author_user_id=None,
                                author_agent_id=None,
                                role="human",
                                reply_to_post_id=None,
                                is_first_post=False,
                                mentioned_user_ids=[],
                                mentioned_agents=[],
                            )
                        )
        t0 = time.perf_counter()  # committed
        await publish_committed_signals(db.pool(), self.redis, self.streams, pending.items)
        return t0, post_ids


class Baseline(Target):
    def __init__(self, process: ServerProcess, ws_url: str, redis: Redis) -> None:
        super().__init__("baseline", process, ws_url)
        self.redis = redis

    async def write(self, thread_id: str, count: int = 1) -> tuple[float, list[str]]:
        post_ids = [str(uuid7()) for _ in range(count)]
        t0 = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.publish(f"thread:{thread_id}", json.dumps({"post_id": post_id, "thread_id": thread_id}))
            await pipe.execute()
        return t0, post_ids


class Clients:
    def __init__(self) -> None:
        self.sockets: list[Any] = []
        self.inbox: list[list[tuple[float, str]]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.count = 0

    async def open(self, url: str, channels: list[str]) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(channel: str) -> None:
            async with gate:
                ws = await websockets.connect(
                    url, compression=None, ping_interval=None, max_queue=None, open_timeout=60
                )
                await ws.send(json.dumps({"op": "subscribe", "channel": channel}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("op") == "subscribed":
                        break
                    if msg.get("op") == "error":
                        raise RuntimeError(f"subscribe refused: {msg}")
                self.sockets.append(ws)

        await asyncio.gather(*(one(c) for c in channels))
        for ws in self.sockets:
            box: list[tuple[float, str]] = []
            self.inbox.append(box)
            self.tasks.append(asyncio.create_task(self._read(ws, box)))

    async def _read(self, ws: Any, box: list[tuple[float, str]]) -> None:
        try:
            async for message in ws:
                box.append((time.perf_counter(), message))
                self.count += 1
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, expected: int, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while self.count < expected and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(0.02)

    def reset(self) -> None:
        for box in self.inbox:
            box.clear()
        self.count = 0

    def latencies_ms(self, t0: dict[str, float]) -> tuple[list[float], float, float]:
        out: list[float] = []
        first, last = float("inf"), 0.0
        for box in self.inbox:
            for at, text in box:
                msg = json.loads(text)
                post_id = msg.get("data", {}).get("post_id")
                if post_id in t0:
                    out.append((at - t0[post_id]) * 1000)
                    first, last = min(first, t0[post_id]), max(last, at)
        return out, first, last

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def measure(
    target: Target, n: int, scenario: str, threads: list[str], rate: float, duration: float, burst: int
) -> Run:
    run = Run(target.name, n, scenario)
    assert target.process.proc is not None
    pid = target.process.proc.pid
    channels = [f"thread:{threads[0]}"] * n if scenario == "busy" else [f"thread:{t}" for t in threads[:n]]
    before = rss_kb(pid)
    clients = Clients()
    started = time.monotonic()
    await clients.open(target.ws_url, channels)
    run.connect_s = time.monotonic() - started
    await asyncio.sleep(1.0)
    run.kb_per_connection = max(0, rss_kb(pid) - before) / n
    # Warm-up write (connections, scripts, statement caches), not counted.
    await target.write(threads[0] if scenario == "busy" else threads[n - 1])
    await asyncio.sleep(0.5)
    clients.reset()
    # Fixed-rate phase.
    t0: dict[str, float] = {}
    cpu_before = cpu_s(pid)
    writes = max(1, int(rate * duration))
    begin = time.perf_counter()
    for i in range(writes):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        thread = threads[0] if scenario == "busy" else threads[i % n]
        at, ids = await target.write(thread)
        t0[ids[0]] = at
    run.expected = writes * n if scenario == "busy" else writes
    await clients.wait_for(run.expected, within_s=15)
    run.received = clients.count
    run.cpu_us_per_delivery = (cpu_s(pid) - cpu_before) * 1e6 / max(1, run.received)
    run.latencies_ms, first, last = clients.latencies_ms(t0)
    run.rate_deliveries_per_s = len(run.latencies_ms) / (last - first) if last > first else 0.0
    if scenario == "busy" and burst:
        clients.reset()
        at, ids = await target.write(threads[0], burst)
        await clients.wait_for(burst * n, within_s=30)
        _, _, last = clients.latencies_ms(dict.fromkeys(ids, at))
        run.burst_deliveries_per_s = clients.count / (last - at) if last > at else 0.0
    await clients.close()
    await asyncio.sleep(0.5)
    return run


async def _setup(base_url: str, database_url: str) -> tuple[OrgRef, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        name = "bench" + uuid.uuid4().hex[:8]
        r = await client.post(
            "/api/v1/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": "bench pass 123"},
        )
        r.raise_for_status()
        r = await client.post("/api/v1/auth/login", json={"login": name, "password": "bench pass 123"})
        r.raise_for_status()
        csrf = {"x-csrftoken": client.cookies["csrftoken"]}
        r = await client.post("/api/v1/orgs", json={"slug": name, "name": name, "visibility": "public"}, headers=csrf)
        r.raise_for_status()
        org = r.json()["org"]
        r = await client.post(f"/api/v1/o/{name}/categories", json={"name": "Bench"}, headers=csrf)
        r.raise_for_status()
        return OrgRef(id=org["id"], slug=name, name=name, visibility="public"), r.json()["category"]["id"]


async def _make_threads(org: OrgRef, category_id: str, count: int) -> list[str]:
    ids = [uuid7() for _ in range(count)]
    async with db.transaction():
        async with tenant_scope(db.current_connection(), org.tenant):
            await db.current_connection().executemany(
                "INSERT INTO thread (id, category_id, title, slug) VALUES ($1, $2, $3, $4)",
                [(i, uuid.UUID(category_id), f"bench {n}", f"bench-{i}") for n, i in enumerate(ids)],
            )
    return [str(i) for i in ids]


async def _run_all(
    srv: Any,
    ours_proc: ServerProcess,
    base_proc: ServerProcess,
    sizes: list[int],
    rate: float,
    duration: float,
    burst: int,
) -> list[Run]:
    await db.connect(srv.database_url, min_size=1, max_size=4)
    redis = Redis.from_url(srv.redis_url)
    try:
        org, category_id = await _setup(ours_proc.base_url, srv.database_url)
        threads = await _make_threads(org, category_id, max(sizes))
        streams = StreamConfig()
        ours = Ours(
            ours_proc,
            f"ws://127.0.0.1:{ours_proc.port}/api/v1/o/{org.slug}/ws",
            org,
            category_id,
            redis,
            streams,
        )
        base = Baseline(base_proc, f"ws://127.0.0.1:{base_proc.port}/ws", redis)
        runs: list[Run] = []
        for n in sizes:
            for scenario in ("busy", "quiet"):
                for target in (ours, base):
                    progress(f"{target.name}: {n} sockets, {scenario}")
                    run = await measure(target, n, scenario, threads, rate, duration, burst)
                    progress(f"  connected in {run.connect_s:.1f}s; received {run.received}/{run.expected}")
                    runs.append(run)
        return runs
    finally:
        await redis.aclose()
        await db.disconnect()


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in str(getattr(args, "sockets", None) or "100,1000").split(",") if s]
    quick = bool(getattr(args, "quick", False))
    rate = float(getattr(args, "rate", None) or 20)
    duration = float(getattr(args, "duration", None) or (2 if quick else 5))
    burst = int(getattr(args, "burst", None) or 50)
    if quick:
        sizes = [min(s, 100) for s in sizes[:1]]
    _raise_fd_limit()
    with servers("fanout") as srv:
        ours_port, base_port = free_port(), free_port()
        env = {
            "FORUM_DATABASE_URL": srv.database_url,
            "FORUM_REDIS_URL": srv.redis_url,
            "FORUM_SECRET_KEY": "bench",
            "FORUM_DATA_DIR": str(srv.workdir),
            "FORUM_FRONTEND_DIST": str(srv.workdir / "none"),
            "FORUM_LOG_LEVEL": "WARNING",
            "FORUM_WS_MAX_CONNECTIONS_PER_IP": "1000000",
            "FORUM_WS_MAX_CONNECTIONS_PER_USER": "1000000",
            "FORUM_WS_QUEUE_SIZE": "1024",
            "FORUM_DB_POOL_MAX": "10",
        }
        ours_proc = ServerProcess(
            "forum web",
            [str(FORUM), "web", "--port", str(ours_port)],
            env,
            ours_port,
            srv.workdir / "ours.log",
        )
        base_proc = ServerProcess(
            "baseline",
            [sys.executable, "-m", "bench.fanout_baseline", "--port", str(base_port)],
            {"BENCH_REDIS_URL": srv.redis_url},
            base_port,
            srv.workdir / "baseline.log",
        )
        with running(ours_proc, base_proc):
            runs = asyncio.run(_run_all(srv, ours_proc, base_proc, sizes, rate, duration, burst))
    header = [
        "sockets scenario",
        "impl",
        "p50 ms",
        "p99 ms",
        "max ms",
        "deliv/s (rate)",
        "deliv/s (burst)",
        "KB/conn",
        "CPU us/deliv",
        "received",
    ]
    rows: list[list[object]] = []
    ratios: list[list[object]] = []
    for ours, base in zip(runs[::2], runs[1::2], strict=True):
        rows += [ours.row(), base.row()]
        if ours.latencies_ms and base.latencies_ms:
            ratios.append(
                [
                    f"{ours.sockets} {ours.scenario}",
                    percentile(ours.latencies_ms, 50) / max(1e-9, percentile(base.latencies_ms, 50)),
                    percentile(ours.latencies_ms, 99) / max(1e-9, percentile(base.latencies_ms, 99)),
                    (ours.burst_deliveries_per_s or 0) / base.burst_deliveries_per_s
                    if base.burst_deliveries_per_s
                    else "-",
                    ours.kb_per_connection / base.kb_per_connection if base.kb_per_connection else "-",
                ]
            )
    print_table(f"fan-out, writes at {rate:g}/s for {duration:g}s; burst {burst} (commit→receive)", header, rows)
    print_table("ours / baseline", ["sockets scenario", "p50 x", "p99 x", "burst deliv/s x", "mem/conn x"], ratios)
    write_json(
        "fanout",
        {
            "rate": rate,
            "duration": duration,
            "burst": burst,
            "runs": [
                {
                    "impl": r.impl,
                    "sockets": r.sockets,
                    "scenario": r.scenario,
                    "p50_ms": percentile(r.latencies_ms, 50) if r.latencies_ms else None,
                    "p99_ms": percentile(r.latencies_ms, 99) if r.latencies_ms else None,
                    "max_ms": max(r.latencies_ms) if r.latencies_ms else None,
                    "rate_deliveries_per_s": r.rate_deliveries_per_s,
                    "burst_deliveries_per_s": r.burst_deliveries_per_s,
                    "kb_per_connection": r.kb_per_connection,
                    "cpu_us_per_delivery": r.cpu_us_per_delivery,
                    "received": r.received,
                    "expected": r.expected,
                }
                for r in runs
            ],
        },
        enabled=not getattr(args, "no_json", False),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sockets", default="100,1000", help="comma-separated socket counts (default 100,1000)")
    parser.add_argument("--rate", type=float, default=20, help="writes per second in the fixed-rate phase")
    parser.add_argument("--duration", type=float, default=5, help="seconds of the fixed-rate phase")
    parser.add_argument("--burst", type=int, default=50, help="signals in the burst (busy scenario)")
    parser.add_argument("--quick", action="store_true", help="100 sockets, 2 s: a smoke run")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    return parser


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(build_parser().parse_args())
