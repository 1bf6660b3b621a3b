"""The FAQ agent end to end on real Postgres and Redis: signal → directive → execution → streamed reply
with citations → feedback, offline and through the real anthropic SDK against the fake Messages API;
below the threshold it escalates (notification, moderation channel) and posts nothing; a redelivered signal
answers once; a private category's thread is never cited to an outsider; imported signals trigger nothing;
a package calling a read it did not declare is refused and the refusal is recorded on the execution."""

from __future__ import annotations

import asyncio
import dataclasses

import msgspec
import pytest

from backend.agents.runtime import build_runtime
from engine.agents.api import Decision, DirectiveRequest, PackageManifest
from engine.agents.router import SignalRouter
from engine.agents.runner import run_directive
from engine.llm import AnthropicProvider
from engine.llm.fake_messages_api import FakeMessagesAPI, Script
from engine.signals import Signal, row_to_signal
from realtime.drafts import DRAFT_PUBSUB_CHANNEL, DraftNotice
from tests.factories import add_member, make_category, make_forum, make_reply, make_thread, register_and_login

FAQ = "forum_faq_agent"
OLD_TITLE = "Fermentation stopped after two days: is it stuck?"
OLD_BODY = (
    "I brewed an amber ale on Saturday. Original gravity was 1.052, the airlock bubbled for two days and now "
    "it is quiet. The hydrometer reads 1.020. Is my fermentation stuck?"
)
ANSWER = (
    "Check the temperature first. If the room dropped below 17 C the yeast slowed down. Move the fermenter "
    "somewhere around 20 C, swirl it to rouse the yeast, and take another gravity reading in three days."
)
NEW_TITLE = "Fermentation stopped after two days, is it stuck?"
NEW_BODY = "My ale fermentation stopped after two days and the airlock is quiet. Gravity reads 1.022. Stuck?"


async def _last_signal(pool, slug: str, type_: str) -> Signal:
    row = await pool.fetchrow(f'SELECT * FROM "org_{slug}".signal WHERE type = $1 ORDER BY id DESC LIMIT 1', type_)
    assert row is not None, type_
    return row_to_signal(row, slug)


def _router(app, runtime=None) -> SignalRouter:
    services = app.state.services
    return SignalRouter(
        redis=services.redis, streams=services.streams, runtime=runtime or services.agents, consumer="test"
    )


async def _faq_forum(make_client, **config):
    forum = await make_forum(make_client)
    r = await forum.admin.put(
        f"{forum.base}/agents/{FAQ}", json={"enabled": True, "config": {"categories": ["help"], **config}}
    )
    assert r.status_code == 200, r.text
    old = await make_thread(forum.moderator, forum.slug, "help", OLD_TITLE, OLD_BODY)
    answer = await make_reply(forum.admin, forum.slug, old["thread"]["id"], ANSWER)
    r = await forum.moderator.post(f"{forum.base}/threads/{old['thread']['id']}/solve", json={"post_id": answer["id"]})
    assert r.status_code == 200, r.text
    return forum, old["thread"], answer


