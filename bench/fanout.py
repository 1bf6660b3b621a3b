"""Fan-out: commit→receive latency and deliveries/s of the websocket layer, against a minimal baseline.

For each N in --sockets and each scenario:
- busy: all N sockets subscribe to one thread; every write reaches all of them (at most
  --max-busy-deliveries per second: the thread's write rate is min(--rate, that / N));
- quiet: N sockets each on its own thread; writes go round-robin, each reaches one socket.
Fixed-rate phase: replies through the HTTP API (POST /threads/{id}/posts with a bearer token), each
started on schedule; a write's t0 is the commit time the web node's relay wrote into the stream entry,
so the latency is commit→receive. Then a burst (--burst signals committed in one transaction through
emit → outbox → relay) measures deliveries/s at saturation (busy only). The rounds alternate ours and
the baseline; latencies are pooled over the rounds, rates are their median.
Baseline: `bench.fanout_baseline` (Litestar websockets fed by Redis PUBLISH, no auth/tenancy/
persistence); t0 just before PUBLISH. The clients are `bench.wsclient` in a process of their own (the
same for both). Memory per idle connection: a fresh server's RSS delta over max(N) subscribed sockets.

`python -m bench.fanout --sockets 100,1000,5000 --rounds 3`.
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
from redis.asyncio import Redis

from backend.context import OrgRef
from backend.forum.signals import PostCreated
from bench.harness import (
    FORUM,
    ServerProcess,
    free_port,
    median,
    percentile,
    print_table,
    progress,
    running,
    servers,
    write_json,
)
from bench.wsclient import ClientPool
from engine import db
from engine.ids import uuid7
from engine.relay import StreamConfig, publish_committed_signals
from engine.signals import SignalContext, collect_signals, emit, signal_context
from engine.tenancy import tenant_scope

DEFAULT_SIZES = "100,1000,5000"


@dataclass
class Run:
    impl: str
    sockets: int
    scenario: str
    rate: float = 0.0  # writes per second in the fixed-rate phase
    rounds: int = 1
    latencies_ms: list[float] = field(default_factory=list)
    expected: int = 0
    received: int = 0
    rate_deliveries_per_s: float = 0.0
    burst_deliveries_per_s: float | None = None
    connect_s: float = 0.0
    cpu_us_per_delivery: float = 0.0  # server CPU (user+system) in the fixed-rate phase / deliveries

    @classmethod
    def merge(cls, runs: list[Run]) -> Run:
        """Rounds of one case: latencies pooled, counts summed, rates and sizes their median."""
        first = runs[0]
        bursts = [r.burst_deliveries_per_s for r in runs if r.burst_deliveries_per_s is not None]
        return cls(
            impl=first.impl,
            sockets=first.sockets,
            scenario=first.scenario,
            rate=first.rate,
            rounds=len(runs),
            latencies_ms=[x for r in runs for x in r.latencies_ms],
            expected=sum(r.expected for r in runs),
            received=sum(r.received for r in runs),
            rate_deliveries_per_s=median([r.rate_deliveries_per_s for r in runs]),
            burst_deliveries_per_s=median(bursts) if bursts else None,
            connect_s=median([r.connect_s for r in runs]),
            cpu_us_per_delivery=median([r.cpu_us_per_delivery for r in runs]),
        )

    @property
    def case(self) -> str:
        return f"{self.sockets} {self.scenario} @{self.rate:g}/s"

    def row(self) -> list[object]:
        lat = self.latencies_ms or [float("nan")]
        return [
            self.case,
            self.impl,
            percentile(lat, 50),
            percentile(lat, 99),
            max(lat),
            self.rate_deliveries_per_s,
            self.burst_deliveries_per_s if self.burst_deliveries_per_s is not None else "-",
            self.cpu_us_per_delivery,
            self.sockets / self.connect_s if self.connect_s else "-",
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

    async def write(self, thread_id: str) -> tuple[str, float | None]:
        """One write at the fixed rate: its post id, and its t0 if known now."""
        raise NotImplementedError

    async def mark(self) -> None:
        """Called before the fixed-rate phase."""

    async def t0_of(self, written: list[tuple[str, float | None]]) -> dict[str, float]:
        return {post_id: t0 for post_id, t0 in written if t0 is not None}

    async def burst(self, thread_id: str, count: int) -> tuple[float, list[str]]:
        """`count` writes that become visible at once: (t0, post ids)."""
        raise NotImplementedError


class Ours(Target):
    """Fixed-rate writes are replies through the HTTP API; a write's t0 is the commit time the web
    node's relay wrote into the `forum.post.created` stream entry (`committed`). The burst is one
    transaction of `count` signals through the same emit → outbox → relay path, t0 right after its
    COMMIT."""

    def __init__(
        self,
        process: ServerProcess,
        ws_url: str,
        org: OrgRef,
        category_id: str,
        http: httpx.AsyncClient,
        redis: Redis,
        streams: StreamConfig,
    ) -> None:
        super().__init__("ours", process, ws_url)
        self.org, self.category_id, self.http, self.redis, self.streams = org, category_id, http, redis, streams
        self.ctx = SignalContext(actor_type="system", actor_id=None, source="job", correlation_id=str(uuid.uuid4()))
        self.n = 0
        self.since: bytes | str = "-"

    async def write(self, thread_id: str) -> tuple[str, float | None]:
        self.n += 1
        r = await self.http.post(
            f"/api/v1/o/{self.org.slug}/threads/{thread_id}/posts", json={"body": f"fan-out reply {self.n}"}
        )
        r.raise_for_status()
        return r.json()["post"]["id"], None

    async def t0_of(self, written: list[tuple[str, float | None]]) -> dict[str, float]:
        """Each write's commit time, as the relay recorded it in the stream entry (`committed`)."""
        ids = {post_id for post_id, _ in written}
        key = self.streams.stream_key(self.streams.partition_of(self.org.slug))
        t0: dict[str, float] = {}
        for _entry_id, fields in await self.redis.xrange(key, min=self.since):
            if fields.get(b"type") != b"forum.post.created" or not fields.get(b"committed"):
                continue
            post_id = json.loads(fields[b"data"])["payload"]["post_id"]
            if post_id in ids:
                t0[post_id] = float(fields[b"committed"])
        return t0

    async def mark(self) -> None:
        """Remember the stream's tail: `t0_of` reads from here on."""
        key = self.streams.stream_key(self.streams.partition_of(self.org.slug))
        newest = await self.redis.xrevrange(key, count=1)
        self.since = newest[0][0] if newest else "-"

    async def burst(self, thread_id: str, count: int) -> tuple[float, list[str]]:
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
        t0 = time.time()  # committed
        await publish_committed_signals(db.pool(), self.redis, self.streams, pending.items)
        return t0, post_ids


