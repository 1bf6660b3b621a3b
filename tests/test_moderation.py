"""Moderation: flags, the moderation queue and resolutions (real DB, HTTP API). The moderation agent's
screening is tested in test_moderation_agent.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.factories import (
    Forum,
    add_member,
    make_forum,
    make_reply,
    make_thread,
    register_and_login,
    tenant_fetch,
    unique,
)

SPAM_BODY = (
    "CHECK OUT MY CHANNEL and subscribe to my page!!!!!! Free money, click here: "
    "http://win-prizes.example.com/now http://win-prizes.example.com/again"
)


# --- helpers ------------------------------------------------------------------------------------------


async def moderation_counts(pool: Any, slug: str) -> dict[str, Any]:
    """Everything a moderation write could touch: flags (and their states), signals, post and thread
    visibility."""
    (row,) = await tenant_fetch(
        pool,
        slug,
        "SELECT (SELECT count(*) FROM moderation_flag) AS flags,"
        " (SELECT count(*) FROM moderation_flag WHERE status = 'open') AS open_flags,"
        " (SELECT count(*) FROM signal) AS signals,"
        " (SELECT count(*) FROM signal_outbox) AS outbox,"
        " (SELECT count(*) FROM post WHERE is_hidden) AS hidden_posts,"
        " (SELECT count(*) FROM thread WHERE status <> 'open') AS closed_threads",
    )
    return dict(row)


async def signals_of(pool: Any, slug: str, type_: str, **payload: str) -> list[dict[str, Any]]:
    rows = await tenant_fetch(
        pool,
        slug,
        "SELECT * FROM signal WHERE type = $1 AND payload @> $2::jsonb ORDER BY id",
        type_,
        json.dumps(payload),
    )
    return [dict(r) for r in rows]


def assert_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status_code"] == status and isinstance(body["detail"], str) and body["detail"]
    return body


async def second_member(forum: Forum, make_client: Any) -> tuple[Any, dict[str, Any]]:
    client = make_client(ip=f"10.99.{uuid.uuid4().int % 250}.7")
    user = await register_and_login(client, unique("memb"))
    await add_member(forum.admin, forum.slug, user["username"], "member")
    return client, user


async def flagged_forum(make_client: Any, visibility: str = "public") -> tuple[Forum, dict[str, Any]]:
    """A forum with a thread started by the member; returns (forum, {thread, post})."""
    forum = await make_forum(make_client, visibility=visibility)
    created = await make_thread(forum.member, forum.slug, "general", body="My perfectly ordinary question")
    return forum, created


async def flag(client: Any, forum: Forum, post_id: str, reason: str = "spam", **extra: Any) -> Any:
    return await client.post(f"{forum.base}/posts/{post_id}/flags", json={"reason": reason, **extra})


# --- flagging -----------------------------------------------------------------------------------------


async def test_flag_a_post_writes_the_flag_and_both_signals_with_metadata(make_client, pool):
    forum, created = await flagged_forum(make_client)
    post, thread = created["post"], created["thread"]
    correlation = str(uuid.uuid4())
    r = await forum.moderator.post(
        f"{forum.base}/posts/{post['id']}/flags",
        json={"reason": "harassment", "notes": "  rude to a newcomer  "},
        headers={"x-request-id": correlation},
    )
    assert r.status_code == 201, r.text
    out = r.json()["flag"]
    assert out["post_id"] == post["id"]
    assert out["reason"] == "harassment" and out["notes"] == "rude to a newcomer"
    assert out["status"] == "open" and out["resolved_at"] is None
    assert out["flagger"] == {
        "id": forum.users["moderator"]["id"],
        "username": forum.users["moderator"]["username"],
    }
    assert out["flagger_agent_id"] is None
    (row,) = await tenant_fetch(pool, forum.slug, "SELECT * FROM moderation_flag WHERE id = $1", uuid.UUID(out["id"]))
    assert str(row["flagger_user_id"]) == forum.users["moderator"]["id"] and row["status"] == "open"

    flagged = await signals_of(pool, forum.slug, "forum.post.flagged", flag_id=out["id"])
    created_sig = await signals_of(pool, forum.slug, "forum.moderation.flag.created", flag_id=out["id"])
    assert len(flagged) == 1 and len(created_sig) == 1
    for s in (flagged[0], created_sig[0]):
        assert s["version"] == 1
        assert s["actor_type"] == "user" and s["actor_id"] == forum.users["moderator"]["id"]
        assert s["source"] == "web"
        assert str(s["correlation_id"]) == correlation
        assert s["occurred_at"] is not None
        payload = json.loads(s["payload"]) if isinstance(s["payload"], str) else s["payload"]
        assert payload["post_id"] == post["id"] and payload["thread_id"] == thread["id"]
        assert payload["category_id"] == forum.general["id"]
        assert payload["reason"] == "harassment"
    created_payload = created_sig[0]["payload"]
    if isinstance(created_payload, str):
        created_payload = json.loads(created_payload)
    assert created_payload["flagger_user_id"] == forum.users["moderator"]["id"]
    assert created_payload["flagger_agent_id"] is None
    outbox = await tenant_fetch(
        pool,
        forum.slug,
        "SELECT count(*) AS n FROM signal_outbox WHERE signal_id = ANY($1::uuid[])",
        [flagged[0]["id"], created_sig[0]["id"]],
    )
    assert outbox[0]["n"] in (0, 2)  # in the outbox, or already published and cleared by the relay


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b"", 400),
        (b'{"reason": "rude"}', 400),
        (b'{"reason": null}', 400),
        (b'{"notes": "no reason"}', 400),
        (b'{"reason": "spam", "severity": 3}', 400),
        (b'{"reason": "spam", "notes": 5}', 400),
        (b'{"reason": "spam", "notes": "' + b"x" * 2001 + b'"}', 400),
    ],
)
async def test_flag_bad_bodies_are_400_and_write_nothing(make_client, pool, raw, status):
    forum, created = await flagged_forum(make_client)
    before = await moderation_counts(pool, forum.slug)
    r = await forum.moderator.post(
        f"{forum.base}/posts/{created['post']['id']}/flags",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert_error(r, status)
    assert await moderation_counts(pool, forum.slug) == before


async def test_flag_semantic_errors_and_duplicates_write_nothing(make_client, pool):
    forum, created = await flagged_forum(make_client)
    post_id = created["post"]["id"]
    reply = await make_reply(forum.admin, forum.slug, created["thread"]["id"], "a reply to delete")
    assert (await forum.admin.delete(f"{forum.base}/posts/{reply['id']}")).status_code == 204
    assert (await flag(forum.moderator, forum, post_id)).status_code == 201
    before = await moderation_counts(pool, forum.slug)
    cases = [
        (forum.moderator, str(uuid.uuid4()), 404),  # unknown post
        (forum.moderator, "not-a-uuid", 404),  # malformed id
        (forum.moderator, reply["id"], 404),  # deleted post
        (forum.member, post_id, 422),  # own post
        (forum.moderator, post_id, 409),  # again while the first flag is open
    ]
    for client, target, status in cases:
        assert_error(await flag(client, forum, target, reason="other"), status)
        assert await moderation_counts(pool, forum.slug) == before, (target, status)


@pytest.mark.parametrize("visibility", ["public", "private"])
async def test_flag_requires_a_member(make_client, pool, visibility):
    forum, created = await flagged_forum(make_client, visibility=visibility)
    post_id = created["post"]["id"]
    before = await moderation_counts(pool, forum.slug)
    anon_status, outsider_status = (401, 403) if visibility == "public" else (404, 404)
    assert_error(await flag(forum.anon, forum, post_id), anon_status)
    assert_error(await flag(forum.outsider, forum, post_id), outsider_status)
    assert await moderation_counts(pool, forum.slug) == before


async def test_read_only_token_cannot_flag(make_client, pool):
    forum, created = await flagged_forum(make_client)
    r = await forum.admin.post(f"/api/v1/orgs/{forum.slug}/tokens", json={"name": "ro", "scopes": ["read"]})
    assert r.status_code == 201, r.text
    bot = make_client()
    bot.headers["authorization"] = f"Bearer {r.json()['token']}"
    before = await moderation_counts(pool, forum.slug)
    assert_error(await flag(bot, forum, created["post"]["id"]), 403)
    assert await moderation_counts(pool, forum.slug) == before


# --- the queue ----------------------------------------------------------------------------------------


async def test_queue_groups_flags_per_post_newest_first_with_filters_and_pages(make_client, pool):
    forum, created = await flagged_forum(make_client)
    other, other_user = await second_member(forum, make_client)
    first = created["post"]
    second = await make_reply(forum.member, forum.slug, created["thread"]["id"], "another   post\n\nby the member")
    assert (await flag(forum.moderator, forum, first["id"], "spam")).status_code == 201
    assert (await flag(other, forum, first["id"], "off_topic", notes="nothing to do with brewing")).status_code == 201
    assert (await flag(other, forum, second["id"], "duplicate")).status_code == 201

    r = await forum.moderator.get(f"{forum.base}/moderation/queue")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    assert [i["post"]["id"] for i in page["items"]] == [second["id"], first["id"]]
    newest, older = page["items"]
    assert newest["flag_count"] == 1 and newest["reasons"] == ["duplicate"]
    assert newest["post"]["excerpt"] == "another post by the member"
    assert newest["post"]["author"]["username"] == forum.users["member"]["username"]
    assert newest["thread"]["id"] == created["thread"]["id"]
    assert newest["thread"]["title"] == created["thread"]["title"]
    assert older["flag_count"] == 2 and older["reasons"] == ["off_topic", "spam"]
    assert older["flaggers"] == [other_user["username"], forum.users["moderator"]["username"]]
    assert [f["reason"] for f in older["flags"]] == ["off_topic", "spam"]
    assert older["flags"][0]["notes"] == "nothing to do with brewing"

    r = await forum.moderator.get(f"{forum.base}/moderation/queue", params={"limit": 1})
    assert [i["post"]["id"] for i in r.json()["items"]] == [second["id"]]
    cursor = r.json()["next_cursor"]
    assert cursor
    r = await forum.moderator.get(f"{forum.base}/moderation/queue", params={"limit": 1, "cursor": cursor})
    assert [i["post"]["id"] for i in r.json()["items"]] == [first["id"]]
    assert r.json()["next_cursor"] is None

    older_flag = older["flags"][0]["id"]
    r = await forum.moderator.post(f"{forum.base}/moderation/flags/{older_flag}/resolve", json={"action": "dismiss"})
    assert r.status_code == 200, r.text
    queue = (await forum.moderator.get(f"{forum.base}/moderation/queue")).json()
    assert [i["post"]["id"] for i in queue["items"]] == [second["id"]]
    dismissed = (await forum.admin.get(f"{forum.base}/moderation/queue", params={"status": "dismissed"})).json()
    assert [i["post"]["id"] for i in dismissed["items"]] == [first["id"]]
    assert dismissed["items"][0]["flag_count"] == 2
    assert {f["status"] for f in dismissed["items"][0]["flags"]} == {"dismissed"}
    everything = (await forum.moderator.get(f"{forum.base}/moderation/queue", params={"status": "all"})).json()
    assert {i["post"]["id"] for i in everything["items"]} == {first["id"], second["id"]}
    taken = (await forum.moderator.get(f"{forum.base}/moderation/queue", params={"status": "action_taken"})).json()
    assert taken["items"] == []


async def test_queue_access_and_bad_query(make_client):
    forum, _ = await flagged_forum(make_client)
    url = f"{forum.base}/moderation/queue"
    assert_error(await forum.member.get(url), 403)
    assert_error(await forum.outsider.get(url), 403)
    assert_error(await forum.anon.get(url), 401)
    assert_error(await forum.moderator.get(url, params={"status": "everything"}), 400)
    assert_error(await forum.moderator.get(url, params={"cursor": "!!not-a-cursor"}), 400)
    assert_error(await forum.moderator.get(url, params={"limit": 0}), 400)
    assert_error(await forum.moderator.get(url, params={"limit": "many"}), 400)
    private, _ = await flagged_forum(make_client, visibility="private")
    assert_error(await private.anon.get(f"{private.base}/moderation/queue"), 404)
    assert_error(await private.outsider.get(f"{private.base}/moderation/queue"), 404)


# --- resolving ----------------------------------------------------------------------------------------


async def resolve(client: Any, forum: Forum, flag_id: str, action: str, **extra: Any) -> Any:
    return await client.post(f"{forum.base}/moderation/flags/{flag_id}/resolve", json={"action": action, **extra})


async def test_hide_resolves_every_open_flag_and_hides_from_members_only(make_client, pool):
    forum, created = await flagged_forum(make_client)
    other, _ = await second_member(forum, make_client)
    post, thread = created["post"], created["thread"]
    first = (await flag(forum.moderator, forum, post["id"], "spam")).json()["flag"]
    second = (await flag(other, forum, post["id"], "harassment")).json()["flag"]

    r = await resolve(forum.moderator, forum, second["id"], "hide", notes="clear harassment")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["resolved_flag_ids"] == [second["id"], first["id"]]
    assert out["post_is_hidden"] is True and out["thread_status"] == "open"
    assert out["flag"]["status"] == "action_taken" and out["flag"]["resolution_action"] == "hide"
    assert out["flag"]["resolution_notes"] == "clear harassment"
    assert out["flag"]["resolved_by"]["id"] == forum.users["moderator"]["id"]
    rows = await tenant_fetch(
        pool,
        forum.slug,
        "SELECT status, resolution_action FROM moderation_flag WHERE post_id = $1",
        uuid.UUID(post["id"]),
    )
    assert {(r["status"], r["resolution_action"]) for r in rows} == {("action_taken", "hide")}

    (taken,) = await signals_of(pool, forum.slug, "forum.moderation.action.taken", flag_id=second["id"])
    assert taken["actor_type"] == "user" and taken["actor_id"] == forum.users["moderator"]["id"]
    payload = taken["payload"] if isinstance(taken["payload"], dict) else json.loads(taken["payload"])
    assert payload == {
        "flag_id": second["id"],
        "post_id": post["id"],
        "thread_id": thread["id"],
        "category_id": forum.general["id"],
        "action": "hide",
        "moderator_id": forum.users["moderator"]["id"],
    }

    for viewer in (other, forum.outsider, forum.anon):
        seen = (await viewer.get(f"{forum.base}/threads/{thread['id']}")).json()["posts"][0]
        assert seen["is_hidden"] and seen["html"] == "", seen
    for viewer in (forum.moderator, forum.admin):
        seen = (await viewer.get(f"{forum.base}/threads/{thread['id']}")).json()["posts"][0]
        assert "ordinary question" in seen["html"]
    # Nothing was deleted.
    (row,) = await tenant_fetch(
        pool, forum.slug, "SELECT is_deleted, content_markdown FROM post WHERE id = $1", uuid.UUID(post["id"])
    )
    assert not row["is_deleted"] and row["content_markdown"] == "My perfectly ordinary question"

    before = await moderation_counts(pool, forum.slug)
    assert_error(await resolve(forum.moderator, forum, first["id"], "dismiss"), 409)
    assert_error(await resolve(forum.admin, forum, second["id"], "restore"), 409)
    assert await moderation_counts(pool, forum.slug) == before


async def test_restore_makes_a_hidden_post_visible_again(make_client, pool):
    forum, created = await flagged_forum(make_client)
    post, thread = created["post"], created["thread"]
    first = (await flag(forum.moderator, forum, post["id"])).json()["flag"]
    assert (await resolve(forum.moderator, forum, first["id"], "hide")).status_code == 200
    # The same moderator may flag again: their earlier flag is no longer open.
    again = await flag(forum.moderator, forum, post["id"], "other", notes="was a misunderstanding")
    assert again.status_code == 201, again.text
    r = await resolve(forum.admin, forum, again.json()["flag"]["id"], "restore")
    assert r.status_code == 200, r.text
    assert r.json()["post_is_hidden"] is False
    assert r.json()["flag"]["status"] == "dismissed" and r.json()["flag"]["resolution_action"] == "restore"
    seen = (await forum.outsider.get(f"{forum.base}/threads/{thread['id']}")).json()["posts"][0]
    assert not seen["is_hidden"] and "ordinary question" in seen["html"]
    assert len(await signals_of(pool, forum.slug, "forum.moderation.action.taken", post_id=post["id"])) == 2


async def test_dismiss_leaves_the_post_alone(make_client, pool):
    forum, created = await flagged_forum(make_client)
    flag_id = (await flag(forum.moderator, forum, created["post"]["id"])).json()["flag"]["id"]
    r = await resolve(forum.moderator, forum, flag_id, "dismiss")
    assert r.status_code == 200, r.text
    assert r.json()["flag"]["status"] == "dismissed" and r.json()["post_is_hidden"] is False
    (row,) = await tenant_fetch(
        pool, forum.slug, "SELECT is_hidden FROM post WHERE id = $1", uuid.UUID(created["post"]["id"])
    )
    assert row["is_hidden"] is False
    assert len(await signals_of(pool, forum.slug, "forum.moderation.action.taken", flag_id=flag_id)) == 1


async def test_close_thread_closes_it_and_emits_thread_closed(make_client, pool):
    forum, created = await flagged_forum(make_client)
    thread = created["thread"]
    flag_id = (await flag(forum.moderator, forum, created["post"]["id"], "off_topic")).json()["flag"]["id"]
    r = await resolve(forum.moderator, forum, flag_id, "close_thread")
    assert r.status_code == 200, r.text
    assert r.json()["thread_status"] == "closed" and r.json()["flag"]["status"] == "action_taken"
    (closed,) = await signals_of(pool, forum.slug, "forum.thread.closed", thread_id=thread["id"])
    payload = closed["payload"] if isinstance(closed["payload"], dict) else json.loads(closed["payload"])
    assert payload["closed_by"] == forum.users["moderator"]["id"]
    (taken,) = await signals_of(pool, forum.slug, "forum.moderation.action.taken", flag_id=flag_id)
    assert taken["correlation_id"] == closed["correlation_id"]
    detail = (await forum.member.get(f"{forum.base}/threads/{thread['id']}")).json()
    assert detail["thread"]["status"] == "closed"
    r = await forum.member.post(f"{forum.base}/threads/{thread['id']}/posts", json={"body": "one more thing"})
    assert_error(r, 409)


async def test_resolve_bad_input_and_roles_write_nothing(make_client, pool):
    forum, created = await flagged_forum(make_client)
    flag_id = (await flag(forum.moderator, forum, created["post"]["id"])).json()["flag"]["id"]
    url = f"{forum.base}/moderation/flags/{flag_id}/resolve"
    before = await moderation_counts(pool, forum.slug)
    cases = [
        (forum.moderator, url, b"{oops", 400),
        (forum.moderator, url, b"{}", 400),
        (forum.moderator, url, b'{"action": "delete"}', 400),
        (forum.moderator, url, b'{"action": "hide", "notes": ["x"]}', 400),
        (forum.moderator, url, b'{"action": "hide", "ban": true}', 400),
        (
            forum.moderator,
            f"{forum.base}/moderation/flags/{uuid.uuid4()}/resolve",
            b'{"action": "hide"}',
            404,
        ),
        (forum.moderator, f"{forum.base}/moderation/flags/nope/resolve", b'{"action": "hide"}', 404),
        (forum.member, url, b'{"action": "hide"}', 403),
        (forum.outsider, url, b'{"action": "hide"}', 403),
        (forum.anon, url, b'{"action": "hide"}', 401),
    ]
    for client, target, raw, status in cases:
        r = await client.post(target, content=raw, headers={"content-type": "application/json"})
        assert_error(r, status)
        assert await moderation_counts(pool, forum.slug) == before, (raw, status)
    (row,) = await tenant_fetch(
        pool, forum.slug, "SELECT status FROM moderation_flag WHERE id = $1", uuid.UUID(flag_id)
    )
    assert row["status"] == "open"


async def test_a_moderate_token_can_resolve_over_the_api(make_client):
    forum, created = await flagged_forum(make_client)
    flag_id = (await flag(forum.moderator, forum, created["post"]["id"])).json()["flag"]["id"]
    r = await forum.admin.post(f"/api/v1/orgs/{forum.slug}/tokens", json={"name": "mod", "scopes": ["moderate"]})
    assert r.status_code == 201, r.text
    bot = make_client()
    bot.headers["authorization"] = f"Bearer {r.json()['token']}"
    assert (await bot.get(f"{forum.base}/moderation/queue")).status_code == 200
    r = await resolve(bot, forum, flag_id, "dismiss")
    assert r.status_code == 200, r.text
