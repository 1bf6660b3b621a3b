"""CSRF on cookie sessions, and org-bound API tokens."""

from __future__ import annotations

import hashlib
import uuid

import httpx

from backend.identity.service import SESSION_COOKIE
from tests.factories import create_org, register_and_login, unique


def raw_client(app, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    """A client that never adds the CSRF header by itself."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies)


def bearer(app, token: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 40000))
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"authorization": f"Bearer {token}"}
    )


async def mint_token(client, slug: str, scopes: list[str] | None = None) -> dict:
    body: dict = {"name": unique("tok")}
    if scopes is not None:
        body["scopes"] = scopes
    r = await client.post(f"/api/v1/orgs/{slug}/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def new_member(make_client, admin_client, slug: str, role: str = "member"):
    client = make_client()
    user = await register_and_login(client)
    r = await admin_client.post(f"/api/v1/orgs/{slug}/members", json={"username": user["username"], "role": role})
    assert r.status_code == 201, r.text
    return client, user


# --- CSRF ------------------------------------------------------------------------------------------


async def test_cookie_post_without_csrf_header_is_403_and_writes_nothing(app, client, pool):
    await register_and_login(client)
    naked = raw_client(app, client.cookies)
    slug = unique("csrf")
    r = await naked.post("/api/v1/orgs", json={"slug": slug, "name": "x", "visibility": "private"})
    assert r.status_code == 403, r.text
    assert r.json()["status_code"] == 403 and "CSRF" in r.json()["detail"]
    r = await naked.post("/api/v1/orgs", json={"slug": slug, "name": "x"}, headers={"x-csrftoken": "not-the-token"})
    assert r.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM orgs WHERE slug = $1", slug) == 0
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", f"org_{slug}") == 0
    # Logout is unsafe too: without the header the session survives.
    assert (await naked.post("/api/v1/auth/logout")).status_code == 403
    assert (await naked.get("/api/v1/me")).status_code == 200
    # With the header (the cookie's value) the same request works.
    r = await naked.post(
        "/api/v1/orgs",
        json={"slug": slug, "name": "x", "visibility": "private"},
        headers={"x-csrftoken": client.cookies["csrftoken"]},
    )
    assert r.status_code == 201, r.text
    assert await pool.fetchval("SELECT count(*) FROM orgs WHERE slug = $1", slug) == 1


async def test_csrf_token_is_per_session(app, make_client):
    first, second = make_client(), make_client()
    await register_and_login(first)
    await register_and_login(second)
    assert first.cookies["csrftoken"] != second.cookies["csrftoken"]
    naked = raw_client(app, first.cookies)
    r = await naked.post(
        "/api/v1/orgs",
        json={"slug": unique("x"), "name": "x"},
        headers={"x-csrftoken": second.cookies["csrftoken"]},
    )
    assert r.status_code == 403


# --- API tokens -------------------------------------------------------------------------------------


async def test_token_is_returned_once_and_stored_as_sha256(client, pool):
    await register_and_login(client)
    org = await create_org(client)
    out = await mint_token(client, org["slug"], ["read", "write"])
    token = out["token"]
    assert token.startswith("fpt_") and len(token) > 30
    assert out["org"] == org["slug"] and out["scopes"] == ["read", "write"]
    row = await pool.fetchrow("SELECT * FROM api_tokens WHERE id = $1", uuid.UUID(out["id"]))
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    everything = await pool.fetchval("SELECT string_agg(t::text, ' ') FROM api_tokens t")
    assert token not in everything and token[4:] not in everything
    signals = await pool.fetchval(f"SELECT string_agg(s::text, ' ') FROM \"org_{org['slug']}\".signal s")
    assert "org.token.created" in signals and token not in signals
    # Never shown again: nothing that reads the org or the user returns it.
    for path in (f"/api/v1/orgs/{org['slug']}", "/api/v1/me"):
        assert token not in (await client.get(path)).text


async def test_only_admins_mint_tokens(make_client, client, pool):
    await register_and_login(client)
    org = await create_org(client)
    member, _ = await new_member(make_client, client, org["slug"], "member")
    moderator, _ = await new_member(make_client, client, org["slug"], "moderator")
    for who in (member, moderator):
        r = await who.post(f"/api/v1/orgs/{org['slug']}/tokens", json={"name": "nope"})
        assert r.status_code == 403, r.text
    assert await pool.fetchval("SELECT count(*) FROM api_tokens WHERE org_id = $1", uuid.UUID(org["id"])) == 0


async def test_bearer_needs_no_csrf_and_acts_in_its_org(app, make_client, client, pool):
    await register_and_login(client)
    org = await create_org(client)
    token = (await mint_token(client, org["slug"], ["admin"]))["token"]
    target = await register_and_login(make_client())
    api = bearer(app, token)
    r = await api.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": target["username"]})
    assert r.status_code == 201, r.text
    assert (
        await pool.fetchval(
            "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
            uuid.UUID(org["id"]),
            uuid.UUID(target["id"]),
        )
        == "member"
    )
    source = await pool.fetchval(
        f"SELECT source FROM \"org_{org['slug']}\".signal WHERE type = 'org.member.added' AND payload->>'user_id' = $1",
        target["id"],
    )
    assert source == "api"
    r = await api.get(f"/api/v1/orgs/{org['slug']}")
    assert r.status_code == 200 and r.json()["org"]["slug"] == org["slug"]


async def test_token_of_org_a_is_refused_in_org_b(app, make_client, client):
    await register_and_login(client)
    org_a = await create_org(client, "private")
    private_b = await create_org(client, "private")
    public_b = await create_org(client, "public")
    token = (await mint_token(client, org_a["slug"], ["admin"]))["token"]
    api = bearer(app, token)
    target = await register_and_login(make_client())
    # The token's creator is admin of every org, but the token is bound to A.
    for org, status in ((private_b, 404), (public_b, 403)):
        assert (await api.get(f"/api/v1/orgs/{org['slug']}")).status_code == status
        r = await api.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": target["username"]})
        assert r.status_code == status, r.text
        assert r.json()["status_code"] == status
        assert (await api.post(f"/api/v1/orgs/{org['slug']}/tokens", json={"name": "x"})).status_code == status
        assert (await api.post(f"/api/v1/orgs/{org['slug']}/join")).status_code == status


async def test_token_cannot_create_orgs_or_mint_tokens(app, client, pool):
    await register_and_login(client)
    org = await create_org(client)
    token = (await mint_token(client, org["slug"], ["admin"]))["token"]
    api = bearer(app, token)
    slug = unique("viatoken")
    r = await api.post("/api/v1/orgs", json={"slug": slug, "name": "x"})
    assert r.status_code == 403, r.text
    assert await pool.fetchval("SELECT count(*) FROM orgs WHERE slug = $1", slug) == 0
    r = await api.post(f"/api/v1/orgs/{org['slug']}/tokens", json={"name": "child"})
    assert r.status_code == 403, r.text
    assert await pool.fetchval("SELECT count(*) FROM api_tokens WHERE org_id = $1", uuid.UUID(org["id"])) == 1


async def test_revoked_and_garbage_tokens_are_401(app, client, pool):
    await register_and_login(client)
    org = await create_org(client)
    out = await mint_token(client, org["slug"])
    api = bearer(app, out["token"])
    assert (await api.get(f"/api/v1/orgs/{org['slug']}")).status_code == 200
    await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", uuid.UUID(out["id"]))
    r = await api.get(f"/api/v1/orgs/{org['slug']}")
    assert r.status_code == 401 and r.json()["status_code"] == 401
    for header in (
        "Bearer garbage",
        "Bearer fpt_" + "A" * 43,
        "Bearer " + "x" * 5000,
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer fpt_'; DROP TABLE users; --",
    ):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.11", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.get(f"/api/v1/orgs/{org['slug']}", headers={"authorization": header})
            assert r.status_code == 401, (header, r.text)
    assert await pool.fetchval("SELECT count(*) FROM users") > 0


async def test_a_bearer_header_wins_over_a_session_cookie(app, client):
    await register_and_login(client)
    org = await create_org(client)
    cookies = httpx.Cookies({SESSION_COOKIE: client.cookies[SESSION_COOKIE]})
    async with raw_client(app, cookies) as c:
        r = await c.get(f"/api/v1/orgs/{org['slug']}", headers={"authorization": "Bearer nope"})
    assert r.status_code == 401


async def test_read_only_token_cannot_write(app, make_client, client, pool):
    await register_and_login(client)
    org = await create_org(client)
    token = (await mint_token(client, org["slug"], ["read"]))["token"]
    api = bearer(app, token)
    assert (await api.get(f"/api/v1/orgs/{org['slug']}")).status_code == 200
    target = await register_and_login(make_client())
    r = await api.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": target["username"]})
    assert r.status_code == 403, r.text
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM memberships WHERE org_id = $1 AND user_id = $2",
            uuid.UUID(org["id"]),
            uuid.UUID(target["id"]),
        )
        == 0
    )


async def test_token_of_a_removed_creator_loses_access(app, client, pool):
    await register_and_login(client)
    org = await create_org(client)
    token = (await mint_token(client, org["slug"], ["admin"]))["token"]
    await pool.execute("DELETE FROM memberships WHERE org_id = $1", uuid.UUID(org["id"]))
    r = await bearer(app, token).get(f"/api/v1/orgs/{org['slug']}")
    assert r.status_code == 403
