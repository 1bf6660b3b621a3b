"""Issue 11 item 6: outages answer 503 with Retry-After (never 500), a new websocket is closed with 1013
("try again later") instead of refused, /healthz names the failing part, and everything recovers without
restarting the web process. Each test really stops and restarts a server it owns (its own redis-server,
its own embedded PostgreSQL) under a real `forum web` process."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.conftest import Servers
from tests.realtime_helpers import (
    Node,
    account,
    bearer_token,
    connect,
    make_org,
    recv,
    start_node,
    stoppable_database,
    subscribe,
)

pytestmark = pytest.mark.slow


def assert_unavailable(r: httpx.Response, part: str) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert int(r.headers["retry-after"]) > 0
    body = r.json()
    assert body["status_code"] == 503 and part in body["detail"], body


async def healthz(node: Node) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.get(node.url + "/healthz", timeout=10)


async def eventually_ok(node: Node, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while (r := await healthz(node)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.2)


async def closed_code(ws: Any) -> int | None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await recv(ws, 10)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


@pytest.fixture
def own_dir() -> Iterator[Path]:
    """A directory the embedded PostgreSQL's system user can reach (pytest's tmp dirs are mode 700)."""
    path = Path(tempfile.mkdtemp(prefix="forum_outage_"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_redis_down_answers_503_and_recovers_without_restart(
    app: object, servers: Servers, tmp_path: Path
) -> None:
    rd = EmbeddedRedis(tmp_path / "redis", persist=True)
    redis_url = rd.start()
    node = await start_node(servers, tmp_path / "web", redis_url=redis_url)
    try:
        alice = await account(node)
        org = await make_org(alice)
        assert (await alice.client.get("/api/v1/me")).status_code == 200
        rd.stop()
        for method, path, kwargs in (
            ("GET", "/api/v1/me", {}),
            ("GET", f"/api/v1/o/{org['slug']}/categories", {}),
            ("POST", f"/api/v1/o/{org['slug']}/categories", {"json": {"name": "During the outage"}}),
        ):
            assert_unavailable(await alice.client.request(method, path, **kwargs), "redis")
        r = await healthz(node)
        assert r.status_code == 503 and r.json()["failing"] == ["redis"], r.text
        rd = EmbeddedRedis(tmp_path / "redis", persist=True)
        assert rd.start() == redis_url
        await eventually_ok(node)
        r = await alice.client.get("/api/v1/me")  # the session survived (the server kept its data)
        assert r.status_code == 200, r.text
        r = await alice.client.post(f"/api/v1/o/{org['slug']}/categories", json={"name": "After the outage"})
        assert r.status_code == 201, r.text
    finally:
        node.stop()
        rd.stop()


async def test_postgres_down_answers_503_closes_new_sockets_with_1013_and_recovers(
    servers: Servers, tmp_path: Path, own_dir: Path
) -> None:
    pg, own = await stoppable_database(own_dir / "pg", "outage", servers.redis_url)
    try:
        node = await start_node(own, tmp_path / "web")
        try:
            alice = await account(node)
            org = await make_org(alice)
            slug = org["slug"]
            token = await bearer_token(alice, slug, ["read"])
            async with await connect(node, slug, alice) as ws:
                assert (await subscribe(ws, "org"))["op"] == "subscribed"
            pg.stop()
            anon = httpx.AsyncClient(base_url=node.url, timeout=20)
            bearer = httpx.AsyncClient(base_url=node.url, timeout=20, headers={"authorization": f"Bearer {token}"})
            async with anon, bearer:
                for _ in range(2):  # the pool's stale connections and the refused new ones alike
                    assert_unavailable(await alice.client.get("/api/v1/me"), "database")
                    assert_unavailable(await anon.get(f"/api/v1/o/{slug}/categories"), "database")
                    assert_unavailable(await bearer.get(f"/api/v1/o/{slug}/categories"), "database")
                    assert_unavailable(
                        await alice.client.post(f"/api/v1/o/{slug}/categories", json={"name": "x"}), "database"
                    )
                    assert_unavailable(
                        await anon.post("/api/v1/auth/login", json={"login": "a", "password": "b"}), "database"
                    )
                r = await healthz(node)
                assert r.status_code == 503 and r.json()["failing"] == ["database"], r.text
                async with await connect(node, slug, alice) as ws:
                    assert await closed_code(ws) == 1013
                async with await connect(node, slug) as ws:  # anonymous too
                    assert await closed_code(ws) == 1013
                pg = EmbeddedPostgres(own_dir / "pg", keep=True)
                assert pg.start() == own.admin_database_url
                await eventually_ok(node)
                r = await alice.client.get("/api/v1/me")
                assert r.status_code == 200, r.text
                r = await alice.client.post(f"/api/v1/o/{slug}/categories", json={"name": "Back"})
                assert r.status_code == 201, r.text
                assert (await bearer.get(f"/api/v1/o/{slug}/categories")).status_code == 200
                async with await connect(node, slug, alice) as ws:
                    assert (await subscribe(ws, "org"))["op"] == "subscribed"
        finally:
            node.stop()
    finally:
        pg.keep = False
        pg.stop()
