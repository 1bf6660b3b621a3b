"""The summary agent: on request (202 with the directive, idempotent while the thread is unchanged) and
every N replies, a TL;DR written as an agent post through the directive path."""

from __future__ import annotations

from engine.agents.runner import run_directive
from tests.factories import create_org, register_and_login
from tests.test_agents import _last_signal, _router

SUMMARY = "forum_summary_agent"


async def _thread_with_replies(make_client, replies: int):
    admin = make_client()
    await register_and_login(admin)
    org = await create_org(admin, visibility="public")
    base = f"/api/v1/o/{org['slug']}"
    assert (await admin.post(f"{base}/categories", json={"name": "General"})).status_code == 201
    assert (await admin.put(f"{base}/settings", json={"posting": {"enabled": False}})).status_code == 200
    r = await admin.post(
        f"{base}/threads",
        json={
            "category": "general",
            "title": "Which yeast for a cold lager?",
            "body": "My basement stays at 10 degrees. Which lager yeast works at that temperature?",
        },
    )
    thread = r.json()["thread"]
    answers = [
        "Saflager W-34/70 ferments cleanly at 10 degrees and is very forgiving.",
        "I agree, W-34/70 is the usual choice; pitch two packets for a cold lager.",
        "Diamond lager yeast also works well at 10 degrees if you cannot find W-34/70.",
    ]
    for i in range(replies):
        r = await admin.post(f"{base}/threads/{thread['id']}/posts", json={"body": answers[i % len(answers)]})
        assert r.status_code == 201, r.text
    return admin, org, base, thread


async def test_summary_needs_the_agent_enabled(app, make_client, pool):
    admin, org, base, thread = await _thread_with_replies(make_client, 1)
    r = await admin.post(f"{base}/threads/{thread['id']}/summary")
    assert r.status_code == 409 and "not enabled" in r.json()["detail"]
    assert await pool.fetchval(f'SELECT count(*) FROM "org_{org["slug"]}".directive') == 0
    anonymous = make_client(ip="192.0.2.200")
    assert (await anonymous.post(f"{base}/threads/{thread['id']}/summary")).status_code == 401


async def test_summary_on_request_is_idempotent_and_posts_a_tldr(app, make_client, pool):
    admin, org, base, thread = await _thread_with_replies(make_client, 3)
    r = await admin.put(f"{base}/agents/{SUMMARY}", json={"enabled": True, "config": {"every_replies": 0}})
    assert r.status_code == 200, r.text
    first = await admin.post(f"{base}/threads/{thread['id']}/summary")
    assert first.status_code == 202, first.text
    again = await admin.post(f"{base}/threads/{thread['id']}/summary")
    assert again.json()["directive_id"] == first.json()["directive_id"] and not again.json()["created"]
    assert (await admin.post(f"{base}/threads/not-a-thread/summary")).status_code == 404

    services = app.state.services
    outcome = await run_directive(
        services.agents, services.redis, services.streams, org["slug"], first.json()["directive_id"]
    )
    assert outcome.status == "succeeded", outcome.error
    posts = (await admin.get(f"{base}/threads/{thread['id']}")).json()["posts"]
    [summary] = [p for p in posts if p["role"] == "agent"]
    assert summary["author_agent_id"] == "summary-agent" and "TL;DR" in summary["html"]
    assert "W-34/70" in summary["html"]  # extractive: it quotes what the thread agreed on
    generated = await _last_signal(pool, org["slug"], "forum.agent.summary.generated")
    assert generated.payload["post_id"] == summary["id"] and generated.payload["summary_version"] == 3


