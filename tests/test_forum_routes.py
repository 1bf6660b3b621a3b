"""Forum routes through the real app: each route's normal path and each class of bad input.

Every 4xx is checked to have written nothing: row counts of the org's forum tables, `signal` and
`signal_outbox` are compared before and after (`snapshot_counts`). Invariants (signals, history, views,
counters, mentions, anti-abuse, XSS) are in test_forum_invariants.py.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.factories import (
    UNKNOWN,
    Forum,
    Scene,
    assert_error,
    make_category,
    make_forum,
    make_scene,
    make_thread,
    rejected,
    tenant_fetch,
    unique,
)

MALFORMED = ("not-a-uuid", "123", "%20", "00000000-0000-0000-0000-00000000000g")


@pytest.fixture
async def forum(make_client) -> Forum:
    return await make_forum(make_client)


# --- the route table ---


def body_routes(forum: Forum, scene: Scene) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every route with a JSON body: name -> (method, path, a valid body)."""
    b, t, p = forum.base, scene.thread["id"], scene.reply["id"]
    return {
        "create_category": ("POST", f"{b}/categories", {"name": unique("Cat ")}),
        "create_thread": ("POST", f"{b}/threads", {"category": "general", "title": "A title", "body": "x"}),
        "reply": ("POST", f"{b}/threads/{t}/posts", {"body": unique("a reply ")}),
        "solve": ("POST", f"{b}/threads/{t}/solve", {"post_id": p}),
        "edit_post": ("PATCH", f"{b}/posts/{p}", {"body": "edited", "edit_reason": "typo"}),
        "add_reaction": ("POST", f"{b}/posts/{p}/reactions", {"type": "like"}),
        "preview": ("POST", f"{b}/preview", {"body": "*hi*"}),
        "put_settings": ("PUT", f"{b}/settings", {"posting": {"enabled": False}}),
    }


WRONG_TYPES: dict[str, list[dict[str, Any]]] = {
    "create_category": [{"name": 5}, {"name": "N", "qa_mode": "yes"}, {"name": "N", "position": "first"}],
    "create_thread": [
        {"category": "general", "title": 7, "body": "x"},
        {"category": ["general"], "title": "A title", "body": "x"},
        {"category": "general", "title": "A title", "body": None},
    ],
    "reply": [{"body": 1}, {"body": "x", "reply_to_post_id": 5}, {"body": {"md": "x"}}],
    "solve": [{"post_id": 1}, {"post_id": None}],
    "edit_post": [{"body": True}, {"body": "x", "edit_reason": 3}],
    "add_reaction": [{"type": 1}, {"type": "love"}, {"type": "LIKE"}],
    "preview": [{"body": []}, {"body": ""}],
    "put_settings": [{"posting": {"enabled": "no"}}, {"posting": []}, {"posting": {"reply_interval_s": -1}}],
}
MISSING: dict[str, dict[str, Any]] = {
    "create_category": {"slug": "x"},
    "create_thread": {"category": "general", "title": "A title"},
    "reply": {"reply_to_post_id": None},
    "solve": {},
    "edit_post": {"edit_reason": "why"},
    "add_reaction": {},
    "preview": {},
}
RAW_BAD_JSON = (
    b"{not json",
    b"",
    b"[]",
    b"null",
    b'"text"',
    b'{"body": "unterminated',
    '{"body": "\udc80"}'.encode(errors="surrogatepass"),
)


async def send(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    return await client.request(method, path, **kwargs)


def client_for(forum: Forum, name: str) -> Any:
    """The client allowed to call this route (admin for admin routes, the thread's author otherwise)."""
    return forum.admin if name in ("create_category", "put_settings") else forum.member


@pytest.mark.parametrize("name", list(WRONG_TYPES))
async def test_invalid_json_is_400_and_writes_nothing(forum, pool, name):
    scene = await make_scene(forum)
    method, path, _ = body_routes(forum, scene)[name]
    client = client_for(forum, name)
    for raw in RAW_BAD_JSON:
        await rejected(
            pool,
            forum,
            400,
            send(client, method, path, content=raw, headers={"content-type": "application/json"}),
        )


@pytest.mark.parametrize("name", list(WRONG_TYPES))
async def test_wrong_types_missing_and_unknown_fields_are_400(forum, pool, name):
    scene = await make_scene(forum)
    method, path, valid = body_routes(forum, scene)[name]
    client = client_for(forum, name)
    bad = [*WRONG_TYPES[name], {**valid, "bogus": 1}]
    if name in MISSING:
        bad.append(MISSING[name])
    if name == "put_settings":
        bad.append({"posting": {**valid["posting"], "bogus": 1}})
    for body in bad:
        out = await rejected(pool, forum, 400, send(client, method, path, json=body))
        assert out["detail"], body


@pytest.mark.parametrize("name", list(WRONG_TYPES))
async def test_oversize_body_is_413_and_writes_nothing(forum, pool, name):
    scene = await make_scene(forum)
    method, path, _ = body_routes(forum, scene)[name]
    huge = b'{"body": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    await rejected(
        pool,
        forum,
        413,
        send(client_for(forum, name), method, path, content=huge, headers={"content-type": "application/json"}),
    )


