"""Compose-time related threads over a large org: POST /api/v1/o/{org}/related through the HTTP API vs
the full-text search statement of GET /search (backend/search/service.py) for the draft's title, run raw
with asyncpg: what a search-as-you-type suggestion box would cost at the database alone.

The org is bench/search.py's: 100k generated posts (Zipf-weighted vocabulary, so every draft word matches
thousands of posts: the worst case for candidate generation). Term statistics are refreshed as the worker
would; every thread gets an embedding row, but these are deterministic random unit vectors (embedding
10k threads would take the worker minutes; what costs time at request time is the same: encoding the
draft, reading the candidates' vectors, the dot products). Drafts are generated from the same vocabulary.
Rounds alternate (A B A B …); medians of p50/p99 are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from backend.search.embedding import DIMENSIONS, MODEL_NAME, to_bytes
from backend.search.service import HEADLINE_OPTIONS, search_sql
from bench.harness import Servers, compare_latencies, forum_web, percentile, progress, running, servers
from bench.harness import write_json as write_results
from bench.search import PASSWORD, build_org, sentence, vocabulary
from engine.tenancy import schema_for

RAW_SQL = search_sql(by_category=False, after=False)
SEED = 20251201
DRAFTS = 20
K = 5


def drafts() -> list[tuple[str, str]]:
    rng = random.Random(SEED)
    words, cumulative = vocabulary()
    topic = words[60:]
    out = []
    for _ in range(DRAFTS):
        title = " ".join(rng.choice(topic if i % 2 else words[:60]) for i in range(rng.randint(4, 9))).capitalize()
        body = " ".join(sentence(rng, words, cumulative, topic) for _ in range(rng.randint(1, 4)))
        out.append((title, body))
    return out


async def prepare(infra: Servers, org: str) -> None:
    """What the worker keeps up to date: term statistics and thread embeddings (random vectors here)."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(f'SET search_path TO "{schema_for(org)}", public')
        started = time.monotonic()
        from backend.search.related import _REFRESH_SQL

        for statement in _REFRESH_SQL:
            await conn.execute(statement)
        progress(f"term statistics refreshed in {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        import numpy as np

        ids = [r["id"] for r in await conn.fetch("SELECT id FROM thread")]
        vectors = np.random.default_rng(SEED).standard_normal((len(ids), DIMENSIONS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "thread_embedding",
            schema_name=schema_for(org),
            columns=["thread_id", "model", "vector", "source_updated_at"],
            records=[(i, MODEL_NAME, to_bytes(v), now) for i, v in zip(ids, vectors, strict=True)],
        )
        progress(f"{len(ids):,} random thread vectors stored in {time.monotonic() - started:.1f}s")
    finally:
        await conn.close()


async def write_token(base_url: str, org: str, username: str) -> str:
    """A token that may POST (the boundary refuses POSTs from read-only tokens, /related included)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post("/api/v1/auth/login", json={"login": username, "password": PASSWORD})
        r.raise_for_status()
        r = await client.post(
            f"/api/v1/orgs/{org}/tokens",
            json={"name": "related-bench", "scopes": ["read", "write"]},
            headers={"x-csrftoken": client.cookies["csrftoken"]},
        )
        r.raise_for_status()
        token: str = r.json()["token"]
        return token


async def time_http(client: httpx.AsyncClient, url: str, token: str, repeat: int) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    found: list[int] = []
    for title, body in drafts():
        for _ in range(repeat):
            started = time.perf_counter()
            r = await client.post(
                url, json={"title": title, "body": body, "k": K}, headers={"authorization": f"Bearer {token}"}
            )
            latencies.append((time.perf_counter() - started) * 1000)
            r.raise_for_status()
        found.append(len(r.json()["threads"]))
    return latencies, found


async def time_raw(conn: asyncpg.Connection, repeat: int) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    found: list[int] = []
    for title, _body in drafts():
        for _ in range(repeat):
            started = time.perf_counter()
            rows = await conn.fetch(RAW_SQL, title, K + 1, HEADLINE_OPTIONS)
            latencies.append((time.perf_counter() - started) * 1000)
        found.append(min(len(rows), K))
    return latencies, found


def run(args: argparse.Namespace) -> None:
    posts = args.posts or (5_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 3)
    repeat = 2 if args.quick else 5
    with servers("related") as infra:
        result = asyncio.run(measure(infra, posts, rounds, repeat))
    write_results("related", result, enabled=not args.no_json)


async def measure(infra: Servers, posts: int, rounds: int, repeat: int) -> dict[str, Any]:
    progress(f"building an org with {posts:,} posts")
    org, admin = await build_org(infra, posts)
    await prepare(infra, org)
    web = forum_web(infra)
    with running(web):
        token = await write_token(web.base_url, org, admin)
        conn = await asyncpg.connect(infra.database_url)
        try:
            await conn.execute(f'SET search_path TO "{schema_for(org)}", public')
            url = f"{web.base_url}/api/v1/o/{org}/related"
            measured: dict[str, list[list[float]]] = {"ours": [], "raw": []}
            async with httpx.AsyncClient(timeout=60) as client:
                progress("warm-up (one pass each; loads the embedding model)")
                _, http_found = await time_http(client, url, token, 1)
                _, raw_found = await time_raw(conn, 1)
                for n in range(rounds):
                    for side in ("ours", "raw"):
                        if side == "ours":
                            latencies, _ = await time_http(client, url, token, repeat)
                        else:
                            latencies, _ = await time_raw(conn, repeat)
                        measured[side].append(latencies)
                        progress(
                            f"round {n + 1}/{rounds} {side:4}: p50 {percentile(latencies, 50):6.1f} ms"
                            f"  p99 {percentile(latencies, 99):6.1f} ms  ({len(latencies)} drafts)"
                        )
        finally:
            await conn.close()
    summary, ratios = compare_latencies(
        f"related: {posts:,} posts, {DRAFTS} drafts x {repeat} x {rounds} rounds per side, sequential (medians)",
        measured,
        {"ours": "ours (POST /related, HTTP)", "raw": "raw search SQL, title (asyncpg)"},
    )
    print(f"  threads returned per draft: ours {http_found}; raw {raw_found}")
    return {
        "config": {"posts": posts, "rounds": rounds, "repeat": repeat, "drafts": DRAFTS, "k": K},
        "ours": summary["ours"],
        "raw": summary["raw"],
        "ratios": ratios,
    }
