"""The typed forum contract: what producers emit decodes into the Structs consumers read, and a producer
and a consumer that disagree fail here."""

from __future__ import annotations

import msgspec
import pytest

from agent_packages.forum_contract import signals as contract
from agent_packages.forum_contract.directives import ALL_DIRECTIVES, PostCreate
from agent_packages.forum_contract.reads import ALL_READS
from backend.agents.runtime import PACKAGES
from backend.realtime_channels import channels_for
from engine.agents.api import DirectiveRequest, DirectiveView
from engine.signals import REGISTRY, row_to_signal
from tests.factories import make_forum, make_reply, make_thread


async def test_every_signal_a_real_flow_stores_decodes_into_its_contract_struct(app, make_client, pool):
    forum = await make_forum(make_client)
    created = await make_thread(forum.member, forum.slug, "help", "Yeast for lagers", "Which yeast for a lager?")
    thread_id = created["thread"]["id"]
    reply = await make_reply(forum.moderator, forum.slug, thread_id, "Use W-34/70, and ask @faq-agent too.")
    r = await forum.member.post(f"{forum.base}/posts/{reply['id']}/reactions", json={"type": "like"})
    assert r.status_code in (200, 201), r.text
    r = await forum.member.post(f"{forum.base}/threads/{thread_id}/solve", json={"post_id": reply["id"]})
    assert r.status_code == 200, r.text
    rows = await pool.fetch(f'SELECT * FROM "org_{forum.slug}".signal ORDER BY id')
    decoded_types = set()
    for row in rows:
        signal = row_to_signal(row, forum.slug)
        registered = REGISTRY[signal.type].payload_type
        payload = contract.payload_of(signal, registered)  # strict: every field the consumer reads is there
        assert msgspec.to_builtins(payload) == signal.payload  # and nothing the contract does not know
        decoded_types.add(signal.type)
    assert {
        "forum.thread.created",
        "forum.post.created",
        "forum.agent.mentioned",
        "forum.post.reacted",
        "forum.thread.solved",
    } <= decoded_types


def test_a_producer_and_consumer_that_disagree_fail():
    from datetime import UTC, datetime

    from engine.signals import Signal

    signal = Signal(
        id="0",
        type="forum.thread.created",
        version=1,
        tenant="t",
        actor_type="user",
        actor_id=None,
        source="web",
        correlation_id="c",
        causation_id=None,
        dedupe_key=None,
        occurred_at=datetime.now(UTC),
        payload={
            "thread_id": "x",
            "category_id": "y",
            "title": "no first_post_id",
            "slug": "s",
            "author_user_id": None,
        },
    )
    with pytest.raises(contract.SignalMismatch, match="first_post_id"):
        contract.payload_of(signal, contract.ThreadCreated)
    with pytest.raises(contract.SignalMismatch, match="is not"):
        contract.payload_of(signal, contract.PostCreated)


def test_every_consumed_signal_and_requested_directive_is_in_the_contract():
    directive_types = {d.directive_type for d in ALL_DIRECTIVES}
    for package in PACKAGES:
        for signal_type in package.manifest.consumes:
            assert signal_type in REGISTRY, f"{package.manifest.name} consumes unregistered {signal_type}"
        for directive_type in package.manifest.directives:
            assert directive_type in directive_types, f"{package.manifest.name}: {directive_type} has no payload"


def test_the_host_serves_every_contract_read_and_applies_every_contract_directive(app):
    runtime = app.state.services.agents
    assert {q.read_name for q in ALL_READS} <= set(runtime.reads)
    assert {d.directive_type for d in ALL_DIRECTIVES} <= set(runtime.handlers)


def test_directive_payloads_round_trip_and_reject_what_does_not_fit():
    request = DirectiveRequest.of(PostCreate(purpose="faq_answer", thread_id="t1", reply_to_post_id="p1"), "k")
    assert request.type == "forum.post.create"
    view = DirectiveView(
        id="d", type=request.type, idempotency_key="k", tenant="t", package=None, payload=request.payload, attempt=1
    )
    assert view.payload_as(PostCreate).thread_id == "t1"
    broken = msgspec.structs.replace(view, payload={"purpose": "x"})
    with pytest.raises(msgspec.ValidationError, match="thread_id"):
        broken.payload_as(PostCreate)


@pytest.mark.parametrize("name", sorted(n for n in REGISTRY if n.startswith("forum.")))
def test_channel_routing_reads_the_contract_fields(name):
    """Every forum payload with a thread or category id reaches that channel (routing decodes the contract's
    ChannelKeys view, so renaming such a field breaks this test, not production)."""
    payload_type = REGISTRY[name].payload_type
    fields = set(payload_type.__struct_fields__)
    from datetime import UTC, datetime

    from engine.signals import Signal

    values = {f: f"v-{f}" for f in fields}
    signal = Signal(
        id="0",
        type=name,
        version=1,
        tenant="t",
        actor_type="user",
        actor_id=None,
        source="web",
        correlation_id="c",
        causation_id=None,
        dedupe_key=None,
        occurred_at=datetime.now(UTC),
        payload=values,
    )
    channels = channels_for(signal)
    if name.startswith("forum.notification."):
        assert channels == ["user:v-user_id"]
    elif name == "forum.agent.escalated":
        assert channels == ["agent-activity", "moderation"]
    elif channels and channels[0] == "org":
        if "thread_id" in fields:
            assert "thread:v-thread_id" in channels
        if "category_id" in fields:
            assert "category:v-category_id" in channels
