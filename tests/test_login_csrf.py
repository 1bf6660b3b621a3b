"""Issue 11 item 8: login CSRF. Sign-in and registration take JSON only (a cross-site HTML form or
`text/plain` fetch cannot send it without a CORS preflight) and refuse other origins (Origin, else
Referer; scheme, host and port compared); the websocket's Origin check compares the scheme too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import websockets

from backend.identity.service import SESSION_COOKIE
from tests.factories import unique
from tests.realtime_helpers import account, connect, make_org, recv, start_node, subscribe
from tests.test_identity import PASSWORD, random_ip, register, user_count


async def test_login_and_register_refuse_bodies_that_are_not_json(make_client: Any, pool: Any) -> None:
    name = unique("ct")
    assert (await register(make_client(ip=random_ip()), name)).status_code == 201
    before = await user_count(pool)
    body = f'{{"login": "{name}", "password": "{PASSWORD}"}}'
    for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", ""):
        client = make_client(ip=random_ip())
        r = await client.post("/api/v1/auth/login", content=body, headers={"content-type": content_type})
        assert r.status_code == 415, (content_type, r.text)
        assert r.json()["status_code"] == 415
        assert SESSION_COOKIE not in client.cookies
        other = unique("ct")
        raw = f'{{"username": "{other}", "email": "{other}@example.com", "password": "{PASSWORD}"}}'
        r = await client.post("/api/v1/auth/register", content=raw, headers={"content-type": content_type})
        assert r.status_code == 415, (content_type, r.text)
    r = await make_client(ip=random_ip()).post(
        "/api/v1/auth/login", data={"login": name, "password": PASSWORD}
    )  # an HTML form post
    assert r.status_code == 415, r.text
    assert await user_count(pool) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "https://testserver"},  # same host, other scheme
        {"origin": "http://testserver:8080"},  # same host, other port
        {"origin": "null"},
        {"referer": "http://evil.example/login"},
        {"referer": "https://testserver/login"},
    ],
)
async def test_login_and_register_from_another_origin_are_403(make_client: Any, pool: Any, headers: dict) -> None:
    name = unique("or")
    assert (await register(make_client(ip=random_ip()), name)).status_code == 201
    client = make_client(ip=random_ip())
    r = await client.post("/api/v1/auth/login", json={"login": name, "password": PASSWORD}, headers=headers)
    assert r.status_code == 403, r.text
    assert SESSION_COOKIE not in client.cookies
    before = await user_count(pool)
    other = unique("or")
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": other, "email": f"{other}@example.com", "password": PASSWORD},
        headers=headers,
    )
    assert r.status_code == 403, r.text
    assert await user_count(pool) == before


async def test_same_origin_and_non_browser_sign_ins_work(make_client: Any) -> None:
    name = unique("so")
    assert (await register(make_client(ip=random_ip()), name)).status_code == 201
    for headers in (
        {"origin": "http://testserver"},
        {"origin": "http://TestServer:80"},
        {"referer": "http://testserver/login?next=/"},
        {},
    ):
        r = await make_client(ip=random_ip()).post(
            "/api/v1/auth/login", json={"login": name, "password": PASSWORD}, headers=headers
        )
        assert r.status_code == 200, (headers, r.text)


async def test_public_origin_setting_is_the_origin_compared(make_app: Any, make_client: Any) -> None:
    app = make_app(public_origin="https://forum.example.org")
    name = unique("po")
    assert (await register(make_client(ip=random_ip(), application=app), name)).status_code == 201
    client = make_client(ip=random_ip(), application=app)
    body = {"login": name, "password": PASSWORD}
    assert (
        await client.post("/api/v1/auth/login", json=body, headers={"origin": "http://testserver"})
    ).status_code == 403
    r = await client.post("/api/v1/auth/login", json=body, headers={"origin": "https://forum.example.org"})
    assert r.status_code == 200, r.text


pytest_slow = pytest.mark.slow


@pytest_slow
async def test_websocket_origin_check_compares_the_scheme(app: object, servers: Any, tmp_path: Path) -> None:
    node = await start_node(servers, tmp_path / "web")
    try:
        alice = await account(node)
        org = await make_org(alice)
        host = f"127.0.0.1:{node.port}"
        for bad in (f"https://{host}", "http://evil.example", f"http://127.0.0.1:{node.port + 1}"):
            async with await connect(node, org["slug"], alice, origin=bad) as ws:  # type: ignore[arg-type]
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, bad
        async with await connect(node, org["slug"], alice, origin=f"http://{host}") as ws:  # type: ignore[arg-type]
            assert (await subscribe(ws, "org"))["op"] == "subscribed"
    finally:
        node.stop()
