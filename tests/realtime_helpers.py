"""Helpers for the realtime tests: real `forum web` processes, websocket clients, direct signal writes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection

from backend.context import OrgRef
from backend.embedded import EmbeddedPostgres
from backend.migrations import all_migrations
from engine import db
from engine.migrator import migrate_all
from engine.relay import StreamConfig, publish_committed_signals
from engine.signals import SignalContext, SignalPayload, collect_signals, emit, signal_context
from engine.tenancy import tenant_scope
from tests.conftest import Client, Servers
from tests.factories import unique

ROOT = Path(__file__).resolve().parents[1]
FORUM = str(Path(sys.executable).parent / "forum")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """A `forum web` process."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, org: str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/o/{org}/ws"

    def client(self) -> Client:
        return Client(base_url=self.url, timeout=20)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def stoppable_database(datadir: Path, name: str, redis_url: str) -> tuple[EmbeddedPostgres, Servers]:
    """A PostgreSQL of the test's own (so the test may stop and restart it) holding database `name`, migrated;
    returns it and the servers a node started on it uses (the session's Redis). The caller stops it."""
    pg = EmbeddedPostgres(datadir, keep=True)
    base_url = pg.start()
    try:
        conn = await asyncpg.connect(base_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        db_url = base_url.replace("/postgres?", f"/{name}?")
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        await migrate_all(pool, all_migrations())
        await pool.close()
    except BaseException:
        pg.stop()
        raise
    return pg, Servers(database_url=db_url, redis_url=redis_url, admin_database_url=base_url, database_name=name)


async def start_node(servers: Servers, tmp: Path, *, redis_url: str | None = None, **env: object) -> Node:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    environ = {
        **os.environ,
        "FORUM_DATABASE_URL": servers.database_url,
        "FORUM_REDIS_URL": redis_url or servers.redis_url,
        "FORUM_SECRET_KEY": "realtime-tests",
        "FORUM_DATA_DIR": str(tmp),
        "FORUM_FRONTEND_DIST": str(tmp / "no-frontend"),
        "FORUM_REGISTER_MAX_PER_IP": "100000",
        "FORUM_LOGIN_MAX_FAILURES_PER_IP": "100000",
        "FORUM_LOG_LEVEL": "WARNING",
    }
    environ.update({f"FORUM_{k.upper()}": str(v) for k, v in env.items()})
    log_path = tmp / f"web-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting a server, once)
            [FORUM, "web", "--port", str(port)], env=environ, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    node = Node(port, proc, log_path)
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as probe:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"forum web exited:\n{node.log()}")
            try:
                if (await probe.get(node.url + "/healthz", timeout=1)).status_code == 200:
                    return node
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                node.stop()
                raise RuntimeError(f"forum web did not become healthy:\n{node.log()}")
            await asyncio.sleep(0.1)


# --- accounts and content through the HTTP API ---------------------------------------------------------


@dataclass
class Account:
    client: Client
    user: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.user["id"])

    @property
    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())


async def account(node: Node, username: str | None = None) -> Account:
    client = node.client()
    username = username or unique("rt")
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": "correct horse battery"},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/auth/login", json={"login": username, "password": "correct horse battery"})
    assert r.status_code == 200, r.text
    return Account(client, r.json()["user"])


async def make_org(admin: Account, visibility: str = "public") -> dict[str, Any]:
    slug = unique("rt")
    r = await admin.client.post("/api/v1/orgs", json={"slug": slug, "name": slug, "visibility": visibility})
    assert r.status_code == 201, r.text
    return dict(r.json()["org"])


async def add_member(admin: Account, org: str, who: Account, role: str = "member") -> None:
    r = await admin.client.post(f"/api/v1/orgs/{org}/members", json={"username": who.user["username"], "role": role})
    assert r.status_code in (200, 201), r.text


async def make_category(admin: Account, org: str) -> dict[str, Any]:
    r = await admin.client.post(f"/api/v1/o/{org}/categories", json={"name": unique("Cat ")})
    assert r.status_code == 201, r.text
    return dict(r.json()["category"])


async def make_thread(author: Account, org: str, category_slug: str) -> dict[str, Any]:
    r = await author.client.post(
        f"/api/v1/o/{org}/threads",
        json={"category": category_slug, "title": unique("Title "), "body": "hello"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def reply(
    author: Account, org: str, thread_id: str, body: str = "a reply", reply_to: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"body": body}
    if reply_to:
        payload["reply_to_post_id"] = reply_to
    r = await author.client.post(f"/api/v1/o/{org}/threads/{thread_id}/posts", json=payload)
    assert r.status_code == 201, r.text
    return dict(r.json()["post"])


async def bearer_token(admin: Account, org: str, scopes: Sequence[str] = ("admin",)) -> str:
    r = await admin.client.post(f"/api/v1/orgs/{org}/tokens", json={"name": unique("t"), "scopes": list(scopes)})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


# --- websocket clients ---------------------------------------------------------------------------------


async def connect(
    node: Node, org: str, who: Account | None = None, *, token: str | None = None, **kwargs: Any
) -> ClientConnection:
    headers: dict[str, str] = {}
    if who is not None:
        headers["Cookie"] = who.cookie
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await websockets.connect(node.ws_url(org), additional_headers=headers, **kwargs)


async def recv(ws: ClientConnection, within_s: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), within_s)))


async def recv_until(
    ws: ClientConnection, pred: Callable[[dict[str, Any]], bool], within_s: float = 10.0
) -> list[dict[str, Any]]:
    """Every message up to and including the first that satisfies `pred`."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching message; got {out[-5:]}")
        msg = await recv(ws, left)
        out.append(msg)
        if pred(msg):
            return out


async def subscribe(ws: ClientConnection, channel: str, since: str | None = None) -> dict[str, Any]:
    """Subscribe and return the `subscribed` ack or the `error` (events before the ack are kept in
    `ack["before"]`)."""
    op: dict[str, Any] = {"op": "subscribe", "channel": channel}
    if since is not None:
        op["since"] = since
    await ws.send(json.dumps(op))
    msgs = await recv_until(ws, lambda m: m.get("channel") == channel and m["op"] in ("subscribed", "error"))
    ack = dict(msgs[-1])
    ack["before"] = msgs[:-1]
    return ack


async def events(ws: ClientConnection, n: int, within_s: float = 10.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + within_s
    while len(got) < n:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["op"] == "event":
            got.append(msg)
    return got


async def nothing_more(ws: ClientConnection, wait: float = 0.5) -> None:
    try:
        msg = await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {msg!r}")


# --- direct signal writes (the engine path, as a job would) --------------------------------------------


async def emit_direct(
    org: dict[str, Any], redis: Redis, streams: StreamConfig, payloads: Sequence[SignalPayload]
) -> list[str]:
    """Emit `payloads` in one committed transaction of the org's tenant, then publish them."""
    ref = OrgRef(id=org["id"], slug=org["slug"], name=org["name"], visibility=org["visibility"])
    ctx = SignalContext(actor_type="system", actor_id=None, source="job", correlation_id=str(uuid.uuid4()))
    with collect_signals() as pending, signal_context(ctx):
        async with db.transaction():
            async with tenant_scope(db.current_connection(), ref.tenant):
                for payload in payloads:
                    await emit(payload)
    await publish_committed_signals(db.pool(), redis, streams, pending.items)
    return [s.id for s in pending.items]
