"""`bench live`: a busy thread with N people watching, end to end, as the thread page behaves.

A process of its own (the watchers) holds N websocket clients subscribed to one thread; each does on
every event exactly what `ThreadPage.svelte` does: a `forum.post.created` event that carries
`data.post` is drawable when it arrives (no request); one without it makes the page fetch
`GET /posts/{id}` (coalesced: one request a second at most per page), drawable when that answers.
Meanwhile 16 posting clients send replies through the API at a fixed total rate. Latency is from the
reply's POST being sent to the reply being drawable on a watcher, over every (reply, watcher) pair.

Baseline, same run, same watcher process and clients: bench/fanout_baseline.py (a bare Litestar
websocket broadcast fed by Redis pub/sub, no auth, no database), the same event payload PUBLISHed at the
same rate; latency from the PUBLISH being sent.

Cases: 100 and 500 watchers at 5 and 20 replies/s, 2,000 at 5/s, 10 s each (`--quick`: 100 watchers,
2 s). Goals (issue 12): every reply posted; p99 < 50 / 100 / 250 ms at 100 / 500 / 2,000 watchers, and
within 2x the baseline's p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis

from bench.fanout import cpu_s
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
from bench.replies import prepare_forum, reply_body
from bench.wsclient import FrameProtocol

CASES = [(100, 5.0), (100, 20.0), (500, 5.0), (500, 20.0), (2000, 5.0)]
QUICK_CASES = [(100, 5.0), (100, 20.0)]
GOAL_P99_MS = {100: 50.0, 500: 100.0, 2000: 250.0}
POSTERS = 16
FETCH_INTERVAL_S = 1.0  # the page's coalescing of the fetches an event still causes


# --- the watchers' process ----------------------------------------------------------------------------


class _Page:
    """One watcher: a socket and the thread page's reaction to each event."""

    __slots__ = ("missing", "next_fetch", "sock")

    def __init__(self) -> None:
        self.sock: FrameProtocol | None = None
        self.missing: list[str] = []
        self.next_fetch = 0.0


class _Watchers:
    def __init__(self) -> None:
        self.pages: dict[FrameProtocol, _Page] = {}
        self.drawn: list[tuple[str, float]] = []  # (post id, time it became drawable on one page)
        self.fetches = 0
        self.acks: dict[FrameProtocol, asyncio.Future[bytes]] = {}
        self.http: httpx.AsyncClient | None = None
        self.api = ""

    def on_text(self, sock: FrameProtocol, payload: bytes) -> None:
        ack = self.acks.get(sock)
        if ack is not None and not ack.done():
            ack.set_result(payload)
            return
        now = time.time()
        if b'"forum.post.created"' not in payload:
            return
        msg = json.loads(payload)
        data = msg.get("data") or {}
        post = data.get("post")
        if post is not None:
            self.drawn.append((post["id"], now))  # applied from the event: no request
        elif data.get("post_id"):
            page = self.pages[sock]
            page.missing.append(data["post_id"])
            if len(page.missing) == 1:
                asyncio.get_running_loop().create_task(self._fetch_missing(page))

    async def _fetch_missing(self, page: _Page) -> None:
        """The page's coalesced fetch: one GET /posts/{id} at a time, at most one a second."""
        assert self.http is not None
        while page.missing:
            wait = page.next_fetch - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            page.next_fetch = time.monotonic() + FETCH_INTERVAL_S
            post_id = page.missing.pop(0)
            self.fetches += 1
            try:
                r = await self.http.get(f"{self.api}/posts/{post_id}")
                if r.status_code == 200:
                    self.drawn.append((post_id, time.time()))
            except httpx.HTTPError:
                pass

    async def open(self, ws_url: str, api: str, channel: str, n: int, concurrency: int = 100) -> int:
        parts = urlsplit(ws_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        self.api = api
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))

        async def one() -> None:
            async with gate:
                _, sock = await loop.create_connection(
                    lambda: FrameProtocol(f"{host}:{port}", parts.path, self.on_text), host, port
                )
                await asyncio.wait_for(sock.upgraded, 60)
                ack = self.acks[sock] = loop.create_future()
                self.pages[sock] = _Page()
                sock.send_text(json.dumps({"op": "subscribe", "channel": channel}))
                try:
                    reply = await asyncio.wait_for(ack, 60)
                finally:
                    del self.acks[sock]
                if b'"subscribed"' not in reply:
                    raise RuntimeError(f"subscribe refused: {reply.decode(errors='replace')}")

        await asyncio.gather(*(one() for _ in range(n)))
        return len(self.pages)

    def close(self) -> None:
        for sock in self.pages:
            if sock.transport is not None:
                sock.transport.close()
        self.pages.clear()


