"""Search latency over a large org: the HTTP API (`GET /search`) vs the same SQL run raw with asyncpg.

The org, its admin and its categories are created through the services (so the tenant schema comes from
the migrations); threads and posts are generated deterministically (seeded RNG, Zipf-weighted word list
built here) and bulk-loaded with COPY into the org's schema. Each query of a fixed mix runs sequentially
on both sides; rounds alternate (A B A B …) and the medians of p50/p99 are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import random
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from backend.console import as_operator, connected, principal_named
from backend.context import OrgRef
from backend.forum.schemas import CategoryIn
from backend.forum.service import create_category
from backend.identity.schemas import RegisterIn
from backend.identity.service import register
from backend.orgs.schemas import OrgIn
from backend.orgs.service import create_org, find_org
from backend.search.service import HEADLINE_OPTIONS, search_sql
from backend.settings import load_settings
from bench.harness import (
    Servers,
    compare_latencies,
    forum_web,
    percentile,
    progress,
    running,
    servers,
)
from bench.harness import write_json as write_results
from engine import db
from engine.tenancy import schema_for

SEED = 20240611
PASSWORD = "bench password 1234"
PAGE = 20
CATEGORIES = ("brewing", "baking", "gardening", "databases", "networking", "python", "hardware", "meta")
TOPICS = {
    "brewing": "yeast malt hops mash boil wort sparge lager ale stout porter gravity ferment airlock keg"
    " carbonation pitch starter bottle conditioning dryhop bitterness aroma clarity",
    "baking": "sourdough starter flour dough knead proof crumb crust oven levain hydration rye loaf"
    " croissant butter lamination bake scoring banneton",
    "gardening": "tomato seedling compost mulch soil prune harvest basil pepper greenhouse aphid"
    " watering fertilizer raised bed germination frost",
    "databases": "postgres index query vacuum replication transaction deadlock schema migration"
    " partition tsvector planner btree gin latency connection pool",
    "networking": "router firewall vlan dns dhcp latency packet tcp udp mtu bandwidth switch wifi"
    " subnet gateway nat vpn throughput",
    "python": "asyncio coroutine decorator generator typing dataclass pytest fixture virtualenv"
    " import module exception traceback pip wheel interpreter",
    "hardware": "soldering resistor capacitor microcontroller firmware voltage oscilloscope sensor"
    " breadboard pcb battery motor relay arduino",
    "meta": "forum moderation guideline welcome introduction feedback announcement rules"
    " community thread reply question answer",
}
COMMON = (
    "the a to and of in is it for that with on this my have but not be are was you do so if or at"
    " what can just like when how there about from would one some any get use try think problem"
    " work time issue help thanks again really still because question answer after before first"
    " better maybe error setup change update result test version works fine"
).split()
PHRASES = (
    "connection pool",
    "error message",
    "sourdough starter",
    "cold crash",
    "raised bed",
    "pull request",
)
QUERIES: tuple[tuple[str, str | None], ...] = (
    ("yeast", None),  # a topical word: a few thousand matches
    ("postgres vacuum", None),  # two topical words
    ('"connection pool"', None),  # a phrase
    ("sourdough -rye", None),  # exclusion
    ("deadlock OR firewall", None),  # alternation
    ("problem", None),  # a very common word: many matches to rank
    ("oscilloscope", "hardware"),  # category filter
    ("harvest tomato", "gardening"),
    ("zyzzyva", None),  # matches nothing
    ("coroutine traceback", None),
)


def vocabulary() -> tuple[list[str], list[float]]:
    """Words with Zipf-like cumulative weights: common filler words dominate, topic words are rarer."""
    words = list(COMMON)
    for topic in TOPICS.values():
        words += [w for w in topic.split() if w not in words]
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(words))]
    rng = random.Random(SEED)
    topical = words[len(COMMON) :]
    rng.shuffle(topical)  # topic words get shuffled ranks so every topic has common and rare words
    words = words[: len(COMMON)] + topical
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    return words, cumulative


def sentence(rng: random.Random, words: list[str], cumulative: list[float], topic: list[str]) -> str:
    n = rng.randint(6, 16)
    picked = rng.choices(words, cum_weights=cumulative, k=n)
    for _ in range(rng.randint(1, 3)):  # the category's own vocabulary
        picked[rng.randrange(n)] = rng.choice(topic)
    if rng.random() < 0.05:
        picked.insert(rng.randrange(n), rng.choice(PHRASES))
    text = " ".join(picked)
    return text[0].upper() + text[1:] + rng.choice(".?!.")


def generate(
    posts: int, categories: dict[str, uuid.UUID], authors: list[uuid.UUID]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Deterministic threads (about ten posts each) and posts as COPY records."""
    rng = random.Random(SEED)
    words, cumulative = vocabulary()
    slugs = list(categories)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    threads: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    made = 0
    while made < posts:
        slug = rng.choice(slugs)
        topic = TOPICS[slug].split()
        thread_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        created = start + timedelta(minutes=len(threads) * 7)
        title = " ".join(rng.choice(topic if i % 2 else words[:60]) for i in range(rng.randint(4, 9))).capitalize()
        count = min(posts - made, rng.randint(1, 19))
        last = created
        for i in range(count):
            body = " ".join(sentence(rng, words, cumulative, topic) for _ in range(rng.randint(2, 7)))
            last = created + timedelta(minutes=i * 13)
            deleted = rng.random() < 0.01
            rows.append(
                (
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    thread_id,
                    rng.choice(authors),
                    "human",
                    body,
                    f"<p>{html.escape(body)}</p>",
                    deleted,
                    last,
                    last,
                )
            )
        made += count
        threads.append(
            (
                thread_id,
                categories[slug],
                rng.choice(authors),
                title,
                f"t-{thread_id.hex[:12]}",
                last,
                count - 1,
                created,
                created,
            )
        )
    return threads, rows


