"""Factories as plain functions (STYLE 10)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def register_and_login(
    client: httpx.AsyncClient, username: str | None = None, password: str = "correct horse battery"
) -> dict[str, Any]:
    username = username or unique("user")
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/auth/login", json={"login": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["user"]


async def create_org(client: httpx.AsyncClient, visibility: str = "private", slug: str | None = None) -> dict[str, Any]:
    slug = slug or unique("org")
    r = await client.post("/api/v1/orgs", json={"slug": slug, "name": f"Org {slug}", "visibility": visibility})
    assert r.status_code == 201, r.text
    return r.json()["org"]


# --- forum ----------------------------------------------------------------------------------------------

FORUM_TABLES = (
    "category",
    "thread",
    "post",
    "reaction",
    "post_revision",
    "mention",
    "signal",
    "signal_outbox",
)


async def snapshot_counts(pool: Any, slug: str) -> dict[str, int]:
    """Row counts of the org's forum tables and its signal/outbox tables (compare before/after a 4xx)."""
    from engine.tenancy import quote_schema, schema_for

    schema = quote_schema(schema_for(slug))
    async with pool.acquire() as conn:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {schema}.{t}") for t in FORUM_TABLES}


async def tenant_fetch(pool: Any, slug: str, sql: str, *args: Any) -> list[Any]:
    """Run a query with the org's schema first on the search_path (tests only: reads and fix-ups)."""
    from engine.tenancy import quote_schema, schema_for

    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {quote_schema(schema_for(slug))}, public")
        return list(await conn.fetch(sql, *args))


async def join_org(client: httpx.AsyncClient, slug: str) -> None:
    r = await client.post(f"/api/v1/orgs/{slug}/join")
    assert r.status_code == 200, r.text


async def add_member(admin: httpx.AsyncClient, slug: str, username: str, role: str = "member") -> None:
    r = await admin.post(f"/api/v1/orgs/{slug}/members", json={"username": username, "role": role})
    assert r.status_code in (200, 201), r.text


async def set_posting(admin: httpx.AsyncClient, slug: str, **limits: Any) -> dict[str, Any]:
    """PUT the org's posting limits (unspecified ones take their defaults)."""
    r = await admin.put(f"/api/v1/o/{slug}/settings", json={"posting": limits})
    assert r.status_code == 200, r.text
    return r.json()


async def make_category(admin: httpx.AsyncClient, org: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
    r = await admin.post(f"/api/v1/o/{org}/categories", json={"name": name or unique("Cat "), **fields})
    assert r.status_code == 201, r.text
    return r.json()["category"]


async def make_thread(
    client: httpx.AsyncClient, slug: str, category: str, title: str | None = None, body: str | None = None
) -> dict[str, Any]:
    """POST a thread; returns `{thread, post}`."""
    r = await client.post(
        f"/api/v1/o/{slug}/threads",
        json={"category": category, "title": title or unique("Thread "), "body": body or unique("Body ")},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def make_reply(client: httpx.AsyncClient, slug: str, thread_id: str, body: str | None = None) -> dict[str, Any]:
    r = await client.post(f"/api/v1/o/{slug}/threads/{thread_id}/posts", json={"body": body or unique("Reply ")})
    assert r.status_code == 201, r.text
    return r.json()["post"]


@dataclass
class Forum:
    """A public or private org with an admin, a moderator, a member, a signed-in outsider, an anonymous
    client, a plain category (`general`) and a Q&A category (`help`)."""

    slug: str
    base: str
    admin: Any
    moderator: Any
    member: Any
    outsider: Any
    anon: Any
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    general: dict[str, Any] = field(default_factory=dict)
    help: dict[str, Any] = field(default_factory=dict)


async def make_forum(make_client: Any, visibility: str = "public", posting_enabled: bool = False) -> Forum:
    """Build a `Forum`. Posting limits are off unless `posting_enabled` (anti-abuse tests turn them on)."""
    octet = random.randint(1, 250)
    admin, moderator, member, outsider, anon = (
        make_client(ip=f"10.{octet}.{i}.{random.randint(1, 250)}") for i in range(5)
    )
    users = {}
    for name, client in (
        ("admin", admin),
        ("moderator", moderator),
        ("member", member),
        ("outsider", outsider),
    ):
        users[name] = await register_and_login(client, unique(name[:4]))
    org = await create_org(admin, visibility=visibility)
    slug = org["slug"]
    await add_member(admin, slug, users["moderator"]["username"], "moderator")
    await add_member(admin, slug, users["member"]["username"], "member")
    if not posting_enabled:
        await set_posting(admin, slug, enabled=False)
    forum = Forum(
        slug=slug,
        base=f"/api/v1/o/{slug}",
        admin=admin,
        moderator=moderator,
        member=member,
        outsider=outsider,
        anon=anon,
        users=users,
    )
    forum.general = await make_category(admin, slug, "General", slug="general")
    forum.help = await make_category(admin, slug, "Help", slug="help", qa_mode=True)
    return forum


UNKNOWN = str(uuid.uuid4())  # an id nothing has


# --- rejected requests ------------------------------------------------------------------------------


def assert_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status_code"] == status and isinstance(body["detail"], str), body
    return body


async def rejected(pool: Any, forum: Forum, status: int, request: Any) -> dict[str, Any]:
    """Await `request` (a coroutine returning a response), expect `status`, and check nothing was written."""
    before = await snapshot_counts(pool, forum.slug)
    r = await request
    body = assert_error(r, status)
    assert await snapshot_counts(pool, forum.slug) == before, f"a {status} wrote rows"
    return body


@dataclass
class Scene:
    """A Q&A thread by the member with a reply by the moderator."""

    thread: dict[str, Any]
    first_post: dict[str, Any]
    reply: dict[str, Any]


async def make_scene(forum: Forum) -> Scene:
    created = await make_thread(forum.member, forum.slug, "help", "Why is my starter not bubbling?")
    reply = await make_reply(forum.moderator, forum.slug, created["thread"]["id"], "Check the temperature.")
    return Scene(thread=created["thread"], first_post=created["post"], reply=reply)
