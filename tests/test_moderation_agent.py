"""The moderation agent: its scorer (pure), and signal → directive → execution on real PostgreSQL/Redis:
agent flags with reasons land in the queue, hides wait for a moderator unless the org opted in, a
moderator's dismissal rejects the hide, redelivery makes nothing twice, the policy dry run changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agent_packages.forum_moderation_agent.agent import assess_with_config
from agent_packages.forum_moderation_agent.scorer import PostFacts, RelatedThread, assess
from engine.agents.router import SignalRouter
from engine.agents.runner import run_directive
from engine.signals import Signal, row_to_signal
from tests.factories import Forum, make_forum, make_reply, make_thread, tenant_fetch

PACKAGE = "forum_moderation_agent"
DAY = 86_400.0
SPAM = (
    "Congratulations, you have won a $500 gift card! Claim it now at http://bit.ly/free-gift-x "
    "or WhatsApp me: +44 7700 900123. Check out my channel too!"
)
ESTABLISHED = PostFacts(body="", account_age_s=90 * DAY, author_post_count=40)


def facts(body: str, **kw: Any) -> PostFacts:
    return PostFacts(body=body, account_age_s=kw.pop("account_age_s", 90 * DAY), author_post_count=40, **kw)


# --- the scorer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (SPAM, "scam_phrasing"),
        ("Subscribe to my channel for daily beats, link in bio", "self_promotion"),
        ("http://bit.ly/3xYz", "link_only"),
        ("Earn $300 per day working from home, no experience needed, DM me", "scam_phrasing"),
        ("Great deal on cheap replica watches, buy now: https://watches.example.xyz/?ref=a81f", "referral_link"),
        ("Please donate bitcoin to 1FHeNqx1twqM153v2PTAyieJNEALAhZvEM thanks", "crypto_address"),
        ("URGENT! You have been awarded a £900 prize. To claim call 09061701461 now", "premium_rate_or_advance_fee"),
        ("Your account has been suspended. Verify your password at http://login-check.example.net", "phishing"),
    ],
)
def test_scorer_flags_spam_with_the_rule_and_span(body, rule):
    result = assess(facts(body))
    assert result.score("spam") >= 0.7, result.reasons()
    assert rule in result.rules("spam")
    assert all(e.weight > 0 and e.detail for e in result.evidence)
    assert any(e.span for e in result.evidence if e.rule == rule)


@pytest.mark.parametrize(
    "body",
    [
        "How do I keep my fermentation temperature stable in a warm garage? I tried a water bath.",
        "The asyncio docs explain it: https://docs.python.org/3/library/asyncio-task.html - see the section on"
        " cancellation, it covers exactly the case you describe.",
        "Thanks, that worked! Marking this as solved.",
        "I LOVE THIS RECIPE",
        "This stupid bug took me all day, but the fix was a missing await.",
        "Did you win the game yesterday? Call me when you get home.",
        "Can you text me the address? My number changed to 555 0199.",
        "The offer expires tomorrow so I accepted it, starting in March.",
        "",
    ],
)
def test_scorer_leaves_normal_posts_alone(body):
    for age in (600.0, 90 * DAY):
        result = assess(facts(body, account_age_s=age))
        assert max(result.scores.values()) < 0.7, (body, age, result.reasons())


def test_scorer_toxicity_cites_the_offending_span():
    result = assess(facts("Honestly you are a complete idiot, nobody wants your answers here."))
    assert result.score("toxicity") >= 0.8
    (insult,) = [e for e in result.evidence if e.rule == "targeted_insult"]
    assert insult.span == "you are a complete idiot"
    assert assess(facts("I will kill you if you post that again")).rules("toxicity") == ["threat"]


def test_scorer_context_rules_repetition_new_accounts_duplicates_and_disabled_rules():
    body = "Hey everyone, I found a great way to fix this, look at example.com for the whole story."
    alone = assess(facts(body)).score("spam")
    repeated = assess(facts(body, same_text_other_threads=3, same_text_other_accounts=2))
    assert repeated.score("spam") > 0.9 > alone
    assert {"same_text_other_threads", "same_text_other_accounts"} <= set(repeated.rules("spam"))
    young = assess(facts(body, account_age_s=600))
    assert young.score("spam") > alone and "new_account_links" in young.rules("spam")
    assert assess(facts("hello there", account_age_s=1)).scores["spam"] == 0.0  # age alone is no evidence
    dup = assess(
        facts("How long to cold crash?", is_first_post=True, related=[RelatedThread("t1", "Cold crash time", 0.9)])
    )
    assert dup.score("duplicate") == 0.9 and dup.evidence[-1].span == "Cold crash time"
    off = assess_with_config(facts(SPAM), {"disabled_rules": ["scam_phrasing", "url_shortener"]})
    assert "scam_phrasing" not in off.rules() and off.score("spam") < assess(facts(SPAM)).score("spam")


# --- through the engine ----------------------------------------------------------------------------------


def _router(app: Any) -> SignalRouter:
    services = app.state.services
    return SignalRouter(redis=services.redis, streams=services.streams, runtime=services.agents, consumer="test")


async def _run(app: Any, slug: str, directive_id: str) -> Any:
    services = app.state.services
    return await run_directive(services.agents, services.redis, services.streams, slug, directive_id)


async def _signal_for(pool: Any, slug: str, type_: str, post_id: str) -> Signal:
    rows = await tenant_fetch(
        pool, slug, "SELECT * FROM signal WHERE type = $1 AND payload->>'post_id' = $2 ORDER BY id DESC", type_, post_id
    )
    return row_to_signal(rows[0], slug)


async def _install(forum: Forum, **config: Any) -> None:
    r = await forum.admin.put(f"{forum.base}/agents/{PACKAGE}", json={"enabled": True, "config": config})
    assert r.status_code == 200, r.text


async def _age(pool: Any, forum: Forum, who: str, days: float) -> None:
    await pool.execute(
        "UPDATE public.users SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
        uuid.UUID(forum.users[who]["id"]),
        days * DAY,
    )


async def _counts(pool: Any, slug: str) -> dict[str, int]:
    (row,) = await tenant_fetch(
        pool,
        slug,
        "SELECT (SELECT count(*) FROM directive) AS directives, (SELECT count(*) FROM moderation_flag) AS flags,"
        " (SELECT count(*) FROM signal) AS signals, (SELECT count(*) FROM post WHERE is_hidden) AS hidden,"
        " (SELECT count(*) FROM execution) AS executions",
    )
    return dict(row)


async def test_spam_from_a_new_account_is_flagged_with_reasons_and_its_hide_waits(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum)
    thread = await make_thread(forum.admin, forum.slug, "general", body="What hops for a pale ale?")
    post = await make_reply(forum.member, forum.slug, thread["thread"]["id"], SPAM)
    assert post["is_hidden"] is False
    assert (await _counts(pool, forum.slug))["flags"] == 0  # nothing screened inside the request any more

    signal = await _signal_for(pool, forum.slug, "forum.post.created", post["id"])
    router = _router(app)
    created = await router.route(signal)
    assert sorted(d.type for d in created) == ["forum.moderation.flag.create", "forum.post.hide"]
    for _ in range(3):  # redelivery: nothing new
        assert await router.route(signal) == []
    flag_directive = next(d for d in created if d.type == "forum.moderation.flag.create")
    hide_directive = next(d for d in created if d.type == "forum.post.hide")
    assert hide_directive.status == "awaiting_approval" and hide_directive.requires_approval

    outcome = await _run(app, forum.slug, flag_directive.id)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.decision.action == "flag" and outcome.decision.confidence >= 0.9
    again = await _run(app, forum.slug, flag_directive.id)
    assert again.status == "skipped"
    # the hide is not runnable until someone approves it: no agent hides on its own
    assert (await _run(app, forum.slug, hide_directive.id)).status == "skipped"
    counts = await _counts(pool, forum.slug)
    assert counts["flags"] == 1 and counts["hidden"] == 0

    queue = (await forum.moderator.get(f"{forum.base}/moderation/queue")).json()
    (item,) = queue["items"]
    (flag,) = item["flags"]
    assert item["post"]["id"] == post["id"] and item["flaggers"] == ["moderation-agent"]
    assert flag["flagger_agent_id"] == "moderation-agent" and flag["reason"] == "spam"
    assert flag["category"] == "spam" and flag["score"] >= 0.9
    assert {"scam_phrasing", "url_shortener", "phone_number"} <= set(flag["rules"])
    assert "Congratulations" in flag["notes"]  # the reasons quote what triggered them
    (detected,) = await tenant_fetch(pool, forum.slug, "SELECT * FROM signal WHERE type = 'forum.spam.detected'")
    assert detected["actor_type"] == "agent" and detected["actor_id"] == PACKAGE

    # a moderator dismisses the flag: the pending hide is rejected and the post stays visible
    r = await forum.moderator.post(f"{forum.base}/moderation/flags/{flag['id']}/resolve", json={"action": "dismiss"})
    assert r.status_code == 200, r.text
    (hide_row,) = await tenant_fetch(
        pool, forum.slug, "SELECT * FROM directive WHERE id = $1", uuid.UUID(hide_directive.id)
    )
    assert hide_row["status"] == "rejected" and str(hide_row["decided_by"]) == forum.users["moderator"]["id"]
    assert (await _run(app, forum.slug, hide_directive.id)).status == "skipped"
    assert (await _counts(pool, forum.slug))["hidden"] == 0

    # the moderator's outcome is recorded against the agent and each rule: a false flag
    moderation = (await forum.admin.get(f"{forum.base}/agents/metrics")).json()["moderation"]
    agent = moderation["false_flag_rate"]["by_agent"]["moderation-agent"]
    assert agent == {"flags": 1, "resolved": 1, "dismissed": 1, "false_flag_rate": 1.0}
    rules = {r["rule"]: r for r in moderation["false_flag_rate"]["by_rule"] if r["agent"] == "moderation-agent"}
    assert rules["scam_phrasing"]["false_flag_rate"] == 1.0 and "url_shortener" in rules
    assert moderation["time_to_review_s"]["reviewed"] == 1 and moderation["time_to_review_s"]["median"] >= 0
    assert moderation["spam_incidence"]["flagged"] == 1 and moderation["spam_incidence"]["confirmed"] == 0
    assert moderation["spam_incidence"]["confirmed_rate"] == 0.0  # data, and none confirmed
    assert moderation["confidence"]["forum_moderation_agent"]["decisions"] == 1


async def test_metrics_without_data_say_no_data_not_zero(app, make_client, pool):
    forum = await make_forum(make_client)
    moderation = (await forum.admin.get(f"{forum.base}/agents/metrics")).json()["moderation"]
    assert moderation["flags_per_day"] == [] and moderation["flags_per_day_avg"] is None
    assert moderation["time_to_review_s"] == {"reviewed": 0, "median": None, "avg": None}
    assert moderation["false_flag_rate"]["by_agent"] == {}
    assert moderation["spam_incidence"]["flagged_rate"] is None and moderation["routing"]["success_rate"] is None
    assert moderation["confidence"] == {}


async def test_a_moderator_approves_the_hide_and_the_agent_hides_once(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum)
    thread = await make_thread(forum.admin, forum.slug, "general", body="Best yeast for a saison?")
    post = await make_reply(forum.member, forum.slug, thread["thread"]["id"], SPAM)
    created = await _router(app).route(await _signal_for(pool, forum.slug, "forum.post.created", post["id"]))
    hide = next(d for d in created if d.type == "forum.post.hide")
    # a member cannot approve; a moderator can (hiding is moderators' work)
    assert (await forum.member.post(f"{forum.base}/directives/{hide.id}/approve")).status_code == 403
    r = await forum.moderator.post(f"{forum.base}/directives/{hide.id}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert (await forum.moderator.post(f"{forum.base}/directives/{hide.id}/approve")).status_code == 409
    outcome = await _run(app, forum.slug, hide.id)
    assert outcome.status == "succeeded" and outcome.result == {"hidden": True, "changed": True}
    assert (await _run(app, forum.slug, hide.id)).status == "skipped"
    assert (await _counts(pool, forum.slug))["hidden"] == 1
    (hidden,) = await tenant_fetch(pool, forum.slug, "SELECT * FROM signal WHERE type = 'forum.post.hidden'")
    assert hidden["payload"]["post_id"] == post["id"] if isinstance(hidden["payload"], dict) else True
    seen = (await forum.outsider.get(f"{forum.base}/threads/{thread['thread']['id']}")).json()["posts"]
    assert all("Congratulations" not in p.get("html", "") for p in seen)
    # no agent deletes: the row is still there
    (row,) = await tenant_fetch(pool, forum.slug, "SELECT is_deleted FROM post WHERE id = $1", uuid.UUID(post["id"]))
    assert row["is_deleted"] is False


async def test_hide_pending_review_applies_only_to_young_accounts_when_the_org_opted_in(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum, hide_pending_review_days=3)
    thread = await make_thread(forum.admin, forum.slug, "general", body="Lager temperatures?")
    young = await make_reply(forum.member, forum.slug, thread["thread"]["id"], SPAM)
    created = await _router(app).route(await _signal_for(pool, forum.slug, "forum.post.created", young["id"]))
    hide = next(d for d in created if d.type == "forum.post.hide")
    assert hide.status == "approved" and hide.decided_by == "policy:hide_pending_review"
    assert (await _run(app, forum.slug, hide.id)).result == {"hidden": True, "changed": True}

    await _age(pool, forum, "member", 30)  # an established account: the opt-in does not apply
    older = await make_reply(forum.member, forum.slug, thread["thread"]["id"], SPAM + " Again!")
    created = await _router(app).route(await _signal_for(pool, forum.slug, "forum.post.created", older["id"]))
    hide = next(d for d in created if d.type == "forum.post.hide")
    assert hide.status == "awaiting_approval"
    assert (await _counts(pool, forum.slug))["hidden"] == 1


async def test_edits_are_screened_and_normal_posts_are_not_flagged(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum)
    await _age(pool, forum, "member", 30)
    thread = await make_thread(forum.member, forum.slug, "general", body="How long should I cold crash a lager?")
    first = await _signal_for(pool, forum.slug, "forum.post.created", thread["post"]["id"])
    assert await _router(app).route(first) == []
    r = await forum.member.patch(
        f"{forum.base}/posts/{thread['post']['id']}", json={"body": SPAM, "edit_reason": "update"}
    )
    assert r.status_code == 200, r.text
    edited = await _signal_for(pool, forum.slug, "forum.post.edited", thread["post"]["id"])
    created = await _router(app).route(edited)
    assert [d.type for d in created if d.type == "forum.moderation.flag.create"]
    assert created[0].payload["revision"] == edited.payload["revision"]


async def test_repeated_text_across_threads_is_flagged(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum)
    await _age(pool, forum, "member", 30)
    body = "Hey all, I wrote up the whole thing over at brewtips.example.com, worth a read for everyone here."
    router = _router(app)
    for i in range(3):
        thread = await make_thread(forum.admin, forum.slug, "general", body=f"Question number {i} about hops")
        post = await make_reply(forum.member, forum.slug, thread["thread"]["id"], body)
        created = await router.route(await _signal_for(pool, forum.slug, "forum.post.created", post["id"]))
    assert created and "same_text_other_threads" in created[0].payload["rules"]


async def test_policy_dry_run_counts_and_lists_flags_without_any_effect(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum)
    await _age(pool, forum, "member", 30)
    thread = await make_thread(forum.admin, forum.slug, "general", body="Dry hopping times?")
    tid = thread["thread"]["id"]
    spam = await make_reply(forum.member, forum.slug, tid, SPAM)
    borderline = await make_reply(forum.member, forum.slug, tid, "My notes are on brewnotes.example.com if useful.")
    await make_reply(forum.member, forum.slug, tid, "Three days at 18C works for me.")
    before = await _counts(pool, forum.slug)
    url = f"{forum.base}/moderation/policy/dry-run"
    r = await forum.admin.post(url, json={"days": 7, "config": {"spam_threshold": 0.4}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["signals_scanned"] >= 4 and out["config"]["spam_threshold"] == 0.4
    flagged = {f["post_id"]: f for f in out["flags"]}
    assert set(flagged) == {spam["id"], borderline["id"]}
    assert flagged[spam["id"]]["flagged_now"] and not flagged[borderline["id"]]["flagged_now"]
    assert out["would_flag"] == 2 and out["flagged_with_current"] == 1 and out["newly_flagged"] == 1
    assert flagged[borderline["id"]]["rules"] and flagged[borderline["id"]]["reasons"]
    stricter = (
        await forum.admin.post(
            url,
            json={
                "config": {
                    "disabled_rules": [
                        "scam_phrasing",
                        "url_shortener",
                        "phone_number",
                        "self_promotion",
                        "contact_solicitation",
                        "money_amount",
                        "links",
                        "link_with_call_to_action",
                    ]
                }
            },
        )
    ).json()
    assert stricter["would_flag"] == 0 and stricter["no_longer_flagged"] == 1
    assert await _counts(pool, forum.slug) == before  # no directive, flag, signal or execution
    # bad input: 400, and moderators may not run it
    assert (await forum.admin.post(url, json={"config": {"spam_threshold": 2}})).status_code == 400
    assert (await forum.admin.post(url, json={"config": {"nope": 1}})).status_code == 400
    assert (await forum.admin.post(url, json={"days": 0})).status_code == 400
    assert (await forum.moderator.post(url, json={})).status_code == 403
    assert await _counts(pool, forum.slug) == before


async def test_a_new_thread_that_repeats_an_existing_one_is_flagged_as_a_likely_duplicate(app, make_client, pool):
    forum = await make_forum(make_client)
    await _install(forum)
    await _age(pool, forum, "member", 30)
    body = "How long should I cold crash a lager before kegging it, and at what temperature?"
    original = await make_thread(
        forum.admin, forum.slug, "general", title="Cold crash a lager before kegging", body=body
    )
    again = await make_thread(
        forum.member,
        forum.slug,
        "general",
        title="Cold crash lager before kegging?",
        body="How long to cold crash a lager before kegging, and how cold?",
    )
    created = await _router(app).route(await _signal_for(pool, forum.slug, "forum.post.created", again["post"]["id"]))
    (flag,) = created
    assert flag.payload["category"] == "duplicate" and flag.payload["reason"] == "duplicate"
    assert original["thread"]["id"] in flag.payload["reasons"][0]
    assert [d.type for d in created] == ["forum.moderation.flag.create"]  # a duplicate is never hidden


async def test_with_a_model_toxicity_is_confirmed_and_the_offending_span_cited(app, make_client, pool):
    from backend.agents.runtime import build_runtime
    from engine.llm import AnthropicProvider
    from engine.llm.fake_messages_api import FakeMessagesAPI, Script

    secret = "sk-" + "ant-test-moderation-0123456789"
    forum = await make_forum(make_client)
    await _install(forum)
    await _age(pool, forum, "member", 30)
    thread = await make_thread(forum.admin, forum.slug, "general", body="Is a 60 minute boil enough?")
    rude = await make_reply(forum.member, forum.slug, thread["thread"]["id"], "You are a complete idiot, go away.")
    polite = await make_reply(
        forum.member, forum.slug, thread["thread"]["id"], "What an idiot I am, I forgot the hops!"
    )
    services = app.state.services
    router = _router(app)
    (flag_rude,) = await router.route(await _signal_for(pool, forum.slug, "forum.post.created", rude["id"]))
    (flag_polite,) = await router.route(await _signal_for(pool, forum.slug, "forum.post.created", polite["id"]))
    assert flag_rude.payload["category"] == flag_polite.payload["category"] == "toxicity"
    with FakeMessagesAPI(api_key=secret, script=Script(text='TOXIC "You are a complete idiot"')) as server:
        llm = AnthropicProvider(api_key=secret, model="claude-haiku-4-5", base_url=server.base_url, timeout_s=5)
        runtime = build_runtime(services.settings, services.redis, None, llm=llm)
        confirmed = await run_directive(runtime, services.redis, services.streams, forum.slug, flag_rude.id)
        assert confirmed.status == "succeeded" and confirmed.result["flagged"] is True
        assert 'model: TOXIC "You are a complete idiot"' in confirmed.decision.reasons
        assert "You are a complete idiot" in server.requests[-1].messages[0]["content"]
        server.script = Script(text="NONE")
        cleared = await run_directive(runtime, services.redis, services.streams, forum.slug, flag_polite.id)
        assert cleared.status == "succeeded" and cleared.decision.action == "noop" and not cleared.result["flagged"]
        await llm.aclose()
    flags = await tenant_fetch(pool, forum.slug, "SELECT post_id, notes FROM moderation_flag")
    assert [str(f["post_id"]) for f in flags] == [rude["id"]] and "model: TOXIC" in flags[0]["notes"]