@pytest.mark.parametrize("name", list(WRONG_TYPES))
async def test_anonymous_writes_on_a_public_org_are_401(forum, pool, name):
    scene = await make_scene(forum)
    method, path, valid = body_routes(forum, scene)[name]
    await rejected(pool, forum, 401, send(forum.anon, method, path, json=valid))


async def test_anonymous_delete_routes_are_401(forum, pool):
    scene = await make_scene(forum)
    p = scene.reply["id"]
    await rejected(pool, forum, 401, forum.anon.delete(f"{forum.base}/posts/{p}"))
    await rejected(pool, forum, 401, forum.anon.delete(f"{forum.base}/posts/{p}/reactions/like"))
    await rejected(pool, forum, 401, forum.anon.get(f"{forum.base}/settings"))
    await rejected(pool, forum, 401, forum.anon.get(f"{forum.base}/posts/{p}/history"))


@pytest.mark.parametrize("name", [n for n in WRONG_TYPES if n != "preview"])
async def test_signed_in_non_member_of_a_public_org_cannot_write(forum, pool, name):
    scene = await make_scene(forum)
    method, path, valid = body_routes(forum, scene)[name]
    await rejected(pool, forum, 403, send(forum.outsider, method, path, json=valid))


async def test_public_org_reads_are_open_to_anonymous(forum):
    scene = await make_scene(forum)
    b = forum.base
    for path in (
        f"{b}/categories",
        f"{b}/threads",
        f"{b}/categories/help/threads",
        f"{b}/threads/{scene.thread['id']}",
        f"{b}/threads/{scene.thread['slug']}",
        f"{b}/posts/{scene.reply['id']}",
    ):
        r = await forum.anon.get(path)
        assert r.status_code == 200, (path, r.text)
    post = (await forum.anon.get(f"{b}/posts/{scene.reply['id']}")).json()["post"]
    assert post["body"] is None and post["html"]  # the markdown source is for its author and moderators


async def test_private_org_is_404_to_non_members_on_every_route(make_client, pool):
    forum = await make_forum(make_client, visibility="private")
    scene = await make_scene(forum)
    b, t, p = forum.base, scene.thread["id"], scene.reply["id"]
    calls = [
        ("GET", f"{b}/categories", None),
        ("GET", f"{b}/categories/help/threads", None),
        ("GET", f"{b}/threads", None),
        ("GET", f"{b}/threads/{t}", None),
        ("GET", f"{b}/posts/{p}", None),
        ("GET", f"{b}/posts/{p}/history", None),
        ("DELETE", f"{b}/posts/{p}", None),
        ("DELETE", f"{b}/posts/{p}/reactions/like", None),
        ("GET", f"{b}/settings", None),
        *((m, path, body) for m, path, body in body_routes(forum, scene).values()),
    ]
    for client in (forum.outsider, forum.anon):
        for method, path, body in calls:
            await rejected(pool, forum, 404, send(client, method, path, json=body))
    # Members see it.
    assert (await forum.member.get(f"{b}/threads/{t}")).status_code == 200


async def test_unknown_org_is_404(forum):
    for slug in ("no_such_org_here", "Bad-Slug", "x" * 80):
        assert_error(await forum.admin.get(f"/api/v1/o/{slug}/categories"), 404)
        assert_error(await forum.admin.post(f"/api/v1/o/{slug}/preview", json={"body": "x"}), 404)


# --- ids ---