async def build_org(infra: Servers, posts: int) -> tuple[str, str]:
    """Admin + authors via the identity service, the org via the org service (migrations build its
    schema), categories via the forum service; then COPY threads and posts. Returns (org, admin)."""
    settings = load_settings({}, database_url=infra.database_url, redis_url=infra.redis_url, secret_key="b" * 32)
    org_slug = f"bench_{secrets.token_hex(3)}"
    usernames = [f"author{i}_{secrets.token_hex(2)}" for i in range(8)]
    async with connected(settings) as services:
        for name in usernames:
            async with as_operator(services, None) as ctx:
                await register(
                    ctx,
                    RegisterIn(username=name, email=f"{name}@example.com", password=PASSWORD),
                    throttle=False,
                )
        admin = await principal_named(usernames[0])
        assert admin is not None
        async with as_operator(services, admin) as ctx:
            await create_org(ctx, OrgIn(slug=org_slug, name="Search bench", visibility="public"))
        async with db.transaction():
            org = await find_org(org_slug)
        assert isinstance(org, OrgRef)
        category_ids: dict[str, uuid.UUID] = {}
        async with as_operator(services, admin, org, "admin") as ctx:
            for slug in CATEGORIES:
                category = await create_category(ctx, CategoryIn(name=slug.capitalize(), slug=slug))
                category_ids[slug] = uuid.UUID(category.id)
        async with db.transaction():
            rows = await db.fetch("SELECT id FROM users WHERE username = ANY($1::text[])", usernames)
        authors = [r["id"] for r in rows]
    started = time.monotonic()
    threads, post_rows = generate(posts, category_ids, authors)
    progress(f"generated {len(threads):,} threads / {len(post_rows):,} posts in {time.monotonic() - started:.1f}s")
    schema = schema_for(org_slug)
    conn = await asyncpg.connect(infra.database_url)
    try:
        started = time.monotonic()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "thread",
                schema_name=schema,
                records=threads,
                columns=[
                    "id",
                    "category_id",
                    "author_user_id",
                    "title",
                    "slug",
                    "last_activity_at",
                    "reply_count",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.copy_records_to_table(
                "post",
                schema_name=schema,
                records=post_rows,
                columns=[
                    "id",
                    "thread_id",
                    "author_user_id",
                    "role",
                    "content_markdown",
                    "content_html",
                    "is_deleted",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.execute(
                f'UPDATE "{schema}".category c SET thread_count = x.threads, post_count = x.posts,'
                f" last_activity_at = x.last FROM (SELECT t.category_id, count(DISTINCT t.id) AS threads,"
                f' count(p.id) AS posts, max(p.created_at) AS last FROM "{schema}".thread t'
                f' JOIN "{schema}".post p ON p.thread_id = t.id GROUP BY t.category_id) x'
                " WHERE x.category_id = c.id"
            )
        await conn.execute(f'ANALYZE "{schema}".thread, "{schema}".post')
        progress(f"COPY + index + ANALYZE in {time.monotonic() - started:.1f}s")
    finally:
        await conn.close()
    return org_slug, usernames[0]


async def read_token(base_url: str, org: str, username: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post("/api/v1/auth/login", json={"login": username, "password": PASSWORD})
        r.raise_for_status()
        r = await client.post(
            f"/api/v1/orgs/{org}/tokens",
            json={"name": "search-bench", "scopes": ["read"]},
            headers={"x-csrftoken": client.cookies["csrftoken"]},
        )
        r.raise_for_status()
        token: str = r.json()["token"]
        return token


async def time_http(client: httpx.AsyncClient, url: str, token: str, repeat: int) -> tuple[list[float], dict[str, int]]:
    latencies: list[float] = []
    hits: dict[str, int] = {}
    for q, category in QUERIES:
        params = {"q": q, "limit": str(PAGE)} | ({"category": category} if category else {})
        for _ in range(repeat):
            started = time.perf_counter()
            r = await client.get(url, params=params, headers={"authorization": f"Bearer {token}"})
            latencies.append((time.perf_counter() - started) * 1000)
            r.raise_for_status()
        hits[q] = len(r.json()["hits"])
    return latencies, hits


async def time_raw(
    conn: asyncpg.Connection, categories: dict[str, uuid.UUID], repeat: int
) -> tuple[list[float], dict[str, int]]:
    latencies: list[float] = []
    hits: dict[str, int] = {}
    for q, category in QUERIES:
        sql = search_sql(by_category=category is not None, after=False)
        args: list[Any] = [q, PAGE + 1, HEADLINE_OPTIONS] + ([categories[category]] if category else [])
        for _ in range(repeat):
            started = time.perf_counter()
            rows = await conn.fetch(sql, *args)
            latencies.append((time.perf_counter() - started) * 1000)
        hits[q] = min(len(rows), PAGE)
    return latencies, hits


def run(args: argparse.Namespace) -> None:
    posts = args.posts or (5_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 3)
    repeat = 3 if args.quick else 6
    with servers("search") as infra:
        result = asyncio.run(measure(infra, posts, rounds, repeat))
    write_results("search", result, enabled=not args.no_json)


async def measure(infra: Servers, posts: int, rounds: int, repeat: int) -> dict[str, Any]:
    progress(f"building an org with {posts:,} posts")
    org, admin = await build_org(infra, posts)
    web = forum_web(infra)
    schema = schema_for(org)
    with running(web):
        token = await read_token(web.base_url, org, admin)
        conn = await asyncpg.connect(infra.database_url)
        try:
            await conn.execute(f'SET search_path TO "{schema}", public')
            categories = {r["slug"]: r["id"] for r in await conn.fetch("SELECT id, slug FROM category")}
            url = f"{web.base_url}/api/v1/o/{org}/search"
            measured: dict[str, list[list[float]]] = {"ours": [], "raw": []}
            async with httpx.AsyncClient(timeout=60) as client:
                progress("warm-up (one pass each)")
                _, http_hits = await time_http(client, url, token, 1)
                _, raw_hits = await time_raw(conn, categories, 1)
                if http_hits != raw_hits:
                    raise RuntimeError(f"the API and the raw SQL disagree: {http_hits} vs {raw_hits}")
                for n in range(rounds):
                    for side in ("ours", "raw"):
                        if side == "ours":
                            latencies, _ = await time_http(client, url, token, repeat)
                        else:
                            latencies, _ = await time_raw(conn, categories, repeat)
                        measured[side].append(latencies)
                        progress(
                            f"round {n + 1}/{rounds} {side:4}: p50 {percentile(latencies, 50):6.1f} ms"
                            f"  p99 {percentile(latencies, 99):6.1f} ms  ({len(latencies)} queries)"
                        )
            counts = await conn.fetch(
                "SELECT count(*) AS n FROM post p, websearch_to_tsquery('english', $1) q WHERE p.search @@ q",
                "problem",
            )
        finally:
            await conn.close()
    summary, ratios = compare_latencies(
        f"search: {posts:,} posts, {len(QUERIES)} queries x {repeat} x {rounds} rounds per side, sequential (medians)",
        measured,
        {"ours": "ours (HTTP API)", "raw": "raw SQL (asyncpg)"},
    )
    print(f"  hits per query (first page, limit {PAGE}): {http_hits}; 'problem' matches {counts[0]['n']:,} bodies")
    return {
        "config": {"posts": posts, "rounds": rounds, "repeat": repeat, "queries": [list(q) for q in QUERIES]},
        "ours": summary["ours"],
        "raw": summary["raw"],
        "ratios": ratios,
        "hits": http_hits,
        "rounds": {
            side: [{"p50_ms": percentile(r, 50), "p99_ms": percentile(r, 99)} for r in rs]
            for side, rs in measured.items()
        },
    }
