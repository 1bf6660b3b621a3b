"""The demo org has the FAQ agent on: a new question like an earlier demo thread gets a streamed, cited
answer; an unrelated one escalates to the moderators."""

from __future__ import annotations

from backend.console import as_operator, principal_named
from backend.demo import DEMO_ORG, ensure_demo
from backend.forum import service as forum
from backend.forum.schemas import ThreadIn
from backend.orgs import service as orgs
from engine.agents.router import SignalRouter
from engine.agents.runner import run_directive
from engine.signals import row_to_signal
from tests.factories import tenant_fetch


async def _ask_and_run(app, pool, asker_name: str, title: str, body: str):
    services = app.state.services
    asker = await principal_named(asker_name)
    async with as_operator(services, asker) as ctx:
        org = await orgs.find_org(DEMO_ORG)
    async with as_operator(services, asker, org, "member") as ctx:
        created, _ = await forum.create_thread(ctx, ThreadIn(category="help-questions", title=title, body=body))
    row = await pool.fetchrow(
        f'SELECT * FROM "org_{DEMO_ORG}".signal WHERE type = $1 ORDER BY id DESC LIMIT 1', "forum.thread.created"
    )
    router = SignalRouter(redis=services.redis, streams=services.streams, runtime=services.agents, consumer="test")
    directives = [d for d in await router.route(row_to_signal(row, DEMO_ORG)) if d.package == "forum_faq_agent"]
    assert len(directives) == 1
    outcome = await run_directive(services.agents, services.redis, services.streams, DEMO_ORG, directives[0].id)
    assert outcome.status == "succeeded", outcome.error
    return created, outcome


async def test_demo_faq_agent_answers_a_similar_question_and_escalates_an_unrelated_one(app, pool, tmp_path):
    await ensure_demo(app.state.services, tmp_path)
    installed = await tenant_fetch(pool, DEMO_ORG, "SELECT enabled FROM installation WHERE package = 'forum_faq_agent'")
    assert installed and installed[0]["enabled"]
    earlier = await tenant_fetch(pool, DEMO_ORG, "SELECT id::text FROM thread WHERE title LIKE 'Fermentation stopped%'")
    thread, outcome = await _ask_and_run(
        app,
        pool,
        "hopsandhearth",
        "My fermentation stopped after two days",
        "The airlock stopped bubbling after two days. Stuck?",
    )
    assert outcome.decision.action == "reply"
    assert outcome.decision.citations[0].thread_id == earlier[0]["id"]
    posts = await tenant_fetch(
        pool, DEMO_ORG, "SELECT content_markdown FROM post WHERE thread_id = $1::uuid AND role = 'agent'", thread.id
    )
    assert any(earlier[0]["id"] in p["content_markdown"] for p in posts)
    _, unrelated = await _ask_and_run(
        app,
        pool,
        "wortwhisperer",
        "Best podcast for learning Rust?",
        "Looking for a podcast about the Rust programming language.",
    )
    assert unrelated.decision.action == "escalate"
