"""The APIs the web UI needs (issue 10): the signed-out session read, profiles, the moderators' queue badge,
silencing a member, member history in the queue, agent config schemas, daily agent metrics, and the
server-rendered thread page that crawlers and clients without JavaScript read."""

from __future__ import annotations

import re

import pytest

from tests.factories import (
    Forum,
    assert_error,
    make_forum,
    make_reply,
    make_thread,
    rejected,
    snapshot_counts,
)


@pytest.fixture
async def forum(make_client) -> Forum:
    return await make_forum(make_client)


async def test_session_is_200_signed_in_or_out(forum: Forum) -> None:
    r = await forum.anon.get("/api/v1/session")
    assert r.status_code == 200 and r.json() == {"user": None, "orgs": []}
    r = await forum.member.get("/api/v1/session")
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["username"] == forum.users["member"]["username"]
    assert [o["slug"] for o in body["orgs"]] == [forum.slug]


async def test_profile_counts_threads_replies_accepted_answers_and_reactions(forum: Forum) -> None:
    member, moderator = forum.users["member"]["username"], forum.users["moderator"]["username"]
    created = await make_thread(forum.member, forum.slug, "help", "My starter is flat")
    thread_id = created["thread"]["id"]
    answer = await make_reply(forum.moderator, forum.slug, thread_id, "Feed it twice a day.")
    await make_reply(forum.member, forum.slug, thread_id, "Thanks, trying that.")
    r = await forum.member.post(f"{forum.base}/threads/{thread_id}/solve", json={"post_id": answer["id"]})
    assert r.status_code == 200, r.text
    for client in (forum.member, forum.admin):
        r = await client.post(f"{forum.base}/posts/{answer['id']}/reactions", json={"type": "like"})
        assert r.status_code == 200, r.text
    # The moderator's own reaction to their post does not count as received.
    await forum.moderator.post(f"{forum.base}/posts/{answer['id']}/reactions", json={"type": "upvote"})

    r = await forum.anon.get(f"{forum.base}/users/{moderator}")
    assert r.status_code == 200, r.text
    mod = r.json()
    assert mod["role"] == "moderator"
    assert mod["counts"] == {"threads": 0, "replies": 1, "accepted_answers": 1, "reactions_received": {"like": 2}}
    assert [p["id"] for p in mod["accepted_answers"]] == [answer["id"]]
    assert mod["accepted_answers"][0]["thread_title"] == "My starter is flat"

    r = await forum.anon.get(f"{forum.base}/users/{member.upper()}")  # usernames are case-insensitive
    mine = r.json()
    assert mine["counts"]["threads"] == 1 and mine["counts"]["replies"] == 1
    assert [t["id"] for t in mine["threads"]] == [thread_id]
    assert assert_error(await forum.anon.get(f"{forum.base}/users/nobody-like-this"), 404)


async def test_profile_of_a_private_org_is_404_to_outsiders(make_client) -> None:
    private = await make_forum(make_client, visibility="private")
    member = private.users["member"]["username"]
    assert_error(await private.outsider.get(f"{private.base}/users/{member}"), 404)
    assert (await private.member.get(f"{private.base}/users/{member}")).status_code == 200


async def test_queue_summary_counts_posts_with_open_flags_for_moderators_only(forum: Forum) -> None:
    created = await make_thread(forum.admin, forum.slug, "general", "Flag me")
    post_id = created["post"]["id"]
    assert (await forum.moderator.get(f"{forum.base}/moderation/summary")).json() == {"open_posts": 0}
    for client in (forum.member, forum.moderator):
        r = await client.post(f"{forum.base}/posts/{post_id}/flags", json={"reason": "spam"})
        assert r.status_code == 201, r.text
    assert (await forum.moderator.get(f"{forum.base}/moderation/summary")).json() == {"open_posts": 1}
    assert_error(await forum.member.get(f"{forum.base}/moderation/summary"), 403)
    assert_error(await forum.anon.get(f"{forum.base}/moderation/summary"), 401)


async def test_silenced_member_cannot_post_until_lifted_and_history_shows_it(forum: Forum, pool) -> None:
    member = forum.users["member"]["username"]
    created = await make_thread(forum.member, forum.slug, "general", "Before the silence")
    r = await forum.admin.post(f"{forum.base}/posts/{created['post']['id']}/flags", json={"reason": "harassment"})
    assert r.status_code == 201, r.text

    r = await forum.moderator.post(f"{forum.base}/members/{member}/silence", json={"days": 3, "reason": "cool off"})
    assert r.status_code == 200, r.text
    assert r.json()["silenced_until"] and r.json()["reason"] == "cool off"

    body = await rejected(
        pool,
        forum,
        403,
        forum.member.post(f"{forum.base}/threads/{created['thread']['id']}/posts", json={"body": "let me speak"}),
    )
    assert "silenced" in body["detail"] and "until" in body["detail"]
    await rejected(
        pool,
        forum,
        403,
        forum.member.post(f"{forum.base}/threads", json={"category": "general", "title": "New one", "body": "x"}),
    )
    # Reading still works, and the queue shows the author's history.
    assert (await forum.member.get(f"{forum.base}/threads/{created['thread']['id']}")).status_code == 200
    queue = (await forum.moderator.get(f"{forum.base}/moderation/queue")).json()
    (item,) = [i for i in queue["items"] if i["post"]["id"] == created["post"]["id"]]
    history = item["author_history"]
    assert history["role"] == "member" and history["posts"] == 1 and history["flags_received"] == 1
    assert history["silenced_until"] is not None

    r = await forum.moderator.post(f"{forum.base}/members/{member}/silence", json={"days": 0})
    assert r.status_code == 200 and r.json()["silenced_until"] is None
    await make_reply(forum.member, forum.slug, created["thread"]["id"], "Thanks for lifting it.")


