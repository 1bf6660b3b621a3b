"""The welcome agent through the real anthropic SDK against a local fake Messages API: the reply is
streamed into the thread's draft, saved once, metered, and the API key appears nowhere we store or log."""

from __future__ import annotations

import logging

import msgspec
import pytest

from backend.agents.runtime import build_runtime
from engine.agents.runner import run_directive
from engine.llm import AnthropicProvider
from engine.llm.fake_messages_api import FakeMessagesAPI, Script
from realtime.drafts import draft_snapshots
from tests.test_agents import _forum_with_agent, _last_signal, _newbie_posts, _router

SECRET = "sk-" + "ant-test-0123456789abcdefSECRET"  # a fake key, built so no scanner mistakes it for a real one
REPLY = "Welcome aboard! Have a look at General, and tell us which yeast you used."


@pytest.fixture
def fake_api():
    with FakeMessagesAPI(api_key=SECRET, script=Script(text=REPLY)) as server:
        yield server


async def test_anthropic_welcome_is_metered_streamed_and_keeps_the_key_secret(app, make_client, pool, fake_api, caplog):
    caplog.set_level(logging.DEBUG)
    services = app.state.services
    llm = AnthropicProvider(api_key=SECRET, model="claude-haiku-4-5", base_url=fake_api.base_url, timeout_s=5)
    runtime = build_runtime(services.settings, services.redis, None, llm=llm)
    _, org, base = await _forum_with_agent(make_client)
    newbie, thread = await _newbie_posts(make_client, org, base, body="hi")
    created = await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created"))
    deltas: list[str] = []
    original = runtime.drafts

    def recording_drafts(tenant, directive, execution_id):
        inner = original(tenant, directive, execution_id)

        class Recording:
            async def delta(self, text):
                deltas.append(text)
                await inner.delta(text)

            async def end(self, result):
                await inner.end(result)

        return Recording()

    runtime.drafts = recording_drafts
    outcome = await run_directive(runtime, services.redis, services.streams, org["slug"], created[0].id)
    await llm.aclose()
    assert outcome.status == "succeeded", outcome.error

    # the SDK really talked to the fake, with the key in its header and our token budget
    request = fake_api.requests[-1]
    assert request.key_matched and request.stream
    assert request.max_tokens <= 300  # the package's budget clamps the request

    # streamed token by token into the draft, then saved once as the agent's post
    assert len(deltas) > 3 and "".join(deltas) == REPLY
    assert await draft_snapshots(services.redis, org["slug"], thread["id"]) == []  # draft ended
    detail = (await newbie.get(f"{base}/threads/{thread['id']}")).json()
    [post] = [p for p in detail["posts"] if p["role"] == "agent"]
    assert "Welcome aboard!" in post["html"] and post["agent_model"] == "claude-haiku-4-5"

    # metered: tokens, cost, provider and model on the execution
    execution = await pool.fetchrow(
        f'SELECT * FROM "org_{org["slug"]}".execution WHERE id = $1::uuid', outcome.execution_id
    )
    assert execution["provider"] == "anthropic" and execution["model"] == "claude-haiku-4-5"
    assert execution["output_tokens"] > 0 and execution["input_tokens"] > 0
    assert float(execution["cost_usd"]) > 0

    # the key is nowhere: not in executions, directives, signals, posts, nor in any log record
    schema = f'"org_{org["slug"]}"'
    for table in ("execution", "directive", "signal", "post"):
        rows = await pool.fetch(f"SELECT * FROM {schema}.{table}")
        assert SECRET not in msgspec.json.encode([dict(r) for r in rows], enc_hook=str).decode(), table
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert SECRET not in repr(llm)


async def test_llm_failure_is_recorded_without_the_key_and_retried(app, make_client, pool):
    with FakeMessagesAPI(api_key=SECRET, script=Script(text=REPLY, fail_after_deltas=2)) as server:
        services = app.state.services
        llm = AnthropicProvider(api_key=SECRET, model="claude-haiku-4-5", base_url=server.base_url, timeout_s=5)
        runtime = build_runtime(services.settings, services.redis, None, llm=llm)
        _, org, base = await _forum_with_agent(make_client)
        await _newbie_posts(make_client, org, base)
        created = await _router(app).route(await _last_signal(pool, org["slug"], "forum.post.created"))
        outcome = await run_directive(runtime, services.redis, services.streams, org["slug"], created[0].id)
        assert outcome.status == "retry"  # a mid-stream overload is retryable: the directive waits again
        server.script = Script(text=REPLY)
        outcome = await run_directive(runtime, services.redis, services.streams, org["slug"], created[0].id)
        assert outcome.status == "succeeded"
        await llm.aclose()
    schema = f'"org_{org["slug"]}"'
    rows = await pool.fetch(f"SELECT attempt, status, error FROM {schema}.execution ORDER BY attempt")
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "succeeded")]
    assert "Unavailable" in rows[0]["error"] and SECRET not in rows[0]["error"]
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.post WHERE role = 'agent'") == 1