class Baseline(Target):
    """PUBLISH to Redis; t0 just before it."""

    def __init__(self, process: ServerProcess, ws_url: str, redis: Redis) -> None:
        super().__init__("baseline", process, ws_url)
        self.redis = redis

    async def write(self, thread_id: str) -> tuple[str, float | None]:
        t0, ids = await self.burst(thread_id, 1)
        return ids[0], t0

    async def burst(self, thread_id: str, count: int) -> tuple[float, list[str]]:
        post_ids = [str(uuid7()) for _ in range(count)]
        t0 = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in post_ids:
                pipe.publish(f"thread:{thread_id}", json.dumps({"post_id": post_id, "thread_id": thread_id}))
            await pipe.execute()
        return t0, post_ids


def latencies_ms(arrivals: list[tuple[float, bytes]], t0: dict[str, float]) -> tuple[list[float], float, float]:
    """Commit→receive of every arrival that carries one of the writes in `t0`, with the first write's
    commit time and the last arrival time."""
    out: list[float] = []
    first, last = float("inf"), 0.0
    for at, payload in arrivals:
        post_id = json.loads(payload).get("data", {}).get("post_id")
        if post_id in t0:
            out.append((at - t0[post_id]) * 1000)
            first, last = min(first, t0[post_id]), max(last, at)
    return out, first, last


async def measure(
    clients: ClientPool,
    target: Target,
    n: int,
    scenario: str,
    threads: list[str],
    rate: float,
    duration: float,
    burst: int,
) -> Run:
    run = Run(target.name, n, scenario, rate)
    assert target.process.proc is not None
    pid = target.process.proc.pid
    channels = [f"thread:{threads[0]}"] * n if scenario == "busy" else [f"thread:{t}" for t in threads[:n]]
    started = time.monotonic()
    await clients.open(target.ws_url, channels)
    run.connect_s = time.monotonic() - started
    await asyncio.sleep(1.0)
    # Warm-up write (connections, scripts, statement caches), not counted.
    await target.write(threads[0] if scenario == "busy" else threads[n - 1])
    await asyncio.sleep(0.5)
    await clients.reset()
    # Fixed-rate phase: each write starts on schedule, whether or not the previous one has answered.
    await target.mark()
    cpu_before = cpu_s(pid)
    writes = max(1, int(rate * duration))
    begin = time.perf_counter()
    pending: list[asyncio.Task[tuple[str, float | None]]] = []
    for i in range(writes):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        thread = threads[0] if scenario == "busy" else threads[i % n]
        pending.append(asyncio.create_task(target.write(thread)))
    written = await asyncio.gather(*pending)
    run.expected = writes * n if scenario == "busy" else writes
    run.received = await clients.wait_for(run.expected, within_s=15)
    run.cpu_us_per_delivery = (cpu_s(pid) - cpu_before) * 1e6 / max(1, run.received)
    run.latencies_ms, first, last = latencies_ms(await clients.take(), await target.t0_of(written))
    run.rate_deliveries_per_s = len(run.latencies_ms) / (last - first) if last > first else 0.0
    if scenario == "busy" and burst:
        at, ids = await target.burst(threads[0], burst)
        received = await clients.wait_for(burst * n, within_s=30)
        _, _, last = latencies_ms(await clients.take(), dict.fromkeys(ids, at))
        run.burst_deliveries_per_s = received / (last - at) if last > at else 0.0
    await clients.close()
    await asyncio.sleep(0.5)
    return run


