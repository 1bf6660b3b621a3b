"""Forum invariants through the real app: signal metadata (spec §7.4), views, counters under concurrency,
mentions, anti-abuse limits and XSS in posts."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from tests.factories import (
    Forum,
    add_member,
    make_forum,
    make_reply,
    make_scene,
    make_thread,
    register_and_login,
    rejected,
    set_posting,
    snapshot_counts,
    tenant_fetch,
    unique,
)


@pytest.fixture
async def forum(make_client) -> Forum:
    return await make_forum(make_client)


async def signals_of(pool: Any, slug: str, type_: str) -> list[dict[str, Any]]:
    rows = await tenant_fetch(pool, slug, "SELECT * FROM signal WHERE type = $1 ORDER BY id", type_)
    out = []
    for row in rows:
        item = dict(row)
        if isinstance(item["payload"], str):
            item["payload"] = msgspec.json.decode(item["payload"])
        out.append(item)
    return out


# --- signals ---


async def test_every_write_emits_its_signal_with_metadata(forum, pool):
    b = forum.base
    ids: dict[str, str] = {}

    def rid(name: str) -> dict[str, str]:
        ids[name] = str(uuid.uuid4())
        return {"X-Request-Id": ids[name]}

    started = datetime.now(UTC) - timedelta(seconds=1)
    admin, member, moderator = forum.admin, forum.member, forum.moderator
    r = await admin.post(f"{b}/categories", json={"name": "Brewing"}, headers=rid("category"))
    assert r.status_code == 201
    r = await member.post(
        f"{b}/threads", json={"category": "help", "title": "Stuck?", "body": "q"}, headers=rid("thread")
    )
    thread, first = r.json()["thread"], r.json()["post"]
    r = await moderator.post(f"{b}/threads/{thread['id']}/posts", json={"body": "a"}, headers=rid("reply"))
    reply = r.json()["post"]
    calls = [
        (
            "edit",
            member.patch(f"{b}/posts/{first['id']}", json={"body": "q2", "edit_reason": "more"}, headers=rid("edit")),
        ),
        (
            "react",
            member.post(f"{b}/posts/{reply['id']}/reactions", json={"type": "upvote"}, headers=rid("react")),
        ),
        (
            "solve",
            member.post(f"{b}/threads/{thread['id']}/solve", json={"post_id": reply["id"]}, headers=rid("solve")),
        ),
        ("view", member.get(f"{b}/threads/{thread['id']}", headers=rid("view"))),
        ("delete", moderator.delete(f"{b}/posts/{reply['id']}", headers=rid("delete"))),
    ]
    for name, call in calls:
        r = await call
        assert r.status_code < 300, (name, r.text)
    users = {k: v["id"] for k, v in forum.users.items()}
    expected = {
        "forum.category.created": ("category", users["admin"]),
        "forum.thread.created": ("thread", users["member"]),
        "forum.post.edited": ("edit", users["member"]),
        "forum.post.reacted": ("react", users["member"]),
        "forum.thread.solved": ("solve", users["member"]),
        "forum.thread.viewed": ("view", users["member"]),
        "forum.post.deleted": ("delete", users["moderator"]),
    }
    for type_, (request, actor) in expected.items():
        rows = [s for s in await signals_of(pool, forum.slug, type_) if str(s["correlation_id"]) == ids[request]]
        assert len(rows) == 1, type_
        s = rows[0]
        assert s["actor_type"] == "user" and s["source"] == "web" and s["actor_id"] == actor, type_
        assert started <= s["occurred_at"] <= datetime.now(UTC), type_
    created = await signals_of(pool, forum.slug, "forum.post.created")
    by_post = {s["payload"]["post_id"]: s for s in created}
    assert (
        str(by_post[first["id"]]["correlation_id"]) == ids["thread"]
        and by_post[first["id"]]["payload"]["is_first_post"]
    )
    assert str(by_post[reply["id"]]["correlation_id"]) == ids["reply"]
    assert by_post[reply["id"]]["actor_id"] == users["moderator"]
    # The edit's signal says which revision and why.
    edited = (await signals_of(pool, forum.slug, "forum.post.edited"))[0]["payload"]
    assert edited["revision"] == 1 and edited["edit_reason"] == "more" and edited["post_id"] == first["id"]


async def test_correlation_id_is_fresh_when_the_header_is_not_a_uuid(forum, pool):
    r = await forum.member.post(
        f"{forum.base}/threads",
        json={"category": "general", "title": "Hello", "body": "x"},
        headers={"X-Request-Id": "not-a-uuid"},
    )
    assert r.status_code == 201
    (s,) = await signals_of(pool, forum.slug, "forum.thread.created")
    assert str(uuid.UUID(str(s["correlation_id"]))) == str(s["correlation_id"])


async def test_bearer_token_writes_have_source_api(forum, pool, make_client):
    r = await forum.admin.post(f"/api/v1/orgs/{forum.slug}/tokens", json={"name": "bot", "scopes": ["read", "write"]})
    assert r.status_code == 201, r.text
    bot = make_client(ip="192.0.2.77")
    bot.headers["Authorization"] = f"Bearer {r.json()['token']}"
    correlation = str(uuid.uuid4())
    r = await bot.post(
        f"{forum.base}/threads",
        json={"category": "general", "title": "From a script", "body": "automated"},
        headers={"X-Request-Id": correlation},
    )
    assert r.status_code == 201, r.text
    for type_ in ("forum.thread.created", "forum.post.created"):
        (s,) = await signals_of(pool, forum.slug, type_)
        assert s["source"] == "api" and s["actor_type"] == "user"
        assert s["actor_id"] == forum.users["admin"]["id"] and str(s["correlation_id"]) == correlation
    # A read-only token may not write.
    r = await forum.admin.post(f"/api/v1/orgs/{forum.slug}/tokens", json={"name": "ro", "scopes": ["read"]})
    reader = make_client(ip="192.0.2.78")
    reader.headers["Authorization"] = f"Bearer {r.json()['token']}"
    await rejected(
        pool,
        forum,
        403,
        reader.post(f"{forum.base}/threads", json={"category": "general", "title": "Nope", "body": "x"}),
    )


# --- views ---


async def test_views_are_deduplicated_per_viewer(forum, pool):
    created = await make_thread(forum.member, forum.slug, "general")
    path = f"{forum.base}/threads/{created['thread']['id']}"
    assert (await forum.member.get(path)).json()["thread"]["view_count"] == 1
    assert (await forum.member.get(path)).json()["thread"]["view_count"] == 1
    views = await signals_of(pool, forum.slug, "forum.thread.viewed")
    assert len(views) == 1 and views[0]["dedupe_key"] and views[0]["actor_id"] == forum.users["member"]["id"]
    assert (await forum.admin.get(path)).json()["thread"]["view_count"] == 2
    # Anonymous viewers count once per (hashed) address.
    assert (await forum.anon.get(path)).json()["thread"]["view_count"] == 3
    assert (await forum.anon.get(path)).json()["thread"]["view_count"] == 3
    views = await signals_of(pool, forum.slug, "forum.thread.viewed")
    assert len(views) == 3 and len({v["dedupe_key"] for v in views}) == 3
    assert views[2]["payload"]["viewer"].startswith("anon:")


# --- counters ---


async def test_counters_are_correct_under_concurrent_replies(forum, pool, make_client):
    writers = []
    for i in range(3):
        client = make_client(ip=f"198.18.{i}.{uuid.uuid4().int % 250 + 1}")
        user = await register_and_login(client, unique("conc"))
        await add_member(forum.admin, forum.slug, user["username"])
        writers.append(client)
    await set_posting(forum.admin, forum.slug, enabled=False)
    created = await make_thread(forum.member, forum.slug, "general")
    thread_id = created["thread"]["id"]

    async def reply(client: Any, n: int) -> int:
        r = await client.post(f"{forum.base}/threads/{thread_id}/posts", json={"body": f"concurrent reply {n}"})
        return r.status_code

    statuses = await asyncio.gather(*(reply(writers[n % 3], n) for n in range(30)))
    assert statuses == [201] * 30
    thread = (await forum.member.get(f"{forum.base}/threads/{thread_id}", params={"limit": 100})).json()
    assert thread["thread"]["reply_count"] == 30 and len(thread["posts"]) == 31
    (row,) = await tenant_fetch(
        pool,
        forum.slug,
        "SELECT c.post_count, c.thread_count, c.last_activity_at,"
        " (SELECT count(*) FROM post p JOIN thread t ON t.id = p.thread_id"
        "   WHERE t.category_id = c.id) AS posts,"
        " (SELECT max(p.created_at) FROM post p JOIN thread t ON t.id = p.thread_id"
        "   WHERE t.category_id = c.id) AS latest"
        " FROM category c WHERE c.slug = 'general'",
    )
    assert row["post_count"] == row["posts"] == 31 and row["thread_count"] == 1
    assert row["last_activity_at"] == row["latest"]
    (t,) = await tenant_fetch(
        pool, forum.slug, "SELECT last_activity_at FROM thread WHERE id = $1", uuid.UUID(thread_id)
    )
    assert t["last_activity_at"] == row["latest"]
    assert len(await signals_of(pool, forum.slug, "forum.post.created")) == 31


# --- mentions ---


async def test_mentions_of_members_and_agents(forum, pool):
    created = await make_thread(forum.member, forum.slug, "help")
    moderator = forum.users["moderator"]
    r = await forum.member.post(
        f"{forum.base}/threads/{created['thread']['id']}/posts",
        json={
            "body": f"Thanks @{moderator['username']}! And @faq-agent, any docs?"
            f" Not `@{forum.users['admin']['username']}`"
        },
    )
    assert r.status_code == 201, r.text
    post_id = r.json()["post"]["id"]
    mentions = await tenant_fetch(
        pool,
        forum.slug,
        "SELECT mentioned_user_id, mentioned_agent FROM mention WHERE post_id = $1",
        uuid.UUID(post_id),
    )
    assert {
        (str(m["mentioned_user_id"]) if m["mentioned_user_id"] else None, m["mentioned_agent"]) for m in mentions
    } == {
        (moderator["id"], None),
        (None, "faq-agent"),
    }
    created_signal = next(
        s for s in await signals_of(pool, forum.slug, "forum.post.created") if s["payload"]["post_id"] == post_id
    )
    assert created_signal["payload"]["mentioned_user_ids"] == [moderator["id"]]
    assert created_signal["payload"]["mentioned_agents"] == ["faq-agent"]
    (agent,) = await signals_of(pool, forum.slug, "forum.agent.mentioned")
    assert agent["payload"]["agent"] == "faq-agent" and agent["payload"]["post_id"] == post_id
    assert str(agent["correlation_id"]) == str(created_signal["correlation_id"])


# --- anti-abuse ---


async def test_a_second_reply_within_the_interval_is_429(forum, pool):
    scene = await make_scene(forum)
    await set_posting(forum.admin, forum.slug, enabled=True)
    path = f"{forum.base}/threads/{scene.thread['id']}/posts"
    assert (await forum.member.post(path, json={"body": "first reply"})).status_code == 201
    before = await snapshot_counts(pool, forum.slug)
    r = await forum.member.post(path, json={"body": "second reply"})
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 30  # a new account: 30 s; otherwise 5 s
    assert await snapshot_counts(pool, forum.slug) == before
    # A moderator is exempt from the per-user interval.
    for n in range(3):
        assert (await forum.moderator.post(path, json={"body": f"mod reply {n}"})).status_code == 201


async def test_identical_content_within_the_window_is_409(forum, pool):
    scene = await make_scene(forum)
    await set_posting(forum.admin, forum.slug, reply_interval_s=0, new_reply_interval_s=0)
    path = f"{forum.base}/threads/{scene.thread['id']}/posts"
    assert (await forum.member.post(path, json={"body": "Same text here"})).status_code == 201
    await rejected(pool, forum, 409, forum.member.post(path, json={"body": "Same text here"}))
    await rejected(pool, forum, 409, forum.member.post(path, json={"body": "  same   TEXT here "}))
    # Other text, or the same text from someone else, is fine.
    assert (await forum.member.post(path, json={"body": "Different text"})).status_code == 201
    assert (await forum.admin.post(path, json={"body": "Same text here"})).status_code == 201


async def test_new_accounts_may_post_at_most_three_links(forum, pool):
    scene = await make_scene(forum)
    await set_posting(forum.admin, forum.slug, reply_interval_s=0, new_reply_interval_s=0)
    path = f"{forum.base}/threads/{scene.thread['id']}/posts"
    links = [f"https://example.com/{n}" for n in range(4)]
    body = "See " + " ".join(f"[link {n}]({u})" for n, u in enumerate(links))
    await rejected(pool, forum, 422, forum.member.post(path, json={"body": body}))
    await rejected(
        pool,
        forum,
        422,
        forum.member.post(f"{forum.base}/threads", json={"category": "general", "title": "Links", "body": body}),
    )
    assert (await forum.member.post(path, json={"body": " ".join(links[:3])})).status_code == 201


async def test_the_per_ip_throttle_applies_to_moderators(forum, pool):
    scene = await make_scene(forum)
    await set_posting(forum.admin, forum.slug, ip_posts_per_minute=2)
    path = f"{forum.base}/threads/{scene.thread['id']}/posts"
    for n in range(2):
        assert (await forum.moderator.post(path, json={"body": f"moderator note {n}"})).status_code == 201
    r = await rejected(pool, forum, 429, forum.moderator.post(path, json={"body": "one too many"}))
    assert "address" in r["detail"]
    r = await forum.moderator.post(path, json={"body": "still too many"})
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    # Another address is not throttled.
    assert (await forum.admin.post(path, json={"body": "admin from elsewhere"})).status_code == 201


# --- XSS ---

XSS_BODY = (
    "Hello <script>alert(1)</script>\n\n"
    "<img src=x onerror=alert(1)>\n\n"
    "[x](javascript:alert(1)) and [y](JaVaScRiPt:alert(2))\n\n"
    '<a href="javascript:alert(3)" onclick="x()">z</a>\n\n'
    '<svg onload=alert(1)></svg> <iframe src="javascript:alert(1)"></iframe>\n'
)


def assert_inert(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered and "<iframe" not in lowered and "<svg" not in lowered, html
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", lowered), html
    assert "javascript:" not in lowered, html


async def test_xss_in_posts_is_stored_as_markdown_and_rendered_inert(forum, pool):
    r = await forum.member.post(
        f"{forum.base}/threads", json={"category": "general", "title": "XSS attempt", "body": XSS_BODY}
    )
    assert r.status_code == 201, r.text
    post = r.json()["post"]
    assert post["body"] == XSS_BODY
    assert_inert(post["html"])
    assert "Hello" in post["html"]
    preview = (await forum.member.post(f"{forum.base}/preview", json={"body": XSS_BODY})).json()["html"]
    assert preview == post["html"]
    (row,) = await tenant_fetch(
        pool,
        forum.slug,
        "SELECT content_markdown, content_html FROM post WHERE id = $1",
        uuid.UUID(post["id"]),
    )
    assert row["content_markdown"] == XSS_BODY and row["content_html"] == post["html"]
    shown = (await forum.anon.get(f"{forum.base}/threads/{post['thread_id']}")).json()["posts"][0]
    assert shown["html"] == post["html"]
    # Edits are sanitized the same way.
    reply = await make_reply(forum.moderator, forum.slug, post["thread_id"], "fine")
    r = await forum.moderator.patch(f"{forum.base}/posts/{reply['id']}", json={"body": XSS_BODY})
    assert r.status_code == 200 and r.json()["post"]["html"] == post["html"]
