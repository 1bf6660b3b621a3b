"""The welcome agent greets a member in their own first thread, or by a notification when their first
post is a reply in someone else's thread (never a post there); its greeting can never be the solution."""

from __future__ import annotations

from engine.agents.router import SignalRouter
from engine.agents.runner import run_directive
from engine.signals import row_to_signal
from tests.factories import make_forum, make_reply, make_thread

WELCOME = "forum_welcome_agent"


async def _route_last(app, pool, slug: str, type_: str):
    row = await pool.fetchrow(f'SELECT * FROM "org_{slug}".signal WHERE type = $1 ORDER BY id DESC LIMIT 1', type_)
    services = app.state.services
    router = SignalRouter(redis=services.redis, streams=services.streams, runtime=services.agents, consumer="test")
    return await router.route(row_to_signal(row, slug))


async def test_first_post_as_a_reply_is_welcomed_by_notification_not_in_the_thread(app, make_client, pool):
    forum = await make_forum(make_client)
    r = await forum.admin.put(f"{forum.base}/agents/{WELCOME}", json={"enabled": True, "config": {}})
    assert r.status_code == 200
    others = await make_thread(forum.moderator, forum.slug, "general", "Someone else's thread", "Hello there all")
    await make_reply(forum.member, forum.slug, others["thread"]["id"], "My very first post, in your thread")
    created = await _route_last(app, pool, forum.slug, "forum.post.created")
    assert [d.type for d in created] == ["forum.user.notify"]
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    assert outcome.status == "succeeded", outcome.error
    schema = f'"org_{forum.slug}"'
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 0
    kinds = await pool.fetch(f"SELECT kind, user_id::text FROM {schema}.notification WHERE kind = 'welcome'")
    assert [(k["kind"], k["user_id"]) for k in kinds] == [("welcome", forum.users["member"]["id"])]
    # their later own thread is not greeted again: one welcome per member
    await make_thread(forum.member, forum.slug, "general", "My own thread now", "A question of mine")
    assert await _route_last(app, pool, forum.slug, "forum.post.created") == []


async def test_a_greeting_in_the_members_own_thread_cannot_be_its_solution(app, make_client, pool):
    forum = await make_forum(make_client)
    await forum.admin.put(f"{forum.base}/agents/{WELCOME}", json={"enabled": True, "config": {}})
    mine = await make_thread(forum.member, forum.slug, "help", "Need help with my mash", "What temperature?")
    created = await _route_last(app, pool, forum.slug, "forum.post.created")
    assert [d.type for d in created] == ["forum.post.create"]
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    greeting = outcome.result["post_id"]
    thread_id = mine["thread"]["id"]
    posts = (await forum.member.get(f"{forum.base}/threads/{thread_id}")).json()["posts"]
    assert [p["id"] for p in posts if p["role"] == "agent"] == [greeting]
    r = await forum.member.post(f"{forum.base}/threads/{thread_id}/solve", json={"post_id": greeting})
    assert r.status_code == 422 and "greeting" in r.text
    r = await forum.member.post(f"{forum.base}/posts/{greeting}/feedback", json={"helpful": True, "solved": True})
    assert r.status_code == 422