class DraftListener:
    """Collects the draft notices Redis publishes for one thread (what every web node relays)."""

    def __init__(self, redis, thread_id: str) -> None:
        self.pubsub = redis.pubsub()
        self.thread_id = thread_id
        self.notices: list[DraftNotice] = []

    async def __aenter__(self):
        await self.pubsub.subscribe(DRAFT_PUBSUB_CHANNEL)
        await self.pubsub.get_message(timeout=1)  # the subscribe confirmation
        return self

    async def drain(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is None:
                return
            notice = msgspec.json.decode(message["data"], type=DraftNotice)
            if notice.thread_id == self.thread_id:
                self.notices.append(notice)

    async def __aexit__(self, *exc):
        await self.pubsub.unsubscribe()
        await self.pubsub.aclose()

    @property
    def text(self) -> str:
        return "".join(n.delta for n in self.notices if n.kind == "delta")


async def _ask(forum, title=NEW_TITLE, body=NEW_BODY, client=None, category="help"):
    return (await make_thread(client or forum.member, forum.slug, category, title, body))["thread"]


async def test_new_question_gets_a_streamed_cited_extractive_answer_and_feedback(app, make_client, pool):
    forum, old, answer = await _faq_forum(make_client)
    thread = await _ask(forum)
    signal = await _last_signal(pool, forum.slug, "forum.thread.created")
    router = _router(app)
    created = await router.route(signal)
    assert [(d.type, d.package) for d in created] == [("forum.post.create", FAQ)]
    for _ in range(4):  # redelivered: no second directive
        assert await router.route(signal) == []
    services = app.state.services
    async with DraftListener(services.redis, thread["id"]) as drafts:
        outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
        await drafts.drain()
    assert outcome.status == "succeeded", outcome.error
    decision = outcome.decision
    assert decision.action == "reply" and decision.confidence >= 0.5
    assert [c.thread_id for c in decision.citations] == [old["id"]]
    assert decision.citations[0].post_id == answer["id"]
    # streamed token by token, then ended with the saved post
    deltas = [n for n in drafts.notices if n.kind == "delta"]
    assert len(deltas) > 10 and drafts.text == decision.output
    assert drafts.notices[-1].kind == "end" and drafts.notices[-1].post_id == outcome.result["post_id"]

    detail = (await forum.member.get(f"{forum.base}/threads/{thread['id']}")).json()
    agent_posts = [p for p in detail["posts"] if p["role"] == "agent"]
    assert len(agent_posts) == 1
    post = agent_posts[0]
    assert post["author_agent_id"] == "faq-agent"
    assert "[1]" in post["html"] and old["id"] in post["html"]  # numbered citation linking the thread
    assert "rouse the yeast" in post["html"]  # the accepted answer, quoted
    assert "no language model" in post["html"]  # labelled as extractive
    assert "Confidence" in post["html"]

    # running it again (retry, duplicate job) never posts twice
    again = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    assert again.status == "skipped"
    schema = f'"org_{forum.slug}"'
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1

    # feedback: helpful with a reason, then "this solved it" by the asker marks the thread solved
    r = await forum.member.post(
        f"{forum.base}/posts/{post['id']}/feedback", json={"helpful": True, "reason": "spot on"}
    )
    assert r.status_code == 200, r.text
    r = await forum.outsider.post(f"{forum.base}/posts/{post['id']}/feedback", json={"helpful": True, "solved": True})
    assert r.status_code == 403, r.text  # not a member
    r = await forum.member.post(f"{forum.base}/posts/{post['id']}/feedback", json={"helpful": True, "solved": True})
    assert r.status_code == 200, r.text
    solved = (await forum.member.get(f"{forum.base}/threads/{thread['id']}")).json()["thread"]
    assert solved["is_solved"] and solved["solution_post_id"] == post["id"]
    fb = await pool.fetchrow(f"SELECT helpful, reason, solved FROM {schema}.agent_feedback")
    assert fb["helpful"] and fb["solved"] and fb["reason"] is None  # the second rating replaced the first

    metrics = (await forum.admin.get(f"{forum.base}/agents/metrics")).json()["questions"]
    assert metrics["questions"] == 2 and metrics["agent_answers"] == 1
    assert metrics["deflection_rate"] == 0.5  # solved by the agent's answer, no human reply
    assert metrics["helpful_rate"] == 1.0
    assert metrics["time_to_first_response_s"] is not None
    assert metrics["answered_within_24h_rate"] == 1.0
    assert metrics["escalation_rate"] == 0.0


async def test_unrelated_question_escalates_with_reasons_and_posts_nothing(app, make_client, pool):
    forum, _, _ = await _faq_forum(make_client)
    thread = await _ask(forum, "Which kettle for induction hobs?", "Does a stainless kettle work on induction?")
    created = await _router(app).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.decision.action == "escalate" and outcome.decision.reasons
    schema = f'"org_{forum.slug}"'
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 0
    # the follow-up escalation directive runs next (the worker would pick it up from the queue)
    escalate_id = await pool.fetchval(f"SELECT id::text FROM {schema}.directive WHERE type = 'forum.agent.escalate'")
    assert escalate_id is not None
    result = await run_directive(services.agents, services.redis, services.streams, forum.slug, escalate_id)
    assert result.status == "succeeded", result.error
    escalated = await _last_signal(pool, forum.slug, "forum.agent.escalated")
    assert escalated.payload["thread_id"] == thread["id"] and escalated.payload["reasons"]
    from backend.realtime_channels import channels_for

    assert "moderation" in channels_for(escalated)
    notified = await pool.fetch(
        f"SELECT user_id::text, kind FROM {schema}.notification WHERE kind = 'agent_escalation'"
    )
    staff = {forum.users["admin"]["id"], forum.users["moderator"]["id"]}
    assert {n["user_id"] for n in notified} == staff
    metrics = (await forum.admin.get(f"{forum.base}/agents/metrics")).json()["questions"]
    assert metrics["escalation_rate"] == 0.5


async def test_category_escalation_targets_are_paged(app, make_client, pool):
    forum, _, _ = await _faq_forum(make_client)
    target = make_client(ip="192.0.2.71")
    person = await register_and_login(target)
    await add_member(forum.admin, forum.slug, person["username"])
    await make_category(forum.admin, forum.slug, "Kit", slug="kit", escalation_usernames=[person["username"]])
    r = await forum.admin.put(f"{forum.base}/agents/{FAQ}", json={"enabled": True, "config": {"categories": ["kit"]}})
    assert r.status_code == 200, r.text
    await _ask(forum, "Which kettle for induction hobs?", "Does a stainless kettle work on induction?", category="kit")
    created = await _router(app).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    services = app.state.services
    await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    schema = f'"org_{forum.slug}"'
    escalate_id = await pool.fetchval(f"SELECT id::text FROM {schema}.directive WHERE type = 'forum.agent.escalate'")
    await run_directive(services.agents, services.redis, services.streams, forum.slug, escalate_id)
    notified = await pool.fetch(f"SELECT user_id::text FROM {schema}.notification WHERE kind = 'agent_escalation'")
    assert [n["user_id"] for n in notified] == [person["id"]]


async def test_mention_and_ask_button_answer_once_per_post(app, make_client, pool):
    forum, old, _ = await _faq_forum(make_client)
    thread = await _ask(
        forum, "Quiet airlock", "Airlock quiet after two days. Is the fermentation stuck?", category="general"
    )
    # not an enabled category: a new thread there triggers nothing
    assert await _router(app).route(await _last_signal(pool, forum.slug, "forum.thread.created")) == []
    reply = await make_reply(forum.member, forum.slug, thread["id"], "@faq-agent is my fermentation stuck at 1.020?")
    mentioned = await _last_signal(pool, forum.slug, "forum.agent.mentioned")
    created = await _router(app).route(mentioned)
    assert len(created) == 1 and created[0].payload["reply_to_post_id"] == reply["id"]
    # the "Ask the agent" button on the same post returns the same directive
    r = await forum.member.post(f"{forum.base}/threads/{thread['id']}/ask", json={"post_id": reply["id"]})
    assert r.status_code == 202, r.text
    assert r.json()["directive_id"] == created[0].id and r.json()["created"] is False
    # on the opening post: a new directive (the request signal is planned at once)
    r = await forum.member.post(f"{forum.base}/threads/{thread['id']}/ask", json={})
    assert r.status_code == 202, r.text
    assert r.json()["created"] is True
    r = await forum.member.post(f"{forum.base}/threads/{thread['id']}/ask", json={"agent": "nobody-agent"})
    assert r.status_code == 404
    r = await forum.member.post(f"{forum.base}/threads/{thread['id']}/ask", json={"post_id": old["id"]})
    assert r.status_code in (400, 404)


async def test_private_category_threads_are_never_cited_to_outsiders(app, make_client, pool):
    forum = await make_forum(make_client)
    r = await forum.admin.put(f"{forum.base}/agents/{FAQ}", json={"enabled": True, "config": {"categories": ["help"]}})
    assert r.status_code == 200
    staff = await make_category(forum.admin, forum.slug, "Staff", slug="staff", is_private=True, qa_mode=True)
    assert staff["is_private"]
    shown = (await forum.member.get(f"{forum.base}/categories")).json()["categories"]
    assert "staff" not in {c["slug"] for c in shown}
    old = await make_thread(forum.moderator, forum.slug, "staff", OLD_TITLE, OLD_BODY)
    answer = await make_reply(forum.admin, forum.slug, old["thread"]["id"], ANSWER)
    await forum.moderator.post(f"{forum.base}/threads/{old['thread']['id']}/solve", json={"post_id": answer["id"]})
    # a member cannot open it, nor list it
    assert (await forum.member.get(f"{forum.base}/threads/{old['thread']['id']}")).status_code == 404
    listed = (await forum.member.get(f"{forum.base}/threads")).json()["threads"]
    assert old["thread"]["id"] not in {t["id"] for t in listed}
    # the member's question: the only matching thread is private, so the agent escalates, citing nothing
    await _ask(forum)
    created = await _router(app).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    assert outcome.decision.action == "escalate" and outcome.decision.citations == []
    schema = f'"org_{forum.slug}"'
    reads = await pool.fetchval(
        f"SELECT context::text FROM {schema}.execution WHERE id = $1::uuid", outcome.execution_id
    )
    assert old["thread"]["id"] not in reads  # not even read for the asker
    # the same question by a moderator (who may see the staff category) is answered from it
    await _ask(forum, client=forum.moderator)
    created = await _router(app).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    assert outcome.decision.action == "reply"
    assert [c.thread_id for c in outcome.decision.citations] == [old["thread"]["id"]]


async def test_imported_signals_trigger_no_agent(app, make_client, pool):
    forum, _, _ = await _faq_forum(make_client)
    await forum.admin.put(f"{forum.base}/agents/forum_welcome_agent", json={"enabled": True, "config": {}})
    await _ask(forum)
    signal = await _last_signal(pool, forum.slug, "forum.thread.created")
    imported = msgspec.structs.replace(signal, source="import")
    assert await _router(app).route(imported) == []
    assert await _router(app).route(signal) != []  # the same signal, not imported, is answered


class SnoopingAgent:
    """A test package that calls a read it did not declare a permission for."""

    manifest = PackageManifest(
        name="snooping_test_agent",
        version="0",
        title="t",
        description="t",
        agent_handle="snoop-agent",
        consumes=("forum.thread.created",),
        directives=("forum.post.create",),
        permissions=("post_as_agent",),  # no read_forum
    )

    async def plan(self, signal, ctx):
        return [
            DirectiveRequest(
                type="forum.post.create",
                idempotency_key=f"snoop:{signal.id}",
                payload={"purpose": "x", "thread_id": signal.payload["thread_id"]},
            )
        ]

    async def decide(self, directive, ctx, llm, on_delta):
        await ctx.read("forum.related_threads", text="anything", k=3)
        return Decision(action="reply", confidence=1.0, reasons=[], output="should never be posted")


async def test_undeclared_read_is_refused_and_recorded_on_the_execution(app, make_client, pool):
    forum = await make_forum(make_client)
    services = app.state.services
    runtime = build_runtime(services.settings, services.redis, None)
    runtime.add_package(SnoopingAgent())
    schema = f'"org_{forum.slug}"'
    await pool.execute(f"INSERT INTO {schema}.installation (package, enabled) VALUES ('snooping_test_agent', true)")
    await _ask(forum)
    created = await _router(app, runtime).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    assert [d.package for d in created] == ["snooping_test_agent"]
    outcome = await run_directive(runtime, services.redis, services.streams, forum.slug, created[0].id)
    assert outcome.status == "refused"
    row = await pool.fetchrow(
        f"SELECT status, error, context FROM {schema}.execution WHERE id = $1::uuid", outcome.execution_id
    )
    assert row["status"] == "refused" and "forum.related_threads" in row["error"]
    assert "read_forum" in msgspec.json.decode(row["context"])["refusals"][0]
    assert await pool.fetchval(f"SELECT status FROM {schema}.directive WHERE id = $1::uuid", created[0].id) == "refused"
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 0


@pytest.fixture
def fake_api():
    key = "sk-" + "ant-test-faq-0123456789abcdef"
    with FakeMessagesAPI(api_key=key, script=Script(text="x")) as server:
        yield server, key


@pytest.mark.parametrize(
    ("written", "posted"),
    [
        ("Warm it to about 20 C and swirl it to rouse the yeast, then check the gravity again [1].", True),
        ("Warm it up and swirl it [1], as also discussed in [2].", False),  # [2] was never given
        ("Warm it up and swirl it to rouse the yeast.", False),  # cites nothing
    ],
)
async def test_model_answer_is_posted_only_when_it_cites_what_it_was_given(
    app, make_client, pool, fake_api, written, posted
):
    server, key = fake_api
    server.script = Script(text=written)
    services = app.state.services
    llm = AnthropicProvider(api_key=key, model="claude-haiku-4-5", base_url=server.base_url, timeout_s=5)
    runtime = build_runtime(services.settings, services.redis, None, llm=llm)
    forum, old, _ = await _faq_forum(make_client)
    thread = await _ask(forum)
    created = await _router(app, runtime).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    async with DraftListener(services.redis, thread["id"]) as drafts:
        outcome = await run_directive(runtime, services.redis, services.streams, forum.slug, created[0].id)
        await drafts.drain()
    await llm.aclose()
    assert outcome.status == "succeeded", outcome.error
    request = server.requests[-1]
    assert request.key_matched and request.stream
    assert OLD_TITLE in request.system and "rouse the yeast" in request.system  # grounded in the retrieved thread
    assert drafts.text == written  # streamed as the model wrote it
    schema = f'"org_{forum.slug}"'
    agent_posts = await pool.fetch(f"SELECT content_markdown FROM {schema}.post WHERE role = 'agent'")
    recorded = msgspec.json.decode(
        await pool.fetchval(f"SELECT decision::text FROM {schema}.execution WHERE id = $1::uuid", outcome.execution_id)
    )
    if posted:
        assert outcome.decision.action == "reply"
        assert len(agent_posts) == 1 and old["id"] in agent_posts[0]["content_markdown"]
        assert key not in agent_posts[0]["content_markdown"]
    else:
        assert outcome.decision.action == "rejected" and not agent_posts
        assert recorded["action"] == "rejected" and any("rejected" in r for r in recorded["reasons"])
        assert recorded["followups"][0]["type"] == "forum.agent.escalate"
        assert drafts.notices[-1].kind == "end" and not drafts.notices[-1].post_id


async def test_feedback_input_is_checked(app, make_client, pool):
    forum, _, answer = await _faq_forum(make_client)
    r = await forum.member.post(f"{forum.base}/posts/{answer['id']}/feedback", json={"helpful": True})
    assert r.status_code == 422  # a human post
    r = await forum.member.post(f"{forum.base}/posts/{answer['id']}/feedback", json={"helpful": "yes"})
    assert r.status_code == 400


async def test_faq_config_is_typed_and_validated(app, make_client):
    forum = await make_forum(make_client)
    agents = (await forum.admin.get(f"{forum.base}/agents")).json()["agents"]
    faq = next(a for a in agents if a["package"] == FAQ)
    assert not faq["installed"] and not faq["enabled"]  # off by default in a new org
    assert "confidence_threshold" in msgspec.json.encode(faq["config_schema"]).decode()
    r = await forum.admin.put(
        f"{forum.base}/agents/{FAQ}", json={"enabled": True, "config": {"confidence_threshold": "high"}}
    )
    assert r.status_code == 422, r.text
    r = await forum.admin.put(f"{forum.base}/agents/{FAQ}", json={"enabled": True, "config": {"nonsense": 1}})
    assert r.status_code in (400, 422), r.text


_ = (asyncio, dataclasses)


async def test_compose_time_suggestions_never_show_a_private_categorys_thread_to_outsiders(app, make_client):
    forum = await make_forum(make_client)
    await make_category(forum.admin, forum.slug, "Staff", slug="staff", is_private=True)
    private = await make_thread(forum.moderator, forum.slug, "staff", OLD_TITLE, OLD_BODY)
    draft = {"title": NEW_TITLE, "body": NEW_BODY}
    r = await forum.member.post(f"{forum.base}/related", json=draft)
    assert r.status_code == 200, r.text
    assert private["thread"]["id"] not in {t["thread_id"] for t in r.json()["threads"]}
    r = await forum.moderator.post(f"{forum.base}/related", json=draft)
    assert private["thread"]["id"] in {t["thread_id"] for t in r.json()["threads"]}


async def test_faq_execution_replays_to_the_same_decision_without_a_second_post(app, make_client, pool):
    forum, _, _ = await _faq_forum(make_client)
    await _ask(forum)
    created = await _router(app).route(await _last_signal(pool, forum.slug, "forum.thread.created"))
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, forum.slug, created[0].id)
    for dry_run in (True, False):
        r = await forum.admin.post(f"{forum.base}/executions/{outcome.execution_id}/replay", json={"dry_run": dry_run})
        assert r.status_code == 200, r.text
        assert r.json()["decision"]["output"] == outcome.decision.output  # same reads, same answer
    schema = f'"org_{forum.slug}"'
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
