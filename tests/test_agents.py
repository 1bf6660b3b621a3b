"""The agent engine end to end in-process: signal → router → directive → runner → agent post, with the
offline provider. Worker-process behaviour (kill, Redis restart) is in test_agents_worker.py."""

from __future__ import annotations

import msgspec
import pytest

from engine.agents.api import DirectiveRequest, PackageManifest
from engine.agents.router import SignalRouter
from engine.agents.runner import run_directive
from engine.signals import Signal, row_to_signal
from tests.factories import create_org, register_and_login

WELCOME = "forum_welcome_agent"


async def _forum_with_agent(make_client, *, enabled: bool = True):
    admin = make_client()
    await register_and_login(admin)
    org = await create_org(admin, visibility="public")
    base = f"/api/v1/o/{org['slug']}"
    assert (await admin.post(f"{base}/categories", json={"name": "General"})).status_code == 201
    r = await admin.put(
        f"{base}/agents/{WELCOME}",
        json={"enabled": enabled, "config": {"rules_url": "https://example.com/rules"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is enabled
    return admin, org, base


async def _newbie_posts(make_client, org, base, body="hi"):
    newbie = make_client(ip="192.0.2.44")
    await register_and_login(newbie)
    assert (await newbie.post(f"/api/v1/orgs/{org['slug']}/join")).status_code == 200
    r = await newbie.post(f"{base}/threads", json={"category": "general", "title": "My first question", "body": body})
    assert r.status_code == 201, r.text
    return newbie, r.json()["thread"]


async def _last_signal(pool, slug: str, type_: str) -> Signal:
    row = await pool.fetchrow(f'SELECT * FROM "org_{slug}".signal WHERE type = $1 ORDER BY id DESC LIMIT 1', type_)
    assert row is not None
    return row_to_signal(row, slug)


def _router(app) -> SignalRouter:
    services = app.state.services
    return SignalRouter(redis=services.redis, streams=services.streams, runtime=services.agents, consumer="test")


async def test_first_post_gets_one_streamed_welcome(app, make_client, pool):
    admin, org, base = await _forum_with_agent(make_client)
    newbie, thread = await _newbie_posts(make_client, org, base, body="hi")
    signal = await _last_signal(pool, org["slug"], "forum.post.created")
    router = _router(app)
    created = await router.route(signal)
    assert [d.type for d in created] == ["forum.post.create"]
    for _ in range(9):  # the same signal delivered ten times in all: one directive
        assert await router.route(signal) == []
    schema = f'"org_{org["slug"]}"'
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.directive") == 1

    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, org["slug"], created[0].id)
    assert outcome.status == "succeeded", outcome.error
    detail = (await newbie.get(f"{base}/threads/{thread['id']}")).json()
    agent_posts = [p for p in detail["posts"] if p["role"] == "agent"]
    assert len(agent_posts) == 1
    post = agent_posts[0]
    assert post["author_agent_id"] == "welcome-agent" and post["is_agent_generated"]
    assert post["agent_model"] == "offline-extractive-v1"
    assert "Welcome" in post["html"] and "more context" in post["html"]  # short first post: asks for context

    # running the directive again (a retry after a crash, a duplicate job) never posts twice
    again = await run_directive(services.agents, services.redis, services.streams, org["slug"], created[0].id)
    assert again.status == "skipped"
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1

    # the audit chain: signal → directive → execution, with what the agent read and decided
    r = await admin.get(f"{base}/executions/{outcome.execution_id}")
    assert r.status_code == 200, r.text
    chain = r.json()
    assert chain["signal"]["id"] == signal.id and chain["signal"]["type"] == "forum.post.created"
    assert chain["directive"]["status"] == "succeeded"
    assert chain["execution"]["provider"] == "offline"
    assert chain["execution"]["decision"]["action"] == "reply"
    assert [read["query"] for read in chain["execution"]["context"]["reads"]] == [
        "forum.user",
        "forum.post",
        "forum.categories",
    ]
    assert {s["type"] for s in chain["outcome_signals"]} >= {
        "forum.agent.responded",
        "agent.execution.finished",
    }
    assert chain["execution"]["output_tokens"] > 0

    # a second post by the same member: no second welcome
    r = await newbie.post(f"{base}/threads/{thread['id']}/posts", json={"body": "More details: I use ale yeast."})
    assert r.status_code == 201
    assert await router.route(await _last_signal(pool, org["slug"], "forum.post.created")) == []


async def test_replay_dry_run_and_real_never_duplicate(app, make_client, pool):
    admin, org, base = await _forum_with_agent(make_client)
    await _newbie_posts(make_client, org, base, body="Hello all, I am new to brewing and want to learn lagers.")
    created = await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created"))
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, org["slug"], created[0].id)
    schema = f'"org_{org["slug"]}"'
    for dry_run in (True, False, False):
        r = await admin.post(f"{base}/executions/{outcome.execution_id}/replay", json={"dry_run": dry_run})
        assert r.status_code == 200, r.text
        assert r.json()["decision"]["action"] == "reply"
        assert r.json()["decision"]["output"] == outcome.decision.output  # deterministic on recorded input
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.execution WHERE dry_run") == 1
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.execution WHERE replay_of IS NOT NULL") == 3


async def test_disabled_package_receives_nothing(app, make_client, pool):
    _, org, base = await _forum_with_agent(make_client, enabled=False)
    await _newbie_posts(make_client, org, base)
    assert await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created")) == []
    assert await pool.fetchval(f'SELECT count(*) FROM "org_{org["slug"]}".directive') == 0


def _test_manifest(name: str, handle: str) -> PackageManifest:
    """A test package that consumes new posts and may request only `forum.post.create`."""
    return PackageManifest(
        name=name,
        version="0",
        title="t",
        description="t",
        agent_handle=handle,
        consumes=("forum.post.created",),
        directives=("forum.post.create",),
        permissions=("read_forum",),
    )


class GreedyAgent:
    """A test package that asks for a directive its manifest does not declare."""

    manifest = _test_manifest("greedy_test_agent", "greedy-agent")

    async def plan(self, signal, ctx):
        return [
            DirectiveRequest(
                type="forum.thread.close",
                idempotency_key=f"close:{signal.payload['thread_id']}",
                payload={"thread_id": signal.payload["thread_id"]},
            )
        ]

    async def decide(self, directive, ctx, llm, on_delta):  # pragma: no cover - never reached
        raise AssertionError("a refused directive must never run")


async def test_undeclared_directive_is_refused_and_recorded(app, make_client, pool):
    _, org, base = await _forum_with_agent(make_client, enabled=False)
    runtime = app.state.services.agents
    runtime.packages[GreedyAgent.manifest.name] = GreedyAgent()
    try:
        await pool.execute(
            f'INSERT INTO "org_{org["slug"]}".installation (package, enabled) VALUES ($1, true)',
            GreedyAgent.manifest.name,
        )
        await _newbie_posts(make_client, org, base)
        created = await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created"))
    finally:
        del runtime.packages[GreedyAgent.manifest.name]
    assert [d.status for d in created] == ["refused"]
    row = await pool.fetchrow(f'SELECT status, error FROM "org_{org["slug"]}".directive')
    assert row["status"] == "refused" and "did not declare" in row["error"]
    refusal = await _last_signal(pool, org["slug"], "agent.directive.refused")
    assert refusal.payload["package"] == "greedy_test_agent"
    thread_status = await pool.fetchval(f'SELECT status FROM "org_{org["slug"]}".thread')
    assert thread_status == "open"


async def test_agent_admin_routes_need_admin(app, make_client):
    _, org, base = await _forum_with_agent(make_client)
    member = make_client(ip="192.0.2.99")
    await register_and_login(member)
    await member.post(f"/api/v1/orgs/{org['slug']}/join")
    assert (await member.put(f"{base}/agents/{WELCOME}", json={"enabled": False})).status_code == 403
    assert (await member.get(f"{base}/signals")).status_code == 403
    assert (await member.get(f"{base}/directives")).status_code == 403


@pytest.mark.parametrize(
    "body,status",
    [
        ({"enabled": True, "config": {"nope": 1}}, 400),
        ({"enabled": True, "config": {"rate_limit_per_hour": 10_000}}, 422),
        ({"enabled": "yes"}, 400),
    ],
)
async def test_install_rejects_bad_config(app, make_client, body, status):
    admin, _, base = await _forum_with_agent(make_client)
    r = await admin.put(f"{base}/agents/{WELCOME}", json=body)
    assert r.status_code == status, r.text
    assert (await admin.put(f"{base}/agents/no_such_agent", json={"enabled": True})).status_code == 404


def test_manifest_is_serializable():
    from agent_packages.forum_welcome_agent import package

    assert msgspec.json.decode(msgspec.json.encode(package.manifest))["agent_handle"] == "welcome-agent"


async def test_rate_limit_per_package_is_enforced(app, make_client, pool):
    admin, org, base = await _forum_with_agent(make_client)
    r = await admin.put(f"{base}/agents/{WELCOME}", json={"enabled": True, "config": {"rate_limit_per_hour": 1}})
    assert r.status_code == 200
    router = _router(app)
    await _newbie_posts(make_client, org, base)
    assert len(await router.route(await _last_signal(pool, org["slug"], "forum.post.created"))) == 1
    second = make_client(ip="192.0.2.45")
    await register_and_login(second)
    await second.post(f"/api/v1/orgs/{org['slug']}/join")
    r = await second.post(f"{base}/threads", json={"category": "general", "title": "Another newcomer", "body": "hello"})
    assert r.status_code == 201
    assert await router.route(await _last_signal(pool, org["slug"], "forum.post.created")) == []
    assert await pool.fetchval(f'SELECT count(*) FROM "org_{org["slug"]}".directive') == 1
    refusal = await _last_signal(pool, org["slug"], "agent.directive.refused")
    assert "rate limit" in refusal.payload["reason"]


async def test_daily_cost_cap_stops_execution(app, make_client, pool):
    _, org, base = await _forum_with_agent(make_client)
    await _newbie_posts(make_client, org, base)
    created = await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created"))
    schema = f'"org_{org["slug"]}"'
    await pool.execute(
        f"INSERT INTO {schema}.agent_usage (day, package, executions, cost_usd) VALUES (current_date, $1, 10, 0.50)",
        WELCOME,
    )
    services = app.state.services
    outcome = await run_directive(services.agents, services.redis, services.streams, org["slug"], created[0].id)
    assert outcome.status == "failed" and "cost cap" in outcome.error
    assert await pool.fetchval(f"SELECT status FROM {schema}.directive") == "failed"
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 0


class EchoAgent:
    """Replies to every post, agents' included: the router must stop it from looping."""

    manifest = _test_manifest("echo_test_agent", "echo-agent")

    async def plan(self, signal, ctx):
        return [
            DirectiveRequest(
                type="forum.post.create",
                idempotency_key=f"echo:{signal.id}",
                payload={"thread_id": signal.payload["thread_id"]},
            )
        ]

    async def decide(self, directive, ctx, llm, on_delta):  # pragma: no cover
        raise AssertionError("not run here")


async def test_agents_do_not_trigger_themselves_or_chain_without_end(app, make_client, pool):
    _, org, base = await _forum_with_agent(make_client, enabled=False)
    runtime = app.state.services.agents
    runtime.packages[EchoAgent.manifest.name] = EchoAgent()
    schema = f'"org_{org["slug"]}"'
    try:
        await pool.execute(
            f"INSERT INTO {schema}.installation (package, enabled) VALUES ($1, true)", EchoAgent.manifest.name
        )
        await _newbie_posts(make_client, org, base)
        human = await _last_signal(pool, org["slug"], "forum.post.created")
        router = _router(app)
        [first] = await router.route(human)
        assert first.depth == 0

        async def stored(signal):  # as if the agent's post had been written: a real signal row
            await pool.execute(
                f"INSERT INTO {schema}.signal (id, type, version, actor_type, actor_id, source, correlation_id,"
                " causation_id, occurred_at, payload) VALUES ($1::uuid, $2, 1, $3, $4, 'job', $5::uuid,"
                " $6::uuid, now(), $7::jsonb)",
                signal.id,
                signal.type,
                signal.actor_type,
                signal.actor_id,
                signal.correlation_id,
                signal.causation_id,
                msgspec.json.encode(signal.payload).decode(),
            )
            return signal

        own = await stored(
            msgspec.structs.replace(
                human,
                id="00000000-0000-7000-8000-000000000001",
                actor_type="agent",
                actor_id="echo_test_agent",
                causation_id=first.id,
            )
        )
        assert await router.route(own) == []  # never triggered by its own output
        other = await stored(
            msgspec.structs.replace(own, id="00000000-0000-7000-8000-000000000003", actor_id="some_other_agent")
        )
        [second] = await router.route(other)  # one hop from another agent's output is allowed…
        assert second.depth == 1
        deeper = await stored(
            msgspec.structs.replace(other, id="00000000-0000-7000-8000-000000000002", causation_id=second.id)
        )
        assert await router.route(deeper) == []  # …but the chain stops at the configured depth
    finally:
        del runtime.packages[EchoAgent.manifest.name]


async def test_signal_explorer_and_directive_queue_filter_and_page(app, make_client, pool):
    admin, org, base = await _forum_with_agent(make_client)
    await _newbie_posts(make_client, org, base)
    await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created"))
    schema = f'"org_{org["slug"]}"'
    total = await pool.fetchval(f"SELECT count(*) FROM {schema}.signal")
    seen, cursor = [], None
    while True:  # two per page, newest first, every signal exactly once
        r = await admin.get(f"{base}/signals", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen, reverse=True)
    forum = (await admin.get(f"{base}/signals", params={"type": "forum.*"})).json()["items"]
    assert forum and all(s["type"].startswith("forum.") for s in forum)
    created = (await admin.get(f"{base}/signals", params={"type": "forum.thread.created"})).json()["items"]
    assert [s["type"] for s in created] == ["forum.thread.created"]
    chain = (await admin.get(f"{base}/signals", params={"correlation_id": created[0]["correlation_id"]})).json()
    assert {s["type"] for s in chain["items"]} >= {"forum.thread.created", "forum.post.created"}
    pending = (await admin.get(f"{base}/directives", params={"status": "pending"})).json()["items"]
    assert [d["type"] for d in pending] == ["forum.post.create"]
    assert (await admin.get(f"{base}/directives", params={"status": "succeeded"})).json()["items"] == []
    assert (await admin.get(f"{base}/directives", params={"status": "bogus"})).status_code == 400
    assert (await admin.get(f"{base}/signals", params={"cursor": "not-a-cursor"})).status_code == 400