async def test_summary_every_n_replies(app, make_client, pool):
    admin, org, base, thread = await _thread_with_replies(make_client, 0)
    r = await admin.put(f"{base}/agents/{SUMMARY}", json={"enabled": True, "config": {"every_replies": 2}})
    assert r.status_code == 200
    router = _router(app)
    created = []
    for body in ("First answer: use W-34/70.", "Second answer: pitch two packets."):
        r = await admin.post(f"{base}/threads/{thread['id']}/posts", json={"body": body})
        assert r.status_code == 201
        created += await router.route(await _last_signal(pool, org["slug"], "forum.post.created"))
    assert [d.type for d in created] == ["forum.thread.summarize"]  # after the 2nd reply, not the 1st
    assert created[0].idempotency_key.endswith(f":{thread['id']}:2")


STRUCTURED = [
    "## Which fermenter?\n\nI want to brew **lagers** at home. Which fermenter should I buy for a cold garage?",
    "> Which fermenter should I buy\n\nHere is how the two I own compare:\n\n| fermenter | price |\n|---|---|\n"
    "| Conical | 300 |\n| Bucket | 20 |\n\nThe conical one is easier to clean after a long lager.",
    "1. Sanitize everything first.\n2. Keep it at 10 degrees with a `temp controller`.\n\n```\nset 10C\n```\n"
    "We decided to go with the bucket for the first batch.",
    "What about [fermentation chambers](https://example.org/chambers) for very cold garages in winter?",
]


def test_tldr_turns_markdown_into_readable_sentences_linked_to_their_posts():
    from agent_packages.forum_summary_agent.agent import render_tldr
    from agent_packages.forum_summary_agent.summarizer import PostText

    posts = [
        PostText(author=a, body=b, ref=f"/o/x/t/1#post-{i}")
        for i, (a, b) in enumerate(zip(["ana", "ben", "cy", "dee"], STRUCTURED, strict=True))
    ]
    text = render_tldr("Which fermenter?", posts, 120)
    body = text.split("\n", 1)[1]
    for leaked in ("|", "```", "##", "> ", "`", "**lagers**", "](https://"):
        assert leaked not in body.replace("**Decisions**", "").replace("**Open questions**", ""), (leaked, text)
    points = [line for line in text.splitlines() if line.startswith("- ")]
    assert points and all(line.endswith(")") and "#post-" in line for line in points)
    assert "- ana says: I want to brew lagers at home. (" in text
    assert all(line.rstrip(")").split(" ([post]")[0][-1] in ".?!" for line in points)  # complete sentences
    assert "**Decisions**" in text and "We decided to go with the bucket" in text
    assert "**Open questions**" in text and "fermentation chambers for very cold garages" in text


async def test_what_changed_since_you_last_read(app, make_client, pool):
    from tests.factories import make_forum, make_reply, make_thread

    forum = await make_forum(make_client)
    thread = await make_thread(forum.member, forum.slug, "general", title="Lager temperatures", body="What temp?")
    tid = thread["thread"]["id"]
    await make_reply(forum.admin, forum.slug, tid, "Ten degrees for two weeks, then **lager** it cold.")
    first = (await forum.member.get(f"{forum.base}/threads/{tid}/changes")).json()
    assert first["last_read_at"] is None and first["new_posts"] == 1  # never read: all but your own posts
    r = await forum.member.post(f"{forum.base}/threads/{tid}/read")
    assert r.status_code == 200, r.text
    assert (await forum.member.get(f"{forum.base}/threads/{tid}/changes")).json()["new_posts"] == 0
    await make_reply(forum.moderator, forum.slug, tid, "A diacetyl rest at 18 degrees helps at the end.")
    await make_reply(forum.member, forum.slug, tid, "Thanks, noted.")  # your own post is not news to you
    changes = (await forum.member.get(f"{forum.base}/threads/{tid}/changes")).json()
    assert changes["last_read_at"] is not None and changes["new_posts"] == 1
    (point,) = changes["points"]
    assert point["text"].startswith(forum.users["moderator"]["username"]) and "diacetyl rest" in point["text"]
    assert point["link"].endswith(f"#post-{point['post_id']}")
    assert (await forum.anon.get(f"{forum.base}/threads/{tid}/changes")).status_code == 401
    assert (await forum.member.get(f"{forum.base}/threads/nope/changes")).status_code == 404
