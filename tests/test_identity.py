"""Identity: registration, login with attempt limits, Redis sessions, error shapes."""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid

import pytest

from backend.identity.service import SESSION_COOKIE
from tests.factories import register_and_login, unique

PASSWORD = "correct horse battery"


def random_ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def register(client, username: str, email: str | None = None, password: str = PASSWORD):
    return await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": email or f"{username}@example.com", "password": password},
    )


async def login(client, login: str, password: str = PASSWORD):
    return await client.post("/api/v1/auth/login", json={"login": login, "password": password})


async def user_count(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM users")


def assert_error(r, status: int, *, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status_code"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"status_code", "detail", "extra"}
    if field is not None:
        extra = body["extra"]
        assert isinstance(extra, list) and extra, body
        assert all(isinstance(e["message"], str) and e["message"] for e in extra)
        keys_and_messages = " ".join(f"{e.get('key')} {e['message']}" for e in extra)
        assert field in keys_and_messages, body
    return body


async def test_register_login_me_logout(client):
    user = await register_and_login(client)
    r = await client.get("/api/v1/me")
    assert r.status_code == 200
    assert r.json()["user"]["username"] == user["username"]
    assert r.json()["orgs"] == []
    assert "password_hash" not in r.text
    r = await client.post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_register_returns_user_and_stores_an_argon2id_hash(client, pool):
    name = unique("Reg")
    r = await register(client, name, email=f"{name}@Example.COM")
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert user["username"] == name
    assert user["email"] == f"{name}@example.com".lower()
    assert "password" not in r.text
    row = await pool.fetchrow("SELECT username, password_hash FROM users WHERE id = $1", uuid.UUID(user["id"]))
    assert row["username"] == name
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]


async def test_me_requires_sign_in(client):
    assert_error(await client.get("/api/v1/me"), 401)


async def test_duplicate_username_is_409_case_insensitively_and_writes_nothing(client, pool):
    name = unique("Dup")
    assert (await register(client, name)).status_code == 201
    before = await user_count(pool)
    r = await register(client, name.upper(), email=f"other_{name}@example.com")
    assert_error(r, 409)
    assert "username" in r.json()["detail"]
    assert await user_count(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM users WHERE lower(username) = lower($1)", name) == 1


async def test_duplicate_email_is_409_case_insensitively_and_writes_nothing(client, pool):
    name = unique("mail")
    assert (await register(client, name, email=f"{name}@example.com")).status_code == 201
    before = await user_count(pool)
    r = await register(client, unique("other"), email=f"{name.upper()}@EXAMPLE.com")
    assert_error(r, 409)
    assert "email" in r.json()["detail"]
    assert await user_count(pool) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": 5, "email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": "someone", "email": ["a@example.com"], "password": PASSWORD}, "email"),
        ({"username": "someone", "email": "a@example.com"}, "password"),
        ({"username": "someone", "password": PASSWORD}, "email"),
        ({"username": "someone", "email": "a@example.com", "password": PASSWORD, "admin": True}, "admin"),
        ({"username": "someone", "email": "a@example.com", "password": "short"}, "password"),
        ({"username": "x", "email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": "bad name!", "email": "a@example.com", "password": PASSWORD}, "username"),
        ({"username": "someone", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"username": "someone", "email": "a@example.com", "password": "p" * 257}, "password"),
    ],
)
async def test_register_validation_is_400_with_field_messages(client, pool, body, field):
    before = await user_count(pool)
    assert_error(await client.post("/api/v1/auth/register", json=body), 400, field=field)
    assert await user_count(pool) == before


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b"null",
        b'"text"',
        b"",
        b'{"username": "abc"',
        '{"u": "\udc80"}'.encode(errors="surrogatepass"),
    ],
)
async def test_register_malformed_bodies_are_400(client, pool, raw):
    before = await user_count(pool)
    r = await client.post("/api/v1/auth/register", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert await user_count(pool) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"login": "", "password": "x"}, "login"),
        ({"login": "someone"}, "password"),
        ({"login": 1, "password": "x"}, "login"),
        ({"login": "someone", "password": "x", "remember": True}, "remember"),
    ],
)
async def test_login_validation_is_400_with_field_messages(client, body, field):
    assert_error(await client.post("/api/v1/auth/login", json=body), 400, field=field)


