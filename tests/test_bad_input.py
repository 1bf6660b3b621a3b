"""Issue 11 item 3: hostile input that used to answer 500 is a 400 with a field-level message, and writes
nothing: NUL characters anywhere in a JSON body, a path parameter or a query parameter (checked once, at
the boundary); JSON nested 1,000 deep; cursors holding dates that overflow when converted to UTC."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.factories import (
    Forum,
    assert_error,
    make_forum,
    make_scene,
    register_and_login,
    snapshot_counts,
    unique,
)

NUL = "\x00"


@pytest.fixture
async def forum(make_client) -> Forum:  # type: ignore[no-untyped-def]
    return await make_forum(make_client)


async def user_and_org_counts(pool: Any) -> tuple[int, int, int]:
    async with pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM users"),
            await conn.fetchval("SELECT count(*) FROM orgs"),
            await conn.fetchval("SELECT count(*) FROM api_tokens"),
        )


def field_keys(body: dict[str, Any]) -> list[str]:
    return [str(e.get("key")) for e in body.get("extra") or []]


async def expect_400_nothing_written(pool: Any, forum: Forum, response_coro: Any, key: str) -> dict[str, Any]:
    before = (await snapshot_counts(pool, forum.slug), await user_and_org_counts(pool))
    r = await response_coro
    body = assert_error(r, 400)
    assert key in field_keys(body), (key, body)
    assert (await snapshot_counts(pool, forum.slug), await user_and_org_counts(pool)) == before
    return body


async def test_nul_in_any_json_text_field_is_400_naming_the_field(forum: Forum, pool: Any, make_client: Any) -> None:
    scene = await make_scene(forum)
    b, t, p = forum.base, scene.thread["id"], scene.reply["id"]
    cases: list[tuple[Any, str, str, dict[str, Any], str]] = [
        (forum.member, "POST", f"{b}/threads", {"category": "general", "title": f"a{NUL}b", "body": "x"}, "title"),
        (forum.member, "POST", f"{b}/threads", {"category": "general", "title": "ok", "body": f"x{NUL}"}, "body"),
        (forum.member, "POST", f"{b}/threads", {"category": f"gen{NUL}", "title": "ok", "body": "x"}, "category"),
        (forum.member, "POST", f"{b}/threads/{t}/posts", {"body": f"{NUL}"}, "body"),
        (
            forum.member,
            "PATCH",
            f"{b}/posts/{scene.first_post['id']}",
            {"body": "e", "edit_reason": NUL},
            "edit_reason",
        ),
        (forum.admin, "POST", f"{b}/categories", {"name": f"C{NUL}"}, "name"),
        (forum.admin, "POST", f"{b}/categories", {"name": "C", "slug": f"c{NUL}"}, "slug"),
        (forum.member, "POST", f"{b}/posts/{p}/flags", {"reason": "other", "notes": f"n{NUL}"}, "notes"),
        (forum.member, "POST", f"{b}/preview", {"body": f"*{NUL}*"}, "body"),
        (forum.admin, "PUT", f"{b}/agents/forum_welcome_agent", {"enabled": True, "config": {"g": NUL}}, "config.g"),
        (forum.admin, "PUT", f"{b}/agents/forum_welcome_agent", {"enabled": True, "config": {NUL: 1}}, "config"),
        (forum.admin, "POST", "/api/v1/orgs", {"slug": unique("o"), "name": f"N{NUL}", "visibility": "public"}, "name"),
        (
            forum.admin,
            "POST",
            f"/api/v1/orgs/{forum.slug}/members",
            {"username": f"x{NUL}", "role": "member"},
            "username",
        ),
        (forum.admin, "POST", f"/api/v1/orgs/{forum.slug}/tokens", {"name": f"t{NUL}", "scopes": ["read"]}, "name"),
    ]
    for client, method, path, payload, key in cases:
        body = await expect_400_nothing_written(pool, forum, client.request(method, path, json=payload), key)
        assert "NUL" in body["detail"], body


async def test_nul_in_register_and_login_is_400(forum: Forum, pool: Any, make_client: Any) -> None:
    anon = make_client()
    name = unique("nul")
    for payload, key in (
        ({"username": f"{name}{NUL}", "email": f"{name}@example.com", "password": "correct horse battery"}, "username"),
        ({"username": name, "email": f"{name}@exa{NUL}mple.com", "password": "correct horse battery"}, "email"),
        ({"username": name, "email": f"{name}@example.com", "password": f"correct horse{NUL}"}, "password"),
    ):
        await expect_400_nothing_written(pool, forum, anon.post("/api/v1/auth/register", json=payload), key)
    await expect_400_nothing_written(
        pool, forum, anon.post("/api/v1/auth/login", json={"login": f"a{NUL}", "password": "x"}), "login"
    )


async def test_nul_in_a_path_or_query_parameter_is_400(forum: Forum, pool: Any) -> None:
    scene = await make_scene(forum)
    b = forum.base
    for client, method, url, key in (
        (forum.member, "GET", f"{b}/threads/abc%00def", "ref"),
        (forum.member, "GET", f"/api/v1/o/{forum.slug}%00x/categories", "org"),
        (forum.member, "GET", f"{b}/search?q=sour%00dough", "q"),
        (forum.member, "GET", f"{b}/search?q=x&category=gen%00eral", "category"),
        (forum.member, "GET", f"{b}/threads?cursor=%00", "cursor"),
        (forum.member, "GET", f"{b}/categories/gen%00eral/threads", "slug"),
        (forum.member, "POST", f"{b}/posts/{scene.reply['id']}%00/reactions", "post_id"),
    ):
        headers = {"x-csrftoken": client.cookies["csrftoken"]} if method == "POST" else {}
        kwargs: dict[str, Any] = {"json": {"type": "like"}} if method == "POST" else {}
        await expect_400_nothing_written(pool, forum, client.request(method, url, headers=headers, **kwargs), key)


async def test_json_nested_1000_deep_is_400_and_writes_nothing(forum: Forum, pool: Any, make_client: Any) -> None:
    scene = await make_scene(forum)
    deep = "[" * 1000 + "]" * 1000
    for client, method, path, raw, key in (
        (forum.member, "POST", f"{forum.base}/threads/{scene.thread['id']}/posts", '{"body": ' + deep + "}", "body"),
        (forum.member, "POST", f"{forum.base}/threads", deep, "body"),
        (
            forum.admin,
            "PUT",
            f"{forum.base}/agents/forum_welcome_agent",
            '{"enabled": true, "config": {"a": ' + deep + "}}",
            "config.a",
        ),
        (make_client(), "POST", "/api/v1/auth/register", '{"username": ' + deep + "}", "username"),
    ):
        r = client.request(method, path, content=raw.encode(), headers={"content-type": "application/json"})
        body = await expect_400_nothing_written(pool, forum, r, key)
        assert "nested" in body["detail"], body


def cursor_of(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


EXTREME_DATES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999-00:01")


@pytest.mark.parametrize("when", EXTREME_DATES)
async def test_cursors_with_dates_that_overflow_utc_are_400(forum: Forum, pool: Any, when: str) -> None:
    scene = await make_scene(forum)
    cursor = cursor_of(when, scene.first_post["id"])
    for client, url in (
        (forum.member, f"{forum.base}/threads?cursor={cursor}"),
        (forum.member, f"{forum.base}/categories/general/threads?cursor={cursor}"),
        (forum.member, f"{forum.base}/threads/{scene.thread['id']}?cursor={cursor}"),
        (forum.moderator, f"{forum.base}/moderation/queue?cursor={cursor}"),
    ):
        await expect_400_nothing_written(pool, forum, client.get(url), "cursor")


async def test_a_forged_naive_cursor_date_is_400(forum: Forum, pool: Any) -> None:
    scene = await make_scene(forum)
    cursor = cursor_of("2020-01-01T00:00:00", scene.first_post["id"])
    await expect_400_nothing_written(pool, forum, forum.member.get(f"{forum.base}/threads?cursor={cursor}"), "cursor")


async def test_ordinary_text_with_a_literal_backslash_u0000_is_accepted(forum: Forum, make_client: Any) -> None:
    """The NUL check looks at decoded strings: the six characters `\\u0000` in a code sample are fine."""
    scene = await make_scene(forum)
    r = await forum.member.post(
        f"{forum.base}/threads/{scene.thread['id']}/posts", json={"body": "use `\\u0000` to write NUL in JSON"}
    )
    assert r.status_code == 201, r.text
    someone = make_client()
    await register_and_login(someone)
