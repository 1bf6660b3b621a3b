"""Token-to-screen: how long an agent's token takes from leaving the LLM provider to a websocket client.

Ours: a paced fake provider (one token every `pace_ms`, each token carrying its send time) drives the
real runner in this process (`run_directive`: metering, draft stream, publish to Redis); `forum web`
relays the draft to a browser-like websocket client subscribed to `thread:<id>`.
Baseline, same run, same Redis: the transport floor — the same tokens PUBLISHed to a Redis channel and
read by a plain subscriber in this process, no runner, no web node, no websocket.
Goal (issue 5): ours p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets
from redis.asyncio import Redis

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

PASSWORD = "bench password 1234"


class PacedTimestampProvider:
    """A fake LLM: `tokens` deltas, one every `pace_s`, each `"<time_ns> "` taken as it is handed over."""

    name = "bench-paced"
    model = "bench-paced-v1"

    def __init__(self, tokens: int, pace_s: float) -> None:
        self.tokens, self.pace_s = tokens, pace_s

    async def generate(self, request: Any, on_delta: Callable[[str], Awaitable[None]] | None = None) -> Any:
        from engine.llm import LLMResult, LLMUsage

        parts = []
        for _ in range(self.tokens):
            await asyncio.sleep(self.pace_s)
            token = f"{time.time_ns()} "
            parts.append(token)
            if on_delta is not None:
                await on_delta(token)
        return LLMResult(
            text="".join(parts),
            usage=LLMUsage(1, self.tokens),
            model=self.model,
            provider=self.name,
            stop_reason="end_turn",
            cost_usd=0.0,
            cost_known=True,
            latency_ms=0.0,
            first_token_ms=None,
        )

    async def aclose(self) -> None:
        return None


def run(args: argparse.Namespace) -> None:
    tokens = 60 if args.quick else 400
    pace_s = 0.01
    with servers("drafts") as infra:
        result = asyncio.run(_bench(infra, tokens, pace_s))
    write_json("drafts", result, enabled=not args.no_json)


async def _bench(infra: Servers, tokens: int, pace_s: float) -> dict[str, Any]:
    from backend.agents.runtime import build_runtime
    from backend.settings import load_settings
    from engine import db
    from engine.agents.router import SignalRouter
    from engine.agents.runner import run_directive
    from engine.relay import StreamConfig
    from engine.signals import row_to_signal

    env = forum_env(infra)
    web = forum_web(infra, env, "web.log")
    port = web.port
    with running(web):
        slug, thread_id, cookies = await _setup(web.base_url)
        settings = load_settings(env)
        await db.connect(infra.database_url, min_size=1, max_size=4)
        redis = Redis.from_url(infra.redis_url)
        streams = StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)
        runtime = build_runtime(settings, redis, None, llm=PacedTimestampProvider(tokens, pace_s))
        try:
            row = await db.pool().fetchrow(
                f'SELECT * FROM "org_{slug}".signal WHERE type = $1 ORDER BY id DESC LIMIT 1', "forum.post.created"
            )
            [directive] = await SignalRouter(redis=redis, streams=streams, runtime=runtime, consumer="bench").route(
                row_to_signal(row, slug)
            )
            ws_url = f"ws://127.0.0.1:{port}/api/v1/o/{slug}/ws"
            headers = {
                "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                "Origin": f"http://127.0.0.1:{port}",
            }
            async with websockets.connect(ws_url, additional_headers=headers) as ws:
                await ws.send(json.dumps({"op": "subscribe", "channel": f"thread:{thread_id}"}))
                while json.loads(await ws.recv()).get("op") != "subscribed":
                    pass
                progress(f"ours: {tokens} tokens at one per {pace_s * 1000:.0f} ms through runner → Redis → web → ws")
                receiver = asyncio.create_task(_receive(ws, tokens))
                outcome = await run_directive(runtime, redis, streams, slug, directive.id)
                ours = await asyncio.wait_for(receiver, timeout=30)
                assert outcome.status == "succeeded", outcome.error
            progress("baseline: the same tokens over bare Redis PUBLISH → SUBSCRIBE")
            baseline = await _baseline(redis, tokens, pace_s)
        finally:
            await redis.aclose()
            await db.disconnect()
    rows = [
        ["ours: provider → websocket client", percentile(ours, 50), percentile(ours, 99), max(ours)],
        ["baseline: PUBLISH → subscriber", percentile(baseline, 50), percentile(baseline, 99), max(baseline)],
        [
            "ours - baseline (our overhead)",
            percentile(ours, 50) - percentile(baseline, 50),
            percentile(ours, 99) - percentile(baseline, 99),
            "",
        ],
    ]
    print_table(
        f"token-to-screen: {tokens} tokens, one per {pace_s * 1000:.0f} ms (ms; goal: ours p99 < 20)",
        ["path", "p50", "p99", "max"],
        rows,
    )
    return {
        "tokens": tokens,
        "pace_ms": pace_s * 1000,
        "ours": {"p50": percentile(ours, 50), "p99": percentile(ours, 99), "max": max(ours)},
        "baseline": {"p50": percentile(baseline, 50), "p99": percentile(baseline, 99), "max": max(baseline)},
    }


async def _receive(ws: Any, tokens: int) -> list[float]:
    latencies: list[float] = []
    while len(latencies) < tokens:
        message = json.loads(await ws.recv())
        received = time.time_ns()
        if message.get("op") == "draft" and not message.get("snapshot"):
            for token in message["delta"].split():
                latencies.append((received - int(token)) / 1e6)
    return latencies


async def _baseline(redis: Redis, tokens: int, pace_s: float) -> list[float]:
    channel = "bench:drafts:" + secrets.token_hex(4)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    latencies: list[float] = []

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                latencies.append((time.time_ns() - int(message["data"])) / 1e6)
                if len(latencies) >= tokens:
                    return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.2)
    for _ in range(tokens):
        await asyncio.sleep(pace_s)
        await redis.publish(channel, str(time.time_ns()))
    await asyncio.wait_for(listener, timeout=30)
    await pubsub.aclose()
    return latencies


async def _setup(base_url: str) -> tuple[str, str, dict[str, str]]:
    slug = "bench_" + secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as admin:
        name = "admin_" + slug
        (
            await admin.post(
                "/api/v1/auth/register", json={"username": name, "email": f"{name}@bench.invalid", "password": PASSWORD}
            )
        ).raise_for_status()
        (await admin.post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})).raise_for_status()
        csrf = {"x-csrftoken": admin.cookies["csrftoken"]}
        (
            await admin.post("/api/v1/orgs", json={"slug": slug, "name": "Bench", "visibility": "public"}, headers=csrf)
        ).raise_for_status()
        base = f"/api/v1/o/{slug}"
        (await admin.post(f"{base}/categories", json={"name": "General"}, headers=csrf)).raise_for_status()
        (
            await admin.put(f"{base}/agents/forum_welcome_agent", json={"enabled": True, "config": {}}, headers=csrf)
        ).raise_for_status()
        r = await admin.post(
            f"{base}/threads", headers=csrf, json={"category": "general", "title": "Draft latency", "body": "hello"}
        )
        r.raise_for_status()
        return slug, r.json()["thread"]["id"], dict(admin.cookies)