async def memory_per_connection(clients: ClientPool, target: Target, n: int, threads: list[str]) -> float:
    """KB of server RSS per idle subscribed socket: N sockets, each on its own thread, opened on a
    server that has not served any socket yet (RSS does not shrink after sockets close, so later
    rounds would measure reused memory)."""
    assert target.process.proc is not None
    pid = target.process.proc.pid
    before = rss_kb(pid)
    await clients.open(target.ws_url, [f"thread:{t}" for t in threads[:n]])
    await asyncio.sleep(1.0)
    kb = max(0, rss_kb(pid) - before) / n
    await clients.close()
    await asyncio.sleep(0.5)
    return kb


async def _setup(base_url: str) -> tuple[OrgRef, str, str]:
    """A public org with posting limits off, a category and a member-level write token."""
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
        r = await client.put(f"/api/v1/o/{name}/settings", json={"posting": {"enabled": False}}, headers=csrf)
        r.raise_for_status()
        r = await client.post(f"/api/v1/o/{name}/categories", json={"name": "Bench"}, headers=csrf)
        r.raise_for_status()
        category_id = r.json()["category"]["id"]
        r = await client.post(f"/api/v1/orgs/{name}/tokens", json={"name": "bench", "scopes": ["write"]}, headers=csrf)
        r.raise_for_status()
        return OrgRef(id=org["id"], slug=name, name=name, visibility="public"), category_id, r.json()["token"]


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
    rounds: int,
    max_busy_deliveries: float,
    memory: dict[str, float],
) -> list[Run]:
    await db.connect(srv.database_url, min_size=1, max_size=4)
    redis = Redis.from_url(srv.redis_url)
    try:
        org, category_id, token = await _setup(ours_proc.base_url)
        threads = await _make_threads(org, category_id, max(sizes))
        streams = StreamConfig()
        http = httpx.AsyncClient(base_url=ours_proc.base_url, timeout=30, headers={"authorization": f"Bearer {token}"})
        ours = Ours(
            ours_proc,
            f"ws://127.0.0.1:{ours_proc.port}/api/v1/o/{org.slug}/ws",
            org,
            category_id,
            http,
            redis,
            streams,
        )
        base = Baseline(base_proc, f"ws://127.0.0.1:{base_proc.port}/ws", redis)
        runs: list[Run] = []
        clients = ClientPool()
        try:
            for target in (ours, base):
                progress(f"{target.name}: memory of {max(sizes)} idle sockets")
                memory[target.name] = await memory_per_connection(clients, target, max(sizes), threads)
            for n in sizes:
                for scenario in ("busy", "quiet"):
                    # One busy thread of N sockets gets at most `max_busy_deliveries` deliveries/s.
                    case_rate = min(rate, max_busy_deliveries / n) if scenario == "busy" else rate
                    done: dict[str, list[Run]] = {"ours": [], "baseline": []}
                    for r in range(rounds):
                        for target in (ours, base) if r % 2 == 0 else (base, ours):
                            progress(f"{target.name}: {n} sockets, {scenario}, round {r + 1}/{rounds}")
                            run = await measure(clients, target, n, scenario, threads, case_rate, duration, burst)
                            progress(f"  connected in {run.connect_s:.1f}s; received {run.received}/{run.expected}")
                            done[target.name].append(run)
                    runs += [Run.merge(done["ours"]), Run.merge(done["baseline"])]
        finally:
            await clients.exit()
            await http.aclose()
        return runs
    finally:
        await redis.aclose()
        await db.disconnect()


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in str(getattr(args, "sockets", None) or DEFAULT_SIZES).split(",") if s]
    quick = bool(getattr(args, "quick", False))
    rate = float(getattr(args, "rate", None) or 20)
    duration = float(getattr(args, "duration", None) or (2 if quick else 5))
    burst = int(getattr(args, "burst", None) or 50)
    rounds = int(getattr(args, "rounds", None) or (1 if quick else 3))
    max_busy = float(getattr(args, "max_busy_deliveries", None) or 20_000)
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
            memory: dict[str, float] = {}
            runs = asyncio.run(
                _run_all(srv, ours_proc, base_proc, sizes, rate, duration, burst, rounds, max_busy, memory)
            )
    header = [
        "sockets scenario",
        "impl",
        "p50 ms",
        "p99 ms",
        "max ms",
        "deliv/s (rate)",
        "deliv/s (burst)",
        "CPU us/deliv",
        "connects/s",
        "received",
    ]
    rows: list[list[object]] = []
    ratios: list[list[object]] = []
    goals: list[list[object]] = []
    for ours, base in zip(runs[::2], runs[1::2], strict=True):
        rows += [ours.row(), base.row()]
        if not (ours.latencies_ms and base.latencies_ms):
            continue
        p99_x = percentile(ours.latencies_ms, 99) / max(1e-9, percentile(base.latencies_ms, 99))
        rate_x = ours.rate_deliveries_per_s / max(1e-9, base.rate_deliveries_per_s)
        burst_x = (
            (ours.burst_deliveries_per_s or 0) / base.burst_deliveries_per_s if base.burst_deliveries_per_s else None
        )
        ratios.append(
            [
                ours.case,
                percentile(ours.latencies_ms, 50) / max(1e-9, percentile(base.latencies_ms, 50)),
                p99_x,
                rate_x,
                burst_x if burst_x is not None else "-",
            ]
        )
        goals.append([ours.case, "p99 within 2x baseline", "met" if p99_x <= 2 else "MISSED"])
        deliveries_x = min(rate_x, burst_x) if burst_x is not None else rate_x
        goals.append([ours.case, "deliveries/s >= 0.5x baseline", "met" if deliveries_x >= 0.5 else "MISSED"])
        if ours.sockets == 1000:
            p99 = percentile(ours.latencies_ms, 99)
            goals.append([ours.case, "p99 < 50 ms at 1,000 sockets", "met" if p99 < 50 else "MISSED"])
    print_table(
        f"fan-out, commit→receive: {rounds} alternating round(s) of {duration:g}s of writes per case"
        f" (busy threads: at most {max_busy:,.0f} deliveries/s); burst {burst} signals in one commit",
        header,
        rows,
    )
    print_table(
        "ours / baseline",
        ["case", "p50 x", "p99 x", "deliv/s (rate) x", "deliv/s (burst) x"],
        ratios,
    )
    print_table("goals (issue 4)", ["case", "goal", "result"], goals)
    print_table(
        f"server memory per idle subscribed socket ({max(sizes)} sockets, fresh process)",
        ["impl", "KB/conn", "x baseline"],
        [
            ["ours", memory["ours"], memory["ours"] / max(1e-9, memory["baseline"])],
            ["baseline", memory["baseline"], 1.0],
        ],
    )
    write_json(
        "fanout",
        {
            "rate": rate,
            "duration": duration,
            "burst": burst,
            "rounds": rounds,
            "max_busy_deliveries": max_busy,
            "kb_per_idle_connection": memory,
            "runs": [
                {
                    "impl": r.impl,
                    "writes_per_s": r.rate,
                    "sockets": r.sockets,
                    "scenario": r.scenario,
                    "p50_ms": percentile(r.latencies_ms, 50) if r.latencies_ms else None,
                    "p99_ms": percentile(r.latencies_ms, 99) if r.latencies_ms else None,
                    "max_ms": max(r.latencies_ms) if r.latencies_ms else None,
                    "rate_deliveries_per_s": r.rate_deliveries_per_s,
                    "burst_deliveries_per_s": r.burst_deliveries_per_s,
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
    parser.add_argument(
        "--sockets", default=DEFAULT_SIZES, help=f"comma-separated socket counts (default {DEFAULT_SIZES})"
    )
    parser.add_argument("--rate", type=float, default=20, help="writes per second in the fixed-rate phase")
    parser.add_argument(
        "--max-busy-deliveries",
        type=float,
        default=20_000,
        help="cap on a busy thread's deliveries/s: its write rate is min(rate, this / N) (default 20,000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (default 3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds of the fixed-rate phase")
    parser.add_argument("--burst", type=int, default=50, help="signals in the burst (busy scenario)")
    parser.add_argument("--quick", action="store_true", help="100 sockets, 2 s: a smoke run")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    return parser


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(build_parser().parse_args())
