"""FAQ agent latency: a new question's signal → the answer's first streamed token, with ~100k posts in
the org, offline provider.

Ours: `forum web` + `forum worker` as real processes over an org bulk-loaded like bench/search.py (100k
posts, same generator). Questions are posted through the HTTP API at a fixed rate, each repeating an
earlier thread's title and opening post (so the agent is confident and streams an answer); the first
draft delta of each thread is taken from the Redis pub/sub channel every web node relays to browsers.
Latency = first delta's arrival - the `forum.thread.created` signal's `occurred_at` (one clock, one machine):
routing, planning, the directive, SAQ, the runner, retrieval over the whole org, the thread reads, and the
first token.
Baseline, same run, same Redis and PostgreSQL: bench/agents.py's bare mechanism (XADD → XREADGROUP →
INSERT → SAQ enqueue → job start), i.e. the floor of any signal-driven job here.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg
import httpx
import msgspec
from redis.asyncio import Redis

from backend.console import as_operator, connected, principal_named
from backend.orgs.service import find_org
from backend.search.related import refresh_term_stats
from backend.settings import load_settings
from bench.agents import PASSWORD, _baseline, start_worker, stop_worker
from bench.harness import (
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
from bench.search import build_org
from engine import db
from realtime.drafts import DRAFT_PUBSUB_CHANNEL, DraftNotice

FAQ = "forum_faq_agent"


def run(args: argparse.Namespace) -> None:
    posts = args.posts or (5_000 if args.quick else 100_000)
    questions = 10 if args.quick else 40  # within the FAQ agent's 60 directives per org per hour
    rate = 2.0
    with servers("faq") as infra:
        result = asyncio.run(_bench(infra, posts, questions, rate))
    write_json("faq", result, enabled=not args.no_json)


async def _prepare(infra: Servers, posts: int) -> tuple[str, str, list[tuple[str, str]]]:
    org_slug, admin_name = await build_org(infra, posts)
    settings = load_settings({}, database_url=infra.database_url, redis_url=infra.redis_url, secret_key="f" * 32)
    async with connected(settings) as services:
        async with db.transaction():
            org = await find_org(org_slug)
        admin = await principal_named(admin_name)
        async with as_operator(services, admin, org, "admin"):
            progress(f"term statistics over {await refresh_term_stats():,} posts")
            await db.execute(
                "INSERT INTO installation (package, enabled, config) VALUES ($1, true, $2::jsonb)",
                FAQ,
                msgspec.json.encode({"categories": ["*"], "confidence_threshold": 0.3}).decode(),
            )
            rows = await db.fetch(
                "SELECT t.title, (SELECT p.content_markdown FROM post p WHERE p.thread_id = t.id AND NOT p.is_deleted"
                " ORDER BY p.created_at, p.id LIMIT 1) AS body FROM thread t WHERE t.reply_count >= 2"
                " ORDER BY t.id LIMIT 200"
            )
    return org_slug, admin_name, [(r["title"], r["body"]) for r in rows if r["body"]]


async def _bench(infra: Servers, posts: int, questions: int, rate: float) -> dict[str, Any]:
    org_slug, admin_name, earlier = await _prepare(infra, posts)
    env = forum_env(
        infra,
        FORUM_LLM_PROVIDER="offline",
        FORUM_REGISTER_MAX_PER_IP="100000",
        FORUM_AGENT_MAX_DIRECTIVES_PER_HOUR="100000",
    )
    web = forum_web(infra, env, "web.log")
    redis = Redis.from_url(infra.redis_url)
    first_token: dict[str, float] = {}
    pubsub = redis.pubsub()
    await pubsub.subscribe(DRAFT_PUBSUB_CHANNEL)

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            notice = msgspec.json.decode(message["data"], type=DraftNotice)
            if notice.kind == "delta" and notice.tenant == org_slug:
                first_token.setdefault(notice.thread_id, time.time())

    listener = asyncio.create_task(listen())
    with running(web):
        progress("starting forum worker")
        worker = start_worker(env, infra.workdir / "worker.log")
        try:
            thread_ids = await _ask(web.base_url, org_slug, admin_name, earlier, questions, rate)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(set(thread_ids) & set(first_token)) < len(thread_ids):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            missing = len(set(thread_ids) - set(first_token))
            if missing:
                log = (infra.workdir / "worker.log").read_text(errors="replace").splitlines()
                progress(f"{missing} questions got no streamed answer; worker log tail:\n" + "\n".join(log[-30:]))
        finally:
            stop_worker(worker)
    listener.cancel()
    await pubsub.aclose()
    await redis.aclose()
    stages = await _latencies(infra.database_url, org_slug, thread_ids, first_token)
    ours = stages["to_first_token_ms"]
    progress("baseline: XADD → XREADGROUP → INSERT → SAQ enqueue → job start")
    baseline = await _baseline(infra.database_url, infra.redis_url, questions, rate)
    rows = [
        [f"ours: signal → {name[3:-3].replace('_', ' ')}", percentile(v, 50), percentile(v, 99), max(v)]
        for name, v in stages.items()
    ]
    rows += [
        ["baseline: XADD → job start", percentile(baseline, 50), percentile(baseline, 99), max(baseline)],
        [
            "ours / baseline",
            percentile(ours, 50) / percentile(baseline, 50),
            percentile(ours, 99) / percentile(baseline, 99),
            "",
        ],
    ]
    print_table(
        f"FAQ agent: {len(ours)} answered of {questions} questions at {rate:.0f}/s, {posts:,} posts in the org (ms)",
        ["path", "p50", "p99", "max"],
        rows,
    )
    return {
        "posts": posts,
        "questions": questions,
        "answered": len(ours),
        "rate_per_s": rate,
        "ours": {k: {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)} for k, v in stages.items()},
        "baseline": {"p50": percentile(baseline, 50), "p99": percentile(baseline, 99)},
    }


async def _ask(
    base_url: str, slug: str, admin_name: str, earlier: list[tuple[str, str]], questions: int, rate: float
) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as admin:
        r = await admin.post("/api/v1/auth/login", json={"login": admin_name, "password": PASSWORD})
        r.raise_for_status()
        csrf = {"x-csrftoken": admin.cookies["csrftoken"]}
        base = f"/api/v1/o/{slug}"
        (await admin.put(f"{base}/settings", json={"posting": {"enabled": False}}, headers=csrf)).raise_for_status()
        progress(f"{questions} questions at {rate:.0f}/s")
        started = time.monotonic()
        tasks = []
        for i in range(questions):
            title, body = earlier[i % len(earlier)]
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            tasks.append(
                asyncio.create_task(
                    admin.post(
                        f"{base}/threads",
                        headers=csrf,
                        json={"category": "brewing", "title": f"{title} (again)", "body": body},
                    )
                )
            )
        responses = await asyncio.gather(*tasks)
    for response in responses:
        response.raise_for_status()
    return [response.json()["thread"]["id"] for response in responses]


async def _latencies(
    database_url: str, slug: str, thread_ids: list[str], first_token: dict[str, float]
) -> dict[str, list[float]]:
    """Per answered question: signal → directive, → execution start, → first streamed token (ms)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT s.payload->>'thread_id' AS thread_id, extract(epoch FROM s.occurred_at) AS t0,"
            " extract(epoch FROM d.created_at) AS t_directive, extract(epoch FROM min(e.started_at)) AS t_start"
            f' FROM "org_{slug}".signal s JOIN "org_{slug}".directive d ON d.signal_id = s.id'
            f' JOIN "org_{slug}".execution e ON e.directive_id = d.id'
            " WHERE s.type = 'forum.thread.created' AND s.payload->>'thread_id' = ANY($1::text[])"
            " GROUP BY s.id, d.id",
            thread_ids,
        )
    finally:
        await conn.close()
    answered = [r for r in rows if r["thread_id"] in first_token]
    if not answered:
        raise RuntimeError("no answer was streamed: see the worker log")
    return {
        "to_directive_ms": [(float(r["t_directive"]) - float(r["t0"])) * 1000 for r in answered],
        "to_execution_start_ms": [(float(r["t_start"]) - float(r["t0"])) * 1000 for r in answered],
        "to_first_token_ms": [(first_token[r["thread_id"]] - float(r["t0"])) * 1000 for r in answered],
    }
