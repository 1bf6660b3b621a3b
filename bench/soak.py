"""Soak: simulated users reading, posting, reacting and watching threads over websockets, for minutes,
against two `forum web` and two `forum worker` processes on loopback.

Each user signs in on one of the two web nodes, keeps a websocket open there watching one thread, and
loops: read a thread (most often), list a category, reply, react; with a random pause between actions.
Printed: requests and errors by status (429 counted apart), p99 per route, websocket delivery (a reply's
request start → its `forum.post.created` at every watcher of that thread, on both nodes), lost and
duplicated events (must be 0), and each process's memory (RSS) at the start and the end.

Default: 1,000 users for 300 s (`--users`, `--seconds`, `--think-s` to change: `--users 200 --seconds 60`
is a quick run). The baseline in the same run is the bare `GET /healthz` of the same nodes under the same
load (a route with no database work), next to the forum's routes."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.agents import start_worker, stop_worker
from bench.harness import (
    ServerProcess,
    forum_env,
    forum_web,
    percentile,
    print_table,
    progress,
    running,
    servers,
    write_json,
)

PASSWORD = "correct horse battery staple"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=1000, help="simulated users (default 1000)")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the soak (default 300)")
    parser.add_argument("--think-s", type=float, default=8.0, help="mean pause between a user's actions")
    parser.add_argument("--threads", type=int, default=0, help="threads to watch (default users/20, >= 4)")
    parser.add_argument("--no-json", action="store_true")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    # replies: post id -> (thread id, request start)
    replies: dict[str, tuple[str, float]] = field(default_factory=dict)
    delivery_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    ws_closed: int = 0


@dataclass
class Watcher:
    thread_id: str
    subscribed_at: float
    got: Counter[str] = field(default_factory=Counter)  # post id -> times received
    first_at: dict[str, float] = field(default_factory=dict)  # post id -> when it first arrived
    alive: bool = True


async def timed(stats: Stats, route: str, call: Any) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response: httpx.Response = await call
    except httpx.HTTPError as exc:
        stats.statuses[f"error:{type(exc).__name__}"] += 1
        return None
    finally:
        stats.requests += 1
    stats.latency[route].append((time.perf_counter() - started) * 1000)
    if response.status_code >= 400:
        stats.statuses[str(response.status_code)] += 1
    return response


async def register(base_url: str, name: str) -> httpx.AsyncClient:
    # keep-alive shorter than uvicorn's 5 s, so a pause never reuses a connection the server is closing
    limits = httpx.Limits(max_connections=2, keepalive_expiry=3.0)
    client = httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits)
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    r = await client.post("/api/v1/auth/register", json=body)
    if r.status_code != 201:
        raise RuntimeError(f"register {name}: {r.status_code} {r.text}")
    r = await client.post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})
    if r.status_code != 200:
        raise RuntimeError(f"login {name}: {r.status_code} {r.text}")
    client.headers["x-csrftoken"] = client.cookies["csrftoken"]
    return client


async def watch(url: str, cookie: str, watcher: Watcher, stats: Stats, stop: asyncio.Event) -> None:
    try:
        async with websockets.connect(url, additional_headers={"Cookie": cookie}, max_queue=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": f"thread:{watcher.thread_id}"}))
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                msg = json.loads(raw)
                if msg.get("op") == "subscribed":
                    watcher.subscribed_at = time.perf_counter()
                if msg.get("op") != "event" or msg.get("type") != "forum.post.created":
                    continue
                post_id = msg["data"].get("post_id")
                watcher.got[post_id] += 1
                watcher.first_at.setdefault(post_id, time.perf_counter())
                if watcher.got[post_id] > 1:
                    stats.duplicates += 1
    except (websockets.ConnectionClosed, OSError):
        watcher.alive = False
        stats.ws_closed += 1


async def user_loop(
    client: httpx.AsyncClient, org: str, threads: list[str], category: str, stats: Stats, args: Any, deadline: float
) -> None:
    base = f"/api/v1/o/{org}"
    rng = random.Random()
    await asyncio.sleep(rng.uniform(0, args.think_s))
    while time.perf_counter() < deadline:
        thread = rng.choice(threads)
        roll = rng.random()
        if roll < 0.55:
            await timed(stats, "GET /threads/{ref}", client.get(f"{base}/threads/{thread}"))
        elif roll < 0.70:
            await timed(stats, "GET /categories/{slug}/threads", client.get(f"{base}/categories/{category}/threads"))
        elif roll < 0.80:
            await timed(stats, "GET /healthz (baseline)", client.get("/healthz"))
        elif roll < 0.92:
            started = time.perf_counter()
            body = {"body": f"soak reply {rng.random():.8f}"}
            r = await timed(
                stats, "POST /threads/{ref}/posts", client.post(f"{base}/threads/{thread}/posts", json=body)
            )
            if r is not None and r.status_code == 201:
                stats.replies[r.json()["post"]["id"]] = (thread, started)
        else:
            r = await timed(stats, "GET /threads/{ref}", client.get(f"{base}/threads/{thread}"))
            posts = r.json().get("posts", []) if r is not None and r.status_code == 200 else []
            if posts:
                post_id = rng.choice(posts)["id"]
                await timed(
                    stats,
                    "POST /posts/{id}/reactions",
                    client.post(f"{base}/posts/{post_id}/reactions", json={"type": rng.choice(["like", "upvote"])}),
                )
        await asyncio.sleep(min(rng.expovariate(1 / args.think_s), max(0.0, deadline - time.perf_counter())))


async def soak(webs: list[ServerProcess], workers: list[Any], args: Any) -> dict[str, Any]:
    stats = Stats()
    admin = await register(webs[0].base_url, "soakadmin")
    r = await admin.post("/api/v1/orgs", json={"slug": "soak", "name": "Soak", "visibility": "public"})
    assert r.status_code == 201, r.text
    await admin.put("/api/v1/o/soak/settings", json={"posting": {"enabled": False}})
    r = await admin.post("/api/v1/o/soak/categories", json={"name": "General", "slug": "general"})
    assert r.status_code == 201, r.text
    n_threads = args.threads or max(4, args.users // 20)
    threads = []
    for i in range(n_threads):
        r = await admin.post(
            "/api/v1/o/soak/threads", json={"category": "general", "title": f"Soak thread {i}", "body": "watch me"}
        )
        threads.append(r.json()["thread"]["id"])
    progress(f"signing in {args.users} users on {len(webs)} web nodes")
    clients: list[httpx.AsyncClient] = []
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> httpx.AsyncClient:
        async with sem:
            client = await register(webs[i % len(webs)].base_url, f"soak{i}")
            await client.post("/api/v1/orgs/soak/join")
            return client

    clients = list(await asyncio.gather(*(one(i) for i in range(args.users))))
    stop = asyncio.Event()
    watchers = [Watcher(thread_id=threads[i % len(threads)], subscribed_at=float("inf")) for i in range(args.users)]
    progress("opening one websocket per user")
    watch_tasks = [
        asyncio.create_task(
            watch(
                f"ws://127.0.0.1:{webs[i % len(webs)].port}/api/v1/o/soak/ws",
                "; ".join(f"{k}={v}" for k, v in clients[i].cookies.items()),
                watchers[i],
                stats,
                stop,
            )
        )
        for i in range(args.users)
    ]
    deadline_subscribed = time.perf_counter() + 60
    while any(w.subscribed_at == float("inf") and w.alive for w in watchers):
        if time.perf_counter() > deadline_subscribed:
            break
        await asyncio.sleep(0.2)
    pids = {f"web {i + 1}": w.proc.pid for i, w in enumerate(webs) if w.proc} | {
        f"worker {i + 1}": p.pid for i, p in enumerate(workers)
    }
    rss_start = {name: rss_kib(pid) for name, pid in pids.items()}
    progress(f"soaking for {args.seconds:.0f}s")
    deadline = time.perf_counter() + args.seconds
    await asyncio.gather(
        *(user_loop(c, "soak", threads, "general", stats, args, deadline) for c in clients), return_exceptions=False
    )
    await asyncio.sleep(5)  # deliveries in flight
    rss_end = {name: rss_kib(pid) for name, pid in pids.items()}
    stop.set()
    await asyncio.gather(*watch_tasks, return_exceptions=True)
    for client in [admin, *clients]:
        await client.aclose()
    lost = 0
    expected = 0
    for w in watchers:
        if not w.alive:
            continue
        for post_id, (thread, started) in stats.replies.items():
            if thread == w.thread_id and started > w.subscribed_at:
                expected += 1
                if w.got[post_id] == 0:
                    lost += 1
                else:
                    stats.delivery_ms.append((w.first_at[post_id] - started) * 1000)
    return {"stats": stats, "rss_start": rss_start, "rss_end": rss_end, "expected": expected, "lost": lost}


def run(args: argparse.Namespace) -> None:
    users = getattr(args, "users", None) or (50 if args.quick else 1000)
    seconds = getattr(args, "seconds", None) or (15.0 if args.quick else 300.0)
    ns = argparse.Namespace(
        users=users,
        seconds=seconds,
        think_s=getattr(args, "think_s", None) or 8.0,
        threads=getattr(args, "threads", None) or 0,
    )
    with servers("soak") as infra:
        env = forum_env(
            infra,
            FORUM_REGISTER_MAX_PER_IP="1000000",
            FORUM_WS_MAX_CONNECTIONS_PER_IP="100000",
            FORUM_DB_POOL_MAX="10",
        )
        webs = [forum_web(infra, env, f"web{i}.log") for i in range(2)]
        with running(*webs):
            workers = [start_worker(env, infra.workdir / f"worker{i}.log") for i in range(2)]
            try:
                result = asyncio.run(soak(webs, workers, ns))
            finally:
                for worker in workers:
                    stop_worker(worker)
    stats: Stats = result["stats"]
    rows = []
    for route, values in sorted(stats.latency.items()):
        rows.append([route, len(values), percentile(values, 50), percentile(values, 99)])
    print_table(
        f"soak: {ns.users} users, {ns.seconds:.0f}s, 2 web + 2 worker processes",
        ["route", "n", "p50 ms", "p99 ms"],
        rows,
    )
    errors = {k: v for k, v in stats.statuses.items() if k != "429"}
    print(f"  requests: {stats.requests}; errors by status: {dict(sorted(errors.items())) or 'none'}")
    print(f"  429 (rate limited, apart): {stats.statuses.get('429', 0)}")
    d = stats.delivery_ms
    if d:
        print(
            f"  websocket delivery (reply request start → event at each watcher): n={len(d)}"
            f" p50={percentile(d, 50):.1f} ms p99={percentile(d, 99):.1f} ms"
        )
    print(
        f"  events: expected {result['expected']}, lost {result['lost']}, duplicated {stats.duplicates};"
        f" sockets closed early: {stats.ws_closed}"
    )
    print_table(
        "memory (RSS)",
        ["process", "start MiB", "end MiB", "growth %"],
        [
            [
                name,
                result["rss_start"][name] / 1024,
                result["rss_end"][name] / 1024,
                100 * (result["rss_end"][name] - result["rss_start"][name]) / max(1, result["rss_start"][name]),
            ]
            for name in result["rss_start"]
        ],
    )
    write_json(
        "soak",
        {
            "users": ns.users,
            "seconds": ns.seconds,
            "routes": {r[0]: {"n": r[1], "p50_ms": r[2], "p99_ms": r[3]} for r in rows},
            "errors": errors,
            "rate_limited": stats.statuses.get("429", 0),
            "delivery_p99_ms": percentile(d, 99) if d else None,
            "lost": result["lost"],
            "duplicated": stats.duplicates,
            "rss_kib": {"start": result["rss_start"], "end": result["rss_end"]},
        },
        enabled=not getattr(args, "no_json", False),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.quick = False
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
