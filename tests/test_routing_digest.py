"""The routing agent (unanswered questions → experts, caps, opt-out, idempotency under redelivery) and the
weekly digest (once per week per category, even with two workers), through signals → directives →
executions on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.agents.periodic import iso_week, sweep_digests, sweep_unanswered
from tests.factories import Forum, make_forum, make_reply, make_thread, tenant_fetch
from tests.test_moderation_agent import _router, _run

ROUTING = "forum_routing_agent"
SUMMARY = "forum_summary_agent"


async def _install(forum: Forum, package: str, **config: Any) -> None:
    r = await forum.admin.put(f"{forum.base}/agents/{package}", json={"enabled": True, "config": config})
    assert r.status_code == 200, r.text


async def _signals(pool: Any, slug: str, type_: str) -> list[Any]:
    from engine.signals import row_to_signal

    rows = await tenant_fetch(pool, slug, "SELECT * FROM signal WHERE type = $1 ORDER BY id", type_)
    return [row_to_signal(r, slug) for r in rows]


async def _history(forum: Forum) -> None:
    """The member has an accepted, liked answer in `help`; the moderator one plain reply."""
    q = await make_thread(forum.admin, forum.slug, "help", title="Yeast for lagers?", body="Which yeast for a lager?")
    answer = await make_reply(forum.member, forum.slug, q["thread"]["id"], "W-34/70 at 10 degrees works well.")
    r = await forum.admin.post(f"{forum.base}/threads/{q['thread']['id']}/solve", json={"post_id": answer["id"]})
    assert r.status_code == 200, r.text
    r = await forum.admin.post(f"{forum.base}/posts/{answer['id']}/reactions", json={"type": "like"})
    assert r.status_code == 200, r.text
    q2 = await make_thread(forum.admin, forum.slug, "help", title="Mash temperature?", body="What mash temp?")
    await make_reply(forum.moderator, forum.slug, q2["thread"]["id"], "Around 66 degrees for a balanced body.")


async def _ask(forum: Forum, client: Any, title: str) -> str:
    thread = await make_thread(client, forum.slug, "help", title=title, body=f"{title} Any advice welcome.")
    return thread["thread"]["id"]


async def test_unanswered_question_notifies_the_likely_expert_within_caps(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum, ROUTING, unanswered_after_minutes=0, per_thread=1, per_user_daily=1, min_score=0.1)
    await _history(forum)
    services = app.state.services
    runtime, redis, streams = services.agents, services.redis, services.streams
    first = await _ask(forum, forum.admin, "How long to lager a pilsner?")

    assert await sweep_unanswered(runtime, redis, streams) >= 1
    assert await sweep_unanswered(runtime, redis, streams) == 0  # once per thread, whatever the number of sweeps
    (signal,) = [
        s for s in await _signals(pool, forum.slug, "forum.thread.unanswered") if s.payload["thread_id"] == first
    ]
    router = _router(app)
    created = await router.route(signal)
    (notify,) = created
    assert notify.type == "forum.expert.notify" and notify.payload["user_id"] == forum.users["member"]["id"]
    assert (
        notify.idempotency_key == f"forum.expert.notify:{forum.slug}:{first}:{forum.users['member']['id']}:unanswered"
    )
    for _ in range(3):  # redelivery: nobody is notified twice
        assert await router.route(signal) == []
    outcome = await _run(app, forum.slug, notify.id)
    assert outcome.status == "succeeded" and outcome.result["notified"] is True, outcome
    assert "accepted answer" in outcome.decision.reasons[0]
    inbox = (await forum.member.get(f"{forum.base}/notifications")).json()
    assert [n["kind"] for n in inbox["items"]].count("expert_request") == 1
    assert (await _run(app, forum.slug, notify.id)).status == "skipped"

    # the member reached the daily cap (1): the next question goes to the moderator, the asker never
    second = await _ask(forum, forum.admin, "Is a diacetyl rest needed?")
    await sweep_unanswered(runtime, redis, streams)
    (signal2,) = [
        s for s in await _signals(pool, forum.slug, "forum.thread.unanswered") if s.payload["thread_id"] == second
    ]
    (notify2,) = await router.route(signal2)
    assert notify2.payload["user_id"] == forum.users["moderator"]["id"]

    # the moderator opts out: a third question finds nobody
    r = await forum.moderator.put(f"{forum.base}/me/expert-requests", json={"opted_out": True})
    assert r.status_code == 200 and r.json() == {"opted_out": True}
    assert (await forum.moderator.get(f"{forum.base}/me/expert-requests")).json() == {"opted_out": True}
    assert (await forum.moderator.put(f"{forum.base}/me/expert-requests", json={"opted_out": "yes"})).status_code == 400
    # ... and the handler re-checks it even for a directive planned before the opt-out
    assert (await _run(app, forum.slug, notify2.id)).result == {"notified": False, "reason": "opted out"}
    third = await _ask(forum, forum.admin, "Best water profile for a pilsner?")
    await sweep_unanswered(runtime, redis, streams)
    (signal3,) = [
        s for s in await _signals(pool, forum.slug, "forum.thread.unanswered") if s.payload["thread_id"] == third
    ]
    assert await router.route(signal3) == []

    # the notified member answers: routing success is recorded on the metrics
    await make_reply(forum.member, forum.slug, first, "Four to six weeks near freezing.")
    metrics = (await forum.admin.get(f"{forum.base}/agents/metrics")).json()
    routing = metrics["moderation"]["routing"]
    assert routing["notified"] == 1 and routing["answered"] == 1 and routing["success_rate"] == 1.0
    rows = await tenant_fetch(pool, forum.slug, "SELECT count(*) AS n FROM expert_notification")
    assert rows[0]["n"] == 1


async def test_answered_questions_are_not_swept(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum, ROUTING, unanswered_after_minutes=0)
    thread = await _ask(forum, forum.admin, "Cold crash before bottling?")
    await make_reply(forum.member, forum.slug, thread, "Yes, two days at 2 degrees.")
    services = app.state.services
    await sweep_unanswered(services.agents, services.redis, services.streams)
    assert [
        s for s in await _signals(pool, forum.slug, "forum.thread.unanswered") if s.payload["thread_id"] == thread
    ] == []


async def test_weekly_digest_once_per_category_and_week_even_with_two_workers(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum, SUMMARY, every_replies=0)
    top = await make_thread(forum.admin, forum.slug, "general", title="Favourite hops this season", body="Mine: Citra.")
    await make_reply(forum.member, forum.slug, top["thread"]["id"], "Mosaic, every time.")
    await make_thread(forum.member, forum.slug, "help", title="Why is my beer cloudy?", body="It stays hazy. Why?")
    services = app.state.services
    runtime, redis, streams = services.agents, services.redis, services.streams

    counts = await asyncio.gather(*(sweep_digests(runtime, redis, streams) for _ in range(2)), return_exceptions=True)
    due = await _signals(pool, forum.slug, "forum.digest.due")
    assert len(due) == 2 and {s.payload["category_id"] for s in due} == {forum.general["id"], forum.help["id"]}
    assert all(isinstance(c, int) for c in counts), counts
    router = _router(app)
    directives = []
    for signal in due:
        routed = await asyncio.gather(router.route(signal), router.route(signal))  # two workers, one directive
        directives += [d for batch in routed for d in batch]
    assert sorted(d.type for d in directives) == ["forum.digest.post", "forum.digest.post"]
    general = next(d for d in directives if d.payload["category_id"] == forum.general["id"])
    outcomes = await asyncio.gather(_run(app, forum.slug, general.id), _run(app, forum.slug, general.id))
    assert {o.status for o in outcomes} <= {"skipped", "succeeded"}  # two workers on one job: one effect
    result = next(o for o in outcomes if o.status == "succeeded").result
    assert result["posted"] and result["notified"] >= 1
    (run,) = await tenant_fetch(
        pool, forum.slug, "SELECT * FROM digest_run WHERE category_id = $1", uuid.UUID(forum.general["id"])
    )
    assert run["week"] == iso_week(datetime.now(UTC))
    detail = (await forum.member.get(f"{forum.base}/threads/{run['thread_id']}")).json()
    assert detail["thread"]["title"] == "Weekly digest: General"
    assert len(detail["posts"]) == 2  # the thread's opening post and ONE digest
    digest = detail["posts"][-1]
    assert digest["author_agent_id"] == "summary-agent" and "Favourite hops this season" in digest["html"]
    inbox = (await forum.member.get(f"{forum.base}/notifications")).json()
    assert "digest" in [n["kind"] for n in inbox["items"]]
    help_digest = next(d for d in directives if d.payload["category_id"] == forum.help["id"])
    help_result = (await _run(app, forum.slug, help_digest.id)).result
    help_posts = (await forum.member.get(f"{forum.base}/threads/{help_result['thread_id']}")).json()["posts"]
    assert "Why is my beer cloudy?" in help_posts[-1]["html"]  # waiting for an answer

    # the same week again: nothing; next week: one more per category
    await sweep_digests(runtime, redis, streams)
    assert len(await _signals(pool, forum.slug, "forum.digest.due")) == 2
    await sweep_digests(runtime, redis, streams, now=datetime.now(UTC) + timedelta(days=7))
    assert len(await _signals(pool, forum.slug, "forum.digest.due")) == 4


async def test_an_escalated_thread_is_routed_to_experts_once(app, make_client, pool):
    from agent_packages.forum_contract.signals import AgentEscalated
    from engine.signals import SignalContext, emit
    from engine.work import tenant_work

    forum = await make_forum(make_client)
    await _install(forum, ROUTING, unanswered_after_minutes=600, per_thread=2, min_score=0.1)
    await _history(forum)
    thread = await _ask(forum, forum.admin, "Which water profile for a pilsner?")
    services = app.state.services
    context = SignalContext(
        actor_type="agent", actor_id="forum_faq_agent", source="job", correlation_id=str(uuid.uuid4())
    )
    async with tenant_work(services.redis, services.streams, forum.slug, context):
        signal = await emit(
            AgentEscalated(
                agent="faq-agent",
                package="forum_faq_agent",
                thread_id=thread,
                category_id=forum.help["id"],
                post_id=None,
                directive_id=str(uuid.uuid4()),
                reason="not confident",
                reasons=["not confident"],
                notified_user_ids=[],
            )
        )
    assert signal is not None
    router = _router(app)
    created = await router.route(signal)
    assert [d.payload["reason"] for d in created] == ["escalated", "escalated"]
    assert {d.payload["user_id"] for d in created} == {forum.users["member"]["id"], forum.users["moderator"]["id"]}
    assert all(d.idempotency_key.endswith(":escalated") for d in created)
    assert await router.route(signal) == []
