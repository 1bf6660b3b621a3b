"""Reply creation through the real HTTP API vs a bare Litestar + asyncpg INSERT.

Ours: `forum web` (auth by bearer token, tenant transaction, render + sanitize, counters, mentions,
outbox signal, publish to Redis after commit) with the org's posting limits disabled. Baseline:
bench/baseline_app.py, one INSERT into a table shaped like `post`. Both are served by uvicorn with the
same settings, driven by the same httpx client with `concurrency` workers; the rounds alternate
(A B A B …) and the medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import (
    ServerProcess,
    Servers,
    forum_web,
    free_port,
    median,
    percentile,
    print_table,
    progress,
    running,
    servers,
    write_json,
)

PASSWORD = "bench password 1234"
WORDS = (
    "yeast malt hops mash boil wort sparge lager ale stout porter gravity ferment airlock kegging carbonation"
    " temperature recipe grain water chemistry bitterness aroma clarity cold crash pitch rate starter"
).split()


@dataclass
class Round:
    side: str
    requests: int
    elapsed_s: float
    latencies_ms: list[float] = field(repr=False)
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)


@dataclass
class Target:
    side: str
    url_for: Any  # (worker index) -> url
    headers: dict[str, str]
    payload_for: Any  # (worker index, request number) -> json


def reply_body(n: int) -> str:
    words = " ".join(WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(12))
    return f"Reply {n}: have you tried **{WORDS[n % len(WORDS)]}**? {words}. See `notes-{n}` and [this](https://example.com/{n})."


async def drive(client: httpx.AsyncClient, target: Target, requests: int, concurrency: int) -> Round:
    """`requests` POSTs spread over `concurrency` workers; per-request latency and total wall time."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))

    async def worker(index: int) -> None:
        nonlocal errors
        url = target.url_for(index)
        for n in counter:
            started = time.perf_counter()
            response = await client.post(url, json=target.payload_for(index, n), headers=target.headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 201:
                errors += 1
                if errors <= 3:
                    print(f"    {target.side}: {response.status_code} {response.text[:200]}", file=sys.stderr)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return Round(target.side, requests, time.perf_counter() - started, latencies, errors)


async def prepare_forum(base_url: str, threads: int) -> tuple[str, list[str], str]:
    """Admin user, public org with posting limits off, a category, `threads` threads and a write
    token, all through the API. Returns (org slug, thread ids, token)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as admin:
        username = f"bench_{secrets.token_hex(3)}"
        r = await admin.post(
            "/api/v1/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        r.raise_for_status()
        r = await admin.post("/api/v1/auth/login", json={"login": username, "password": PASSWORD})
        r.raise_for_status()
        admin.headers["x-csrftoken"] = admin.cookies["csrftoken"]
        org = f"bench_{secrets.token_hex(3)}"
        r = await admin.post("/api/v1/orgs", json={"slug": org, "name": "Bench", "visibility": "public"})
        r.raise_for_status()
        base = f"/api/v1/o/{org}"
        r = await admin.put(f"{base}/settings", json={"posting": {"enabled": False}})
        r.raise_for_status()
        r = await admin.post(f"{base}/categories", json={"name": "Brewing", "slug": "brewing"})
        r.raise_for_status()
        thread_ids = []
        for i in range(threads):
            r = await admin.post(
                f"{base}/threads",
                json={"category": "brewing", "title": f"Benchmark thread {i}", "body": "Opening post."},
            )
            r.raise_for_status()
            thread_ids.append(r.json()["thread"]["id"])
        # A member-level token: replies take the ordinary member path (limits off for the org).
        r = await admin.post(f"/api/v1/orgs/{org}/tokens", json={"name": "bench", "scopes": ["write"]})
        r.raise_for_status()
        return org, thread_ids, r.json()["token"]


def run(args: argparse.Namespace) -> None:
    total = args.requests or (100 if args.quick else 2000)
    warmup = 20 if args.quick else 200
    rounds = args.rounds or (1 if args.quick else 4)
    requests = max(1, total // rounds)  # per side and round: `total` requests per side in all
    concurrency = args.concurrency
    with servers("replies") as infra:
        result = asyncio.run(measure(infra, requests, warmup, rounds, concurrency))
    write_json("replies", result, enabled=not args.no_json)


async def measure(infra: Servers, requests: int, warmup: int, rounds: int, concurrency: int) -> dict[str, Any]:
    ours = forum_web(infra)
    baseline = ServerProcess(
        name="baseline app",
        argv=[sys.executable, "-m", "bench.baseline_app", "--port", str(port := free_port())],
        env={"BENCH_DATABASE_URL": infra.database_url},
        port=port,
        log_path=infra.workdir / "baseline.log",
    )
    with running(ours, baseline):
        org, thread_ids, token = await prepare_forum(ours.base_url, concurrency)
        progress(f"org {org}: {len(thread_ids)} threads (one per client), posting limits off")
        targets = {
            "ours": Target(
                side="ours",
                url_for=lambda i: f"{ours.base_url}/api/v1/o/{org}/threads/{thread_ids[i]}/posts",
                headers={"authorization": f"Bearer {token}"},
                payload_for=lambda i, n: {"body": reply_body(n)},
            ),
            "baseline": Target(
                side="baseline",
                url_for=lambda i: f"{baseline.base_url}/replies",
                headers={},
                payload_for=lambda i, n: {"thread_id": thread_ids[i], "body": reply_body(n)},
            ),
        }
        limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
        measured: dict[str, list[Round]] = {"ours": [], "baseline": []}
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            for side in ("ours", "baseline"):
                progress(f"warm-up {side}: {warmup} requests")
                await drive(client, targets[side], warmup, concurrency)
            for n in range(rounds):
                for side in ("ours", "baseline"):
                    result = await drive(client, targets[side], requests, concurrency)
                    measured[side].append(result)
                    progress(
                        f"round {n + 1}/{rounds} {side:8}: {result.per_second:8.1f} replies/s"
                        f"  p50 {result.p50:6.1f} ms  p99 {result.p99:6.1f} ms  errors {result.errors}"
                    )
    summary = {side: summarize(rs) for side, rs in measured.items()}
    ratio = summary["ours"]["per_second"] / summary["baseline"]["per_second"]
    print_table(
        f"replies: {requests} requests x {rounds} rounds per side, {concurrency} concurrent clients (medians)",
        ["side", "replies/s", "p50 ms", "p99 ms", "errors"],
        [
            [side, s["per_second"], s["p50_ms"], s["p99_ms"], s["errors"]]
            for side, s in (
                ("ours (forum API)", summary["ours"]),
                ("baseline (bare INSERT)", summary["baseline"]),
            )
        ]
        + [
            [
                "ours / baseline",
                ratio,
                summary["ours"]["p50_ms"] / summary["baseline"]["p50_ms"],
                summary["ours"]["p99_ms"] / summary["baseline"]["p99_ms"],
                "",
            ]
        ],
    )
    return {
        "config": {"requests": requests, "warmup": warmup, "rounds": rounds, "concurrency": concurrency},
        "ours": summary["ours"],
        "baseline": summary["baseline"],
        "throughput_ratio": ratio,
        "rounds": {side: [_round_json(r) for r in rs] for side, rs in measured.items()},
    }


def summarize(rounds: list[Round]) -> dict[str, float]:
    return {
        "per_second": median([r.per_second for r in rounds]),
        "p50_ms": median([r.p50 for r in rounds]),
        "p99_ms": median([r.p99 for r in rounds]),
        "errors": sum(r.errors for r in rounds),
    }


def _round_json(r: Round) -> dict[str, float]:
    return {
        "per_second": r.per_second,
        "p50_ms": r.p50,
        "p99_ms": r.p99,
        "errors": r.errors,
        "elapsed_s": r.elapsed_s,
    }
