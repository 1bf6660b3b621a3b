"""Issue 11 item 9: a read-only API token is refused (403) on EVERY unsafe route, enforced at the
boundary. The test walks the OpenAPI document, so a route added later is covered without editing it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.factories import Forum, make_forum, make_scene, snapshot_counts
from tests.test_csrf_tokens import bearer, mint_token

UNSAFE = ("post", "put", "patch", "delete")


def plausible_body(path: str, forum: Forum, scene: Any) -> dict[str, Any]:
    """A body the route would accept from a writer, so a 403 cannot come from validation instead."""
    bodies = {
        "/auth/login": {"login": forum.users["admin"]["username"], "password": "correct horse battery"},
        "/auth/register": {"username": f"s{uuid.uuid4().hex[:8]}", "email": "s@example.com", "password": "x" * 12},
        "/orgs": {"slug": f"s{uuid.uuid4().hex[:8]}", "name": "S", "visibility": "public"},
        "/members": {"username": forum.users["outsider"]["username"], "role": "member"},
        "/tokens": {"name": "more", "scopes": ["admin"]},
        "/reactions": {"type": "like"},
        "/categories": {"name": "Scoped"},
        "/threads": {"category": "general", "title": "A title", "body": "x"},
        "/posts": {"body": "a reply"},
        "/settings": {"posting": {"enabled": False}},
        "/preview": {"body": "*x*"},
        "/solve": {"post_id": scene.reply["id"]},
        "/flags": {"reason": "spam"},
        "/resolve": {"action": "dismiss"},
        "/related": {"title": "a", "body": "b"},
        "/feedback": {"helpful": True},
        "/replay": {"dry_run": True},
        "/read": {"all": True},
        "/dry-run": {},
    }
    for suffix, body in bodies.items():
        if path.endswith(suffix):
            return body
    if path.endswith("/posts/{post_id}"):
        return {"body": "edited"}
    if re.search(r"/agents/\{package\}$", path):
        return {"enabled": False}
    return {}


def fill(path: str, forum: Forum, scene: Any) -> str:
    values = {
        "org": forum.slug,
        "post_id": scene.reply["id"],
        "ref": scene.thread["id"],
        "reaction": "like",
        "package": "forum_welcome_agent",
        "username": forum.users["member"]["username"],
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


# POST routes that only compute an answer (`opt={"reads_only": True}`); the snapshot below shows they change nothing.
READS_ONLY_POSTS = ("POST /api/v1/o/{org}/preview", "POST /api/v1/o/{org}/related")


async def test_a_read_only_token_is_refused_on_every_unsafe_route_of_the_openapi_document(
    app: Any, make_client: Any, pool: Any
) -> None:
    forum = await make_forum(make_client)
    scene = await make_scene(forum)
    token = (await mint_token(forum.admin, forum.slug, ["read"]))["token"]
    # the member has an unread notification, so "mark all read" would change something
    r = await forum.member.post(f"{forum.base}/threads/{scene.thread['id']}/posts", json={"body": "hi"})
    assert r.status_code == 201
    doc = (await forum.anon.get("/schema/openapi.json")).json()
    routes = [(m, p) for p, item in doc["paths"].items() for m in item if m in UNSAFE and p.startswith("/api/")]
    assert len(routes) >= 20 and ("post", "/api/v1/o/{org}/notifications/read") in routes, routes
    async with pool.acquire() as conn:
        tokens_before = await conn.fetchval("SELECT count(*) FROM api_tokens")
        users_before = await conn.fetchval("SELECT count(*) FROM users")
    before = await snapshot_counts(pool, forum.slug)
    reader: httpx.AsyncClient = bearer(app, token)
    answered: dict[str, int] = {}
    async with reader:
        assert (await reader.get(f"{forum.base}/categories")).status_code == 200  # it may read
        for method, path in routes:
            url = fill(path, forum, scene)
            kwargs: dict[str, Any] = {}
            if method != "delete":
                kwargs["json"] = plausible_body(path, forum, scene)
            r = await reader.request(method.upper(), url, **kwargs)
            answered[f"{method.upper()} {path}"] = r.status_code
            if r.status_code == 403:
                assert r.json()["status_code"] == 403, (path, r.text)
    computed = {route: answered.pop(route) for route in READS_ONLY_POSTS}
    assert computed == dict.fromkeys(READS_ONLY_POSTS, 200), computed  # answers that change nothing are reads
    allowed = {route: status for route, status in answered.items() if status != 403}
    assert not allowed, f"a read-only token was not refused: {allowed}"
    assert await snapshot_counts(pool, forum.slug) == before
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM api_tokens") == tokens_before
        assert await conn.fetchval("SELECT count(*) FROM users") == users_before
        unread = await conn.fetchval(
            f'SELECT count(*) FROM "org_{forum.slug}".notification WHERE user_id = $1 AND read_at IS NULL',
            uuid.UUID(forum.users["member"]["id"]),
        )
    assert unread >= 1  # notifications were not marked read


async def test_a_write_token_still_writes(app: Any, make_client: Any) -> None:
    forum = await make_forum(make_client)
    token = (await mint_token(forum.admin, forum.slug, ["read", "write"]))["token"]
    async with bearer(app, token) as writer:
        r = await writer.post(f"{forum.base}/threads", json={"category": "general", "title": "By token", "body": "x"})
        assert r.status_code == 201, r.text
        r = await writer.post(f"{forum.base}/notifications/read", json={"all": True})
        assert r.status_code == 200, r.text