async def test_malformed_and_unknown_ids_are_404(forum, pool):
    scene = await make_scene(forum)
    b, c = forum.base, forum.member
    for bad in (*MALFORMED, UNKNOWN):
        for method, path, body in (
            ("GET", f"{b}/threads/{bad}", None),
            ("POST", f"{b}/threads/{bad}/posts", {"body": "hello"}),
            ("POST", f"{b}/threads/{bad}/solve", {"post_id": scene.reply["id"]}),
            ("GET", f"{b}/posts/{bad}", None),
            ("PATCH", f"{b}/posts/{bad}", {"body": "x"}),
            ("GET", f"{b}/posts/{bad}/history", None),
            ("DELETE", f"{b}/posts/{bad}", None),
            ("POST", f"{b}/posts/{bad}/reactions", {"type": "like"}),
            ("DELETE", f"{b}/posts/{bad}/reactions/like", None),
            ("GET", f"{b}/categories/{bad}/threads", None),
        ):
            await rejected(pool, forum, 404, send(c, method, path, json=body))
        # ids inside bodies
        await rejected(pool, forum, 404, c.post(f"{b}/threads/{scene.thread['id']}/solve", json={"post_id": bad}))
        await rejected(
            pool,
            forum,
            404,
            c.post(f"{b}/threads/{scene.thread['id']}/posts", json={"body": "hi", "reply_to_post_id": bad}),
        )
    await rejected(pool, forum, 404, c.post(f"{b}/threads", json={"category": "nope", "title": "Title", "body": "x"}))
    await rejected(pool, forum, 404, c.delete(f"{b}/posts/{scene.reply['id']}/reactions/love"))


# --- categories ---


async def test_list_categories_with_counts_and_latest_activity(forum):
    scene = await make_scene(forum)
    r = await forum.anon.get(f"{forum.base}/categories")
    assert r.status_code == 200, r.text
    cats = {c["slug"]: c for c in r.json()["categories"]}
    assert set(cats) == {"general", "help"}
    assert cats["help"]["qa_mode"] and not cats["general"]["qa_mode"]
    assert cats["help"]["thread_count"] == 1 and cats["help"]["post_count"] == 2
    assert cats["help"]["latest_thread"]["id"] == scene.thread["id"]
    assert cats["help"]["last_activity_at"] is not None
    assert cats["general"]["thread_count"] == 0 and cats["general"]["latest_thread"] is None


async def test_create_category(forum, pool):
    cat = await make_category(forum.admin, forum.slug, "Show and Tell", description="Projects", position=3)
    assert cat["slug"] == "show-and-tell" and cat["position"] == 3 and cat["thread_count"] == 0
    rows = await tenant_fetch(pool, forum.slug, "SELECT * FROM signal WHERE type = 'forum.category.created'")
    assert any(r["payload"] and cat["id"] in r["payload"] for r in rows)
    b = forum.base
    await rejected(pool, forum, 409, forum.admin.post(f"{b}/categories", json={"name": "Show and Tell"}))
    await rejected(pool, forum, 403, forum.member.post(f"{b}/categories", json={"name": "Mine"}))
    await rejected(pool, forum, 403, forum.moderator.post(f"{b}/categories", json={"name": "Mods"}))
    for body in (
        {"name": ""},
        {"name": "n" * 81},
        {"name": "Ok", "slug": "Bad Slug"},
        {"name": "Ok", "slug": "-x"},
        {"name": "Ok", "position": -1},
        {"name": "Ok", "description": "d" * 2001},
    ):
        await rejected(pool, forum, 400, forum.admin.post(f"{b}/categories", json=body))


# --- thread lists and pagination ---


@pytest.mark.parametrize("where", ["latest", "category"])
async def test_thread_lists_paginate_newest_activity_first(forum, pool, where):
    made = [(await make_thread(forum.member, forum.slug, "general"))["thread"]["id"] for _ in range(5)]
    await make_thread(forum.member, forum.slug, "help")  # not in `general`
    path = f"{forum.base}/threads" if where == "latest" else f"{forum.base}/categories/general/threads"
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        r = await forum.anon.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["threads"]) <= 2
        seen += [t["id"] for t in page["threads"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    general = [t for t in seen if t in made]
    assert general == list(reversed(made))
    assert len(seen) == (6 if where == "latest" else 5)
    assert len(set(seen)) == len(seen)
    # Bad cursors and limits are 400, never a 500.
    bad_cursors = [
        "!!!",
        "abc",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'["x"]').decode(),
        base64.urlsafe_b64encode(b'["not a time", "x"]').decode(),
        base64.urlsafe_b64encode(b'["2024-01-01T00:00:00+00:00", "not-a-uuid"]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "a" * 5000,
    ]
    for cursor in bad_cursors:
        await rejected(pool, forum, 400, forum.member.get(path, params={"cursor": cursor}))
    # A cursor with a timezone-less time is not a crash either.
    naive = base64.urlsafe_b64encode(f'["2024-01-01T00:00:00", "{UNKNOWN}"]'.encode()).decode()
    assert (await forum.member.get(path, params={"cursor": naive})).status_code in (200, 400)
    for limit in ("0", "-1", "101", "abc", "1.5", "99999999999999999999"):
        await rejected(pool, forum, 400, forum.member.get(path, params={"limit": limit}))