async def test_bad_input_never_500(client):
    await register_and_login(client)
    org_slug = unique("o")
    r = await client.post("/api/v1/orgs", json={"slug": org_slug, "name": "x", "visibility": "private"})
    assert r.status_code == 201
    cases = [
        ("/api/v1/auth/register", b'{"username": null, "email": {}, "password": 1.5}'),
        (
            "/api/v1/auth/register",
            b'{"username": "\\u0000\\u0000", "email": "a@b.c", "password": "12345678"}',
        ),
        ("/api/v1/auth/login", b'{"login": "' + b"a" * 5000 + b'", "password": "x"}'),
        ("/api/v1/auth/login", b"\xff\xfe\x00"),
        ("/api/v1/orgs", b'{"slug": "' + b"a" * 500 + b'", "name": "x"}'),
        ("/api/v1/orgs", b'{"slug": "ok_slug", "name": "x", "visibility": "secret"}'),
        (f"/api/v1/orgs/{org_slug}/members", b'{"username": "x", "role": "owner"}'),
        (f"/api/v1/orgs/{org_slug}/members", b'{"username": ""}'),
        (f"/api/v1/orgs/{org_slug}/tokens", b'{"name": "t", "scopes": ["root"]}'),
        (f"/api/v1/orgs/{org_slug}/tokens", b'{"name": "t", "scopes": []}'),
        (f"/api/v1/orgs/{org_slug}/tokens", b"12"),
    ]
    for path, raw in cases:
        r = await client.post(path, content=raw, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (path, raw, r.status_code, r.text)
        assert r.json()["status_code"] == r.status_code


async def test_oversize_body_is_413_and_writes_nothing(client, pool, settings):
    before = await user_count(pool)
    big = b'{"username": "big", "email": "big@example.com", "password": "' + b"p" * settings.max_body_bytes
    big += b'"}'
    r = await client.post("/api/v1/auth/register", content=big, headers={"content-type": "application/json"})
    assert_error(r, 413)

    async def chunks():
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    r = await client.post("/api/v1/auth/register", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413)
    assert await user_count(pool) == before


async def test_login_with_email_or_any_case_username(make_client):
    name = unique("Mixed")
    client = make_client()
    assert (await register(client, name)).status_code == 201
    for credential in (f"{name}@example.com", f"{name.upper()}@EXAMPLE.COM", name.lower()):
        fresh = make_client()
        r = await login(fresh, credential)
        assert r.status_code == 200, (credential, r.text)
        assert r.json()["user"]["username"] == name
        assert (await fresh.get("/api/v1/me")).json()["user"]["username"] == name


async def test_wrong_password_and_unknown_account_are_401(client):
    name = unique("wp")
    assert (await register(client, name)).status_code == 201
    assert_error(await login(client, name, "not the password"), 401)
    assert_error(await login(client, unique("nobody"), PASSWORD), 401)
    assert SESSION_COOKIE not in client.cookies


async def test_session_cookie_flags(client):
    name = unique("ck")
    assert (await register(client, name)).status_code == 201
    r = await login(client, name)
    set_cookies = r.headers.get_list("set-cookie")
    session = next(c for c in set_cookies if c.startswith(f"{SESSION_COOKIE}="))
    csrf = next(c for c in set_cookies if c.startswith("csrftoken="))
    assert "HttpOnly" in session and "SameSite=lax" in session.replace("samesite", "SameSite")
    assert "HttpOnly" not in csrf


async def test_repeated_failures_lock_the_account_with_retry_after(make_client, settings):
    """Per account-and-address pair (issue 11 item 5): the guesser's address is locked out of this account,
    by username or email in any case, even with the right password; other addresses are not."""
    name = unique("lock")
    client = make_client(ip=random_ip())
    assert (await register(client, name)).status_code == 201
    limit = settings.login_max_failures_per_pair
    assert limit == 5
    for _ in range(limit):
        assert (await login(client, name, "wrong password")).status_code == 401
    r = await login(client, name, "wrong password")
    assert_error(r, 429)
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= settings.login_failure_window_s
    for variant in (name, name.upper(), f"{name}@example.com"):
        r = await login(client, variant)
        assert_error(r, 429)
        assert "retry-after" in r.headers
        assert SESSION_COOKIE not in client.cookies
    assert (await login(make_client(ip=random_ip()), name)).status_code == 200


async def test_success_resets_the_account_counter(make_client, settings):
    name = unique("reset")
    client = make_client(ip=random_ip())
    assert (await register(client, name)).status_code == 201
    for _ in range(settings.login_max_failures_per_pair - 1):
        assert (await login(client, name, "wrong password")).status_code == 401
    assert (await login(client, name)).status_code == 200
    for _ in range(settings.login_max_failures_per_pair - 1):
        assert (await login(client, name, "wrong password")).status_code == 401
    assert (await login(client, name)).status_code == 200


async def test_account_lock_ends_when_the_window_passes(make_app, make_client):
    app = make_app(login_failure_window_s=2)
    name = unique("win")
    client = make_client(ip=random_ip(), application=app)
    assert (await register(client, name)).status_code == 201
    for _ in range(5):
        assert (await login(client, name, "wrong password")).status_code == 401
    r = await login(client, name)
    assert_error(r, 429)
    assert 1 <= int(r.headers["retry-after"]) <= 2
    await asyncio.sleep(2.2)
    assert (await login(client, name)).status_code == 200


async def test_per_ip_failure_limit(make_app, make_client):
    app = make_app(login_max_failures_per_ip=3)
    setup = make_client(ip=random_ip(), application=app)
    victim = unique("ipv")
    assert (await register(setup, victim)).status_code == 201
    attacker_ip = random_ip()
    attacker = make_client(ip=attacker_ip, application=app)
    for _ in range(3):  # three different accounts: the per-account limit is not reached
        assert (await login(attacker, unique("ghost"), "guess")).status_code == 401
    r = await login(attacker, victim)
    assert_error(r, 429)
    assert int(r.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in attacker.cookies
    # Another address is not affected, nor is the account itself.
    assert (await login(make_client(ip=random_ip(), application=app), victim)).status_code == 200


async def test_per_ip_registration_limit(make_app, make_client, pool):
    app = make_app(register_max_per_ip=2)
    client = make_client(ip=random_ip(), application=app)
    for _ in range(2):
        assert (await register(client, unique("rl"))).status_code == 201
    before = await user_count(pool)
    r = await register(client, unique("rl"))
    assert_error(r, 429)
    assert int(r.headers["retry-after"]) > 0
    assert await user_count(pool) == before
    assert (await register(make_client(ip=random_ip(), application=app), unique("rl"))).status_code == 201


async def test_client_ip_is_never_stored_in_clear_in_redis(make_client, redis):
    ip = f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"
    client = make_client(ip=ip)
    name = unique("ip")
    assert (await register(client, name)).status_code == 201
    assert (await login(client, name, "wrong password")).status_code == 401
    assert (await login(client, name)).status_code == 200
    keys = [k async for k in redis.scan_iter(count=1000)]
    assert any(k.startswith(b"login:fail:ip:") for k in keys)
    assert any(k.startswith(b"register:ip:") for k in keys)
    for key in keys:
        assert ip.encode() not in key
        if await redis.type(key) == b"string":
            assert ip.encode() not in (await redis.get(key) or b"")


async def test_session_lives_in_redis_and_logout_revokes_it(make_client, redis, settings):
    client = make_client()
    await register_and_login(client)
    token = client.cookies[SESSION_COOKIE]
    key = "session:" + hashlib.sha256(token.encode()).hexdigest()
    assert await redis.exists(key) == 1
    assert 0 < await redis.ttl(key) <= settings.session_ttl_s
    assert token.encode() not in b"".join([k async for k in redis.scan_iter(count=1000)])

    r = await client.post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert await redis.exists(key) == 0

    replay = make_client()
    replay.cookies.set(SESSION_COOKIE, token)
    assert_error(await replay.get("/api/v1/me"), 401)


async def test_unknown_session_cookie_is_anonymous(make_client):
    client = make_client()
    client.cookies.set(SESSION_COOKIE, "forged-" + uuid.uuid4().hex)
    assert_error(await client.get("/api/v1/me"), 401)
    client.cookies.set(SESSION_COOKIE, "x" * 5000)
    assert_error(await client.get("/api/v1/me"), 401)