def _serve(conn: Connection) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main() -> None:
        w = _Watchers()
        loop = asyncio.get_running_loop()
        while True:
            cmd: dict[str, Any] = await loop.run_in_executor(None, conn.recv)
            try:
                if cmd["op"] == "open":
                    reply: Any = await w.open(cmd["ws_url"], cmd["api"], cmd["channel"], cmd["n"])
                elif cmd["op"] == "take":
                    reply = (w.drawn, w.fetches)
                    w.drawn, w.fetches = [], 0
                elif cmd["op"] == "close":
                    w.close()
                    await asyncio.sleep(0.3)
                    reply = 0
                else:
                    w.close()
                    if w.http is not None:
                        await w.http.aclose()
                    conn.send(0)
                    return
                conn.send(reply)
            except Exception as exc:
                conn.send(exc)

    asyncio.run(main())


class WatcherProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()

    async def call(self, **cmd: Any) -> Any:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._conn.send, cmd)
        reply = await loop.run_in_executor(None, self._conn.recv)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def exit(self) -> None:
        try:
            await asyncio.wait_for(self.call(op="exit"), 10)
        finally:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()


# --- one case ------------------------------------------------------------------------------------------


@dataclass
class Case:
    impl: str
    watchers: int
    rate: float
    scheduled: int
    posted: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    expected_draws: int = 0
    fetches: int = 0
    cpu_pct: float = 0.0

    def stats(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
        return {
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "max_ms": max(self.latencies_ms),
        }


Send = Callable[[int], Awaitable[str | None]]  # reply number -> post id (None: not posted)


async def _drive(send: Send, rate: float, count: int) -> dict[str, float]:
    """`count` sends at `rate`/s on a fixed schedule (never waiting for earlier ones), over POSTERS
    concurrent clients; returns post id -> time its send started."""
    sent_at: dict[str, float] = {}
    gate = asyncio.Semaphore(POSTERS)
    start = time.monotonic() + 0.2

    async def one(k: int) -> None:
        await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
        async with gate:
            t0 = time.time()
            post_id = await send(k)
        if post_id is not None:
            sent_at[post_id] = t0

    await asyncio.gather(*(one(k) for k in range(count)))
    return sent_at


async def run_case(
    impl: str,
    watchers: WatcherProcess,
    web_pid: int,
    ws_url: str,
    api: str,
    channel: str,
    n: int,
    rate: float,
    duration_s: float,
    send: Send,
) -> Case:
    case = Case(impl, n, rate, scheduled=int(rate * duration_s))
    opened = await watchers.call(op="open", ws_url=ws_url, api=api, channel=channel, n=n)
    if opened != n:
        raise RuntimeError(f"{impl}: {opened} of {n} watchers subscribed")
    await watchers.call(op="take")
    cpu0, wall0 = cpu_s(web_pid), time.monotonic()
    sent_at = await _drive(send, rate, case.scheduled)
    case.posted = len(sent_at)
    case.expected_draws = case.posted * n
    deadline = time.monotonic() + 15
    drawn: list[tuple[str, float]] = []
    while True:  # wait (bounded) for the stragglers
        got, fetches = await watchers.call(op="take")
        drawn += got
        case.fetches += fetches
        if len(drawn) >= case.expected_draws or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    case.cpu_pct = 100 * (cpu_s(web_pid) - cpu0) / (time.monotonic() - wall0)
    case.latencies_ms = [(t - sent_at[pid]) * 1000 for pid, t in drawn if pid in sent_at]
    missing = case.expected_draws - len(case.latencies_ms)
    if missing > 0:  # never drawn within the wait: count them at the wait's end, so they show in p99/max
        case.latencies_ms += [(time.time() - min(sent_at.values())) * 1000] * missing
    await watchers.call(op="close")
    return case


# --- the whole benchmark -------------------------------------------------------------------------------


async def _measure(
    ours: ServerProcess, base: ServerProcess, redis_url: str, cases: list[tuple[int, float]], duration_s: float
) -> list[tuple[Case, Case]]:
    org, thread_ids, token = await prepare_forum(ours.base_url, 1)
    thread_id = thread_ids[0]
    api = f"{ours.base_url}/api/v1/o/{org}"
    progress(f"org {org}, one thread; {POSTERS} posting clients; posting limits off")
    limits = httpx.Limits(max_connections=POSTERS * 2, max_keepalive_connections=POSTERS * 2)
    redis = Redis.from_url(redis_url)
    watchers = WatcherProcess()
    results: list[tuple[Case, Case]] = []
    try:
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            headers = {"authorization": f"Bearer {token}"}
            sample: dict[str, Any] = {}

            async def post_reply(k: int) -> str | None:
                try:
                    r = await client.post(
                        f"{api}/threads/{thread_id}/posts", json={"body": reply_body(k)}, headers=headers
                    )
                except httpx.HTTPError:
                    return None
                if r.status_code != 201:
                    return None
                post = r.json()["post"]
                sample.setdefault("post", post)
                return str(post["id"])

            await post_reply(0)  # warm-up, and a real post view for the baseline's payload
            view = dict(sample["post"], body=None, my_reactions=[])

            async def publish(k: int) -> str | None:
                post_id = f"b{k}-{time.monotonic_ns()}"
                data = {"post_id": post_id, "thread_id": thread_id, "post": dict(view, id=post_id)}
                event = {"type": "forum.post.created", **data}  # the type travels in the payload here
                await redis.publish(f"thread:{thread_id}", json.dumps(event))
                return post_id

            for n, rate in cases:
                progress(f"{n} watchers, {rate:g} replies/s, {duration_s:g} s: ours")
                mine = await run_case(
                    "ours", watchers, _pid(ours), f"ws://127.0.0.1:{ours.port}/api/v1/o/{org}/ws", api,
                    f"thread:{thread_id}", n, rate, duration_s, post_reply,
                )  # fmt: skip
                progress(f"{n} watchers, {rate:g} replies/s: baseline")
                bare = await run_case(
                    "baseline", watchers, _pid(base), f"ws://127.0.0.1:{base.port}/ws", api,
                    f"thread:{thread_id}", n, rate, duration_s, publish,
                )  # fmt: skip
                results.append((mine, bare))
    finally:
        await watchers.exit()
        await redis.aclose()
    return results


def _pid(process: ServerProcess) -> int:
    assert process.proc is not None
    return process.proc.pid


def run(args: argparse.Namespace) -> None:
    quick = bool(getattr(args, "quick", False))
    cases = QUICK_CASES if quick else CASES
    duration_s = float(getattr(args, "duration", None) or (2 if quick else 10))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with servers("live") as srv:
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
        }
        ours = ServerProcess(
            "forum web", [str(FORUM), "web", "--port", str(ours_port)], env, ours_port, srv.workdir / "ours.log"
        )
        base = ServerProcess(
            "baseline",
            [sys.executable, "-m", "bench.fanout_baseline", "--port", str(base_port)],
            {"BENCH_REDIS_URL": srv.redis_url},
            base_port,
            srv.workdir / "baseline.log",
        )
        with running(ours, base):
            results = asyncio.run(_measure(ours, base, srv.redis_url, cases, duration_s))
    rows: list[list[object]] = []
    out: list[dict[str, Any]] = []
    for mine, bare in results:
        m, b = mine.stats(), bare.stats()
        goal = GOAL_P99_MS.get(mine.watchers, 250.0)
        met = mine.posted == mine.scheduled and m["p99_ms"] < goal and m["p99_ms"] <= 2 * b["p99_ms"]
        for c, s in ((mine, m), (bare, b)):
            rows.append(
                [
                    f"{c.watchers} @ {c.rate:g}/s",
                    c.impl,
                    f"{c.posted}/{c.scheduled}",
                    s["p50_ms"],
                    s["p99_ms"],
                    s["max_ms"],
                    c.fetches,
                    f"{c.cpu_pct:.0f}%",
                    (f"{m['p99_ms'] / b['p99_ms']:.2f}x p99, goal <{goal:g} ms: {'met' if met else 'MISSED'}")
                    if c is mine
                    else "",
                ]
            )
        out.append({"watchers": mine.watchers, "rate": mine.rate, "ours": _json(mine), "baseline": _json(bare)})
    print_table(
        "live: POST sent → reply drawable on every watching thread page (ours) vs bare pub/sub broadcast",
        ["case", "impl", "posted", "p50 ms", "p99 ms", "max ms", "page GETs", "web CPU", "ours/baseline"],
        rows,
    )
    write_json("live", {"duration_s": duration_s, "posters": POSTERS, "cases": out}, enabled=not args.no_json)


def _json(case: Case) -> dict[str, Any]:
    return {
        "posted": case.posted,
        "scheduled": case.scheduled,
        "drawn": len(case.latencies_ms),
        "page_fetches": case.fetches,
        "web_cpu_pct": case.cpu_pct,
        **case.stats(),
    }
