"""Issue 11 item 1: a large request body must not poison its keep-alive connection.

uvicorn pauses reading when a body passes its 64 KiB high-water mark and resumes from inside the request's
task, so its next `data_received` (and the task of the next request on that connection) runs in a copy of
that request's contextvars: Piccolo's current transaction, the request context, the tenant. These tests
go through a REAL `forum web` (uvicorn) process with ONE keep-alive connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.realtime_helpers import account, make_category, make_org, make_thread, start_node

pytestmark = pytest.mark.slow


def one_connection_client(base_url: str, cookies: httpx.Cookies) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, cookies=cookies, limits=limits, timeout=20)


class ConnectionCounter:
    """Counts TCP connections the client opened (to prove every request rode the same one)."""

    def __init__(self) -> None:
        self.opened = 0

    async def __call__(self, event_name: str, info: dict[str, Any]) -> None:
        if event_name == "connection.connect_tcp.complete":
            self.opened += 1


async def test_big_post_then_more_requests_on_the_same_connection_all_succeed(
    app: object, servers: Any, tmp_path: Path
) -> None:
    node = await start_node(servers, tmp_path / "web")
    try:
        admin = await account(node)
        org = await make_org(admin, "private")
        slug = org["slug"]
        cat = await make_category(admin, slug)
        thread = await make_thread(admin, slug, cat["slug"])
        tid = thread["thread"]["id"]
        csrf = admin.client.cookies["csrftoken"]
        counter = ConnectionCounter()
        async with one_connection_client(node.url, admin.client.cookies) as c:
            headers = {"x-csrftoken": csrf}
            # a valid ~90 KB post (30,000 three-byte characters), well past uvicorn's 64 KiB high-water mark
            big = await c.post(
                f"/api/v1/o/{slug}/threads/{tid}/posts",
                json={"body": "漢" * 30000},
                headers=headers,
                extensions={"trace": counter},
            )
            assert big.status_code == 201, big.text
            for i in range(6):
                r = await c.get(f"/api/v1/o/{slug}/threads/{tid}", extensions={"trace": counter})
                assert r.status_code == 200, (i, r.text)
                r = await c.post(
                    f"/api/v1/o/{slug}/threads/{tid}/posts",
                    json={"body": f"small reply {i}"},
                    headers=headers,
                    extensions={"trace": counter},
                )
                assert r.status_code == 201, (i, r.text)
                r = await c.get("/api/v1/me", extensions={"trace": counter})
                assert r.status_code == 200, (i, r.text)
            # a ~100 KB preview poisons the same way (it writes nothing, but it runs in the request's transaction)
            preview = await c.post(
                f"/api/v1/o/{slug}/preview",
                json={"body": "漢" * 34_000},
                headers=headers,
                extensions={"trace": counter},
            )
            assert preview.status_code == 200, preview.text
            for i in range(3):
                r = await c.get(f"/api/v1/o/{slug}/categories", extensions={"trace": counter})
                assert r.status_code == 200, (i, r.text)
            # and the other org-less routes, anonymous on the same connection: no inherited tenant/principal
            r = await c.get(f"/api/v1/o/{slug}/categories", headers={"cookie": ""}, extensions={"trace": counter})
            assert r.status_code in (401, 404), r.text
        assert counter.opened == 1, f"requests spread over {counter.opened} connections"
        assert "connection has been released" not in node.log()
        assert "Traceback" not in node.log(), node.log()[-3000:]
    finally:
        node.stop()


async def test_big_anonymous_request_does_not_lend_its_tenant_to_the_next_one(
    app: object, servers: Any, tmp_path: Path
) -> None:
    """A big request into org A followed, on the same connection, by a request into org B: B's answer must
    come from B (its own tenant scope), never from A's inherited search_path or principal."""
    node = await start_node(servers, tmp_path / "web")
    try:
        admin = await account(node)
        org_a = await make_org(admin, "public")
        org_b = await make_org(admin, "public")
        await make_category(admin, org_a["slug"])
        cat_b = await make_category(admin, org_b["slug"])
        csrf = admin.client.cookies["csrftoken"]
        async with one_connection_client(node.url, admin.client.cookies) as c:
            r = await c.post(
                f"/api/v1/o/{org_a['slug']}/preview", json={"body": "語" * 34_000}, headers={"x-csrftoken": csrf}
            )
            assert r.status_code == 200, r.text
            r = await c.get(f"/api/v1/o/{org_b['slug']}/categories")
            assert r.status_code == 200, r.text
            assert [c_["slug"] for c_ in r.json()["categories"]] == [cat_b["slug"]]
    finally:
        node.stop()


async def test_a_unit_of_work_refuses_to_join_a_transaction_it_did_not_open(app: object) -> None:
    """Defence in depth: even if a stale transaction is current, the boundary does not run in it."""
    from backend.boundary import InheritedContext, unit_of_work
    from backend.console import operator_context
    from engine import db

    services = app.state.services  # type: ignore[attr-defined]
    async with db.transaction():
        with pytest.raises(InheritedContext):
            async with unit_of_work(operator_context(services, None)):
                pass
    async with unit_of_work(operator_context(services, None)):  # and works from a clean context
        assert db.in_transaction()