async def test_silence_rules(forum: Forum, pool) -> None:
    member, moderator = forum.users["member"]["username"], forum.users["moderator"]["username"]
    url = f"{forum.base}/members/{{}}/silence"
    await rejected(pool, forum, 403, forum.member.post(url.format(moderator), json={"days": 1}))
    await rejected(pool, forum, 403, forum.admin.post(url.format(moderator), json={"days": 1}))  # not a moderator
    await rejected(pool, forum, 422, forum.moderator.post(url.format(moderator), json={"days": 1}))  # yourself
    await rejected(pool, forum, 404, forum.moderator.post(url.format("nobody-at-all"), json={"days": 1}))
    outsider = forum.users["outsider"]["username"]
    await rejected(pool, forum, 404, forum.moderator.post(url.format(outsider), json={"days": 1}))
    for bad in ({"days": -1}, {"days": 366}, {"days": "two"}, {}, {"days": 1, "extra": True}):
        await rejected(pool, forum, 400, forum.moderator.post(url.format(member), json=bad))
    assert_error(await forum.anon.post(url.format(member), json={"days": 1}), 401)


async def test_agent_config_schema_comes_with_each_package(forum: Forum) -> None:
    r = await forum.admin.get(f"{forum.base}/agents")
    assert r.status_code == 200, r.text
    for agent in r.json()["agents"]:
        schema = agent["config_schema"]
        assert schema["type"] == "object"
        assert set(schema["properties"]) >= set(agent["default_config"]), agent["package"]
        for name, prop in schema["properties"].items():
            assert prop["type"] in {"boolean", "integer", "number", "string", "array", "object"}, (name, prop)


async def test_daily_metrics_are_admin_only_and_empty_without_data(forum: Forum) -> None:
    r = await forum.admin.get(f"{forum.base}/agents/metrics/daily?days=7")
    assert r.status_code == 200 and r.json() == {"days": []}
    assert_error(await forum.member.get(f"{forum.base}/agents/metrics/daily"), 403)


async def test_directives_filter_by_package(forum: Forum) -> None:
    r = await forum.admin.get(f"{forum.base}/directives?package=forum_welcome_agent")
    assert r.status_code == 200 and r.json()["items"] == []


# --- the server-rendered thread page ------------------------------------------------------------------


async def test_thread_page_is_readable_html_with_meta_and_canonical(forum: Forum, pool) -> None:
    created = await make_thread(
        forum.member, forum.slug, "general", "Why <b>does</b> my bread sink?", "It rises, then **collapses**."
    )
    thread = created["thread"]
    await make_reply(forum.moderator, forum.slug, thread["id"], "Shorter proof: try *45 minutes*.")
    r = await forum.anon.get(f"/o/{forum.slug}/t/{thread['id']}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<title>Why &lt;b&gt;does&lt;/b&gt; my bread sink? · " in page  # escaped, never markup
    assert '<meta name="description" content="It rises, then collapses."' in page
    canonical = re.search(r'<link rel="canonical" href="([^"]+)"', page)
    assert canonical and canonical.group(1).endswith(f"/o/{forum.slug}/t/{thread['id']}/{thread['slug']}")
    assert "<strong>collapses</strong>" in page and "<em>45 minutes</em>" in page
    assert page.count('data-testid="ssr-post"') == 2
    assert '<div id="app"></div>' in page  # the app takes over in a browser
    # The canonical URL (with the slug) answers the same.
    assert (await forum.anon.get(f"/o/{forum.slug}/t/{thread['id']}/{thread['slug']}")).status_code == 200


async def test_thread_page_hides_hidden_posts_and_paginates(forum: Forum) -> None:
    created = await make_thread(forum.member, forum.slug, "general", "Long one", "first")
    thread_id = created["thread"]["id"]
    bad = await make_reply(forum.member, forum.slug, thread_id, "a secret rude remark")
    r = await forum.admin.post(f"{forum.base}/posts/{bad['id']}/flags", json={"reason": "harassment"})
    flag_id = r.json()["flag"]["id"]
    r = await forum.moderator.post(f"{forum.base}/moderation/flags/{flag_id}/resolve", json={"action": "hide"})
    assert r.status_code == 200, r.text
    for n in range(50):
        await make_reply(forum.admin, forum.slug, thread_id, f"reply number {n}")
    page = (await forum.anon.get(f"/o/{forum.slug}/t/{thread_id}")).text
    assert "secret rude remark" not in page and "This post is not shown" in page
    next_link = re.search(r'<a rel="next" href="([^"]+)"', page)
    assert next_link, "a second page is linked"
    second = await forum.anon.get(next_link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and "reply number 49" in second.text


async def test_thread_page_of_private_org_or_unknown_thread_is_404_and_writes_nothing(make_client, pool) -> None:
    private = await make_forum(make_client, visibility="private")
    created = await make_thread(private.member, private.slug, "general", "Members only", "secret")
    before = await snapshot_counts(pool, private.slug)
    for client in (private.anon, private.member):  # even members: the shareable page is for public orgs
        r = await client.get(f"/o/{private.slug}/t/{created['thread']['id']}")
        assert r.status_code == 404 and "secret" not in r.text and "Members only" not in r.text
    assert await snapshot_counts(pool, private.slug) == before
    public = await make_forum(make_client)
    for path in ("00000000-0000-0000-0000-000000000000", "not-a-thread", "%20"):
        assert (await public.anon.get(f"/o/{public.slug}/t/{path}")).status_code == 404
    assert (await public.anon.get(f"/o/no-such-org-here/t/{created['thread']['id']}")).status_code == 404
