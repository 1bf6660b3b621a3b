"""The demo forum `make dev` seeds: created once through the services, a second run adds nothing."""

from __future__ import annotations

from backend import demo_content as content
from backend.demo import DEMO_ORG, ensure_demo
from tests.factories import snapshot_counts, tenant_fetch


async def test_ensure_demo_seeds_a_living_forum_once(app, pool, tmp_path, make_client):
    services = app.state.services
    creds = await ensure_demo(services, tmp_path)
    assert creds.org == DEMO_ORG and (tmp_path / "demo_credentials.json").stat().st_mode & 0o777 == 0o600
    first = await snapshot_counts(pool, DEMO_ORG)

    again = await ensure_demo(services, tmp_path)
    assert again == creds
    assert await snapshot_counts(pool, DEMO_ORG) == first

    categories = await tenant_fetch(pool, DEMO_ORG, "SELECT slug, name, qa_mode, thread_count FROM category")
    assert sorted(c["name"] for c in categories) == sorted(c.name for c in content.CATEGORIES)
    assert {c["slug"] for c in categories if c["qa_mode"]} == {"help-questions"}
    threads = await tenant_fetch(pool, DEMO_ORG, "SELECT title, reply_count, is_solved, solution_post_id FROM thread")
    scenes = {content.LONG_THREAD.title, content.UNANSWERED.title}
    assert sorted(t["title"] for t in threads) == sorted([t.title for t in content.THREADS] + list(scenes))
    threads = [t for t in threads if t["title"] not in scenes]
    assert len(threads) >= 8 and all(2 <= t["reply_count"] <= 4 for t in threads)
    assert [t["title"] for t in threads if t["is_solved"]] == ["Fermentation stopped after two days: is it stuck?"]
    assert first["reaction"] > 0 and first["mention"] >= 1
    code = await tenant_fetch(pool, DEMO_ORG, "SELECT 1 FROM post WHERE content_html LIKE '%<pre><code%'")
    assert code, "a code block"
    members = await tenant_fetch(
        pool,
        DEMO_ORG,
        "SELECT u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id"
        " JOIN orgs o ON o.id = m.org_id WHERE o.slug = $1",
        DEMO_ORG,
    )
    roles = {m["username"]: m["role"] for m in members}
    assert roles["maltmonk"] == "moderator" and roles["hopsandhearth"] == roles["wortwhisperer"] == "member"
    # Posting limits are back on after seeding.
    settings = await tenant_fetch(pool, DEMO_ORG, "SELECT settings FROM forum_settings")
    assert '"enabled": true' in settings[0]["settings"] or settings[0]["settings"] in ("{}", {})

    # The seeded forum is what a visitor sees through the API.
    r = await make_client().get(f"/api/v1/o/{DEMO_ORG}/categories")
    assert r.status_code == 200 and len(r.json()["categories"]) == len(content.CATEGORIES)


async def test_demo_agent_scenes_flag_spam_route_the_question_and_summarize_the_long_thread(app, pool, tmp_path):
    from backend.agents.periodic import sweep_unanswered
    from engine.agents.runner import run_directive
    from tests.test_moderation_agent import _router

    services = app.state.services
    await ensure_demo(services, tmp_path)
    directives = await tenant_fetch(pool, DEMO_ORG, "SELECT id, type, status FROM directive ORDER BY id")
    by_type = {d["type"]: d for d in directives}
    assert by_type["forum.post.hide"]["status"] == "awaiting_approval"  # the hide waits for a moderator
    for kind in ("forum.moderation.flag.create", "forum.thread.summarize"):
        assert by_type[kind]["status"] == "pending"
        outcome = await run_directive(
            services.agents, services.redis, services.streams, DEMO_ORG, str(by_type[kind]["id"])
        )
        assert outcome.status == "succeeded", outcome.error
    (flag,) = await tenant_fetch(
        pool, DEMO_ORG, "SELECT * FROM moderation_flag WHERE flagger_agent_id = 'moderation-agent'"
    )
    assert flag["category"] == "spam" and "scam_phrasing" in flag["rules"] and "new_account" in " ".join(flag["rules"])
    (tldr,) = await tenant_fetch(
        pool, DEMO_ORG, "SELECT content_markdown FROM post WHERE author_agent_id = 'summary-agent' AND role = 'agent'"
    )
    text = tldr["content_markdown"]
    assert text.startswith("**TL;DR**") and "#post-" in text and "|" not in text and "```" not in text
    assert "**Decisions**" in text and "club kettle and US-05" in text

    # a minute later the worker's sweep hands the unanswered question to the routing agent
    await pool.execute(
        f'UPDATE "org_{DEMO_ORG}".installation SET config = config || \'{{"unanswered_after_minutes": 0}}\'::jsonb'
        " WHERE package = 'forum_routing_agent'"
    )
    assert await sweep_unanswered(services.agents, services.redis, services.streams) >= 1
    (signal_row,) = await tenant_fetch(
        pool,
        DEMO_ORG,
        "SELECT s.* FROM signal s JOIN thread t ON t.id::text = s.payload->>'thread_id'"
        " WHERE s.type = 'forum.thread.unanswered' AND t.title = $1",
        content.UNANSWERED.title,
    )
    from engine.signals import row_to_signal

    created = await _router(app).route(row_to_signal(signal_row, DEMO_ORG))
    assert 1 <= len(created) <= 2  # at most `per_thread` people
    assert created[0].payload["username"] == "maltmonk"  # the accepted answer in Help & Questions ranks first
    for notify in created:
        outcome = await run_directive(services.agents, services.redis, services.streams, DEMO_ORG, notify.id)
        assert outcome.result["notified"] is True
    experts = await tenant_fetch(
        pool, DEMO_ORG, "SELECT u.username FROM expert_notification e JOIN users u ON u.id = e.user_id"
    )
    assert "maltmonk" in {e["username"] for e in experts} and "hopsandhearth" not in {e["username"] for e in experts}
