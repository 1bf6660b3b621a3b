"""Real time against a real `forum web` process: channel authorization (cross-tenant included),
delivery and order, resume with `since`, resync, drafts, notifications, limits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from backend.forum.signals import AgentMentioned, FlagCreated
from backend.settings import Settings
from engine.ids import uuid7
from engine.relay import StreamConfig
from realtime.drafts import publish_draft_delta, publish_draft_end
from tests.realtime_helpers import (
    Account,
    Node,
    account,
    add_member,
    bearer_token,
    connect,
    emit_direct,
    events,
    make_category,
    make_org,
    make_thread,
    nothing_more,
    recv,
    recv_until,
    reply,
    start_node,
    subscribe,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def node(app: object, servers: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    n = await start_node(
        servers,
        tmp_path_factory.mktemp("rt"),
        ws_max_subscriptions=8,
        ws_max_message_bytes=2048,
        ws_max_connections_per_user=4,
    )
    yield n
    n.stop()


@pytest.fixture
def streams(settings: Settings) -> StreamConfig:
    return StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)


class World:
    """Public org A (admin alice, moderator carol, member bob) and private org B (admin dave)."""

    def __init__(self) -> None:
        self.alice: Account
        self.bob: Account
        self.carol: Account
        self.dave: Account
        self.a: dict[str, Any]
        self.b: dict[str, Any]
        self.cat_a: dict[str, Any]
        self.thread_a: dict[str, Any]
        self.thread_b: dict[str, Any]


@pytest.fixture(scope="module")
async def world(node: Node) -> World:
    w = World()
    w.alice, w.bob, w.carol, w.dave = [await account(node) for _ in range(4)]
    w.a = await make_org(w.alice, "public")
    w.b = await make_org(w.dave, "private")
    # These tests are about delivery, not throttling: the module posts more than the per-address limit allows
    # in a minute, and whether that minute runs out first depends on the machine's speed.
    r = await w.alice.client.put(f"/api/v1/o/{w.a['slug']}/settings", json={"posting": {"enabled": False}})
    assert r.status_code == 200, r.text
    await add_member(w.alice, w.a["slug"], w.bob)
    await add_member(w.alice, w.a["slug"], w.carol, "moderator")
    w.cat_a = await make_category(w.alice, w.a["slug"])
    w.thread_a = (await make_thread(w.alice, w.a["slug"], w.cat_a["slug"]))["thread"]
    cat_b = await make_category(w.dave, w.b["slug"])
    w.thread_b = (await make_thread(w.dave, w.b["slug"], cat_b["slug"]))["thread"]
    return w


async def test_channel_authorization(node: Node, world: World) -> None:
    w = world
    a, b = w.a["slug"], w.b["slug"]
    # Anonymous reader of the public org: public channels only.
    async with await connect(node, a) as ws:
        assert (await subscribe(ws, "org"))["op"] == "subscribed"
        assert (await subscribe(ws, f"category:{w.cat_a['id']}"))["op"] == "subscribed"
        assert (await subscribe(ws, f"thread:{w.thread_a['id']}"))["op"] == "subscribed"
        for channel, code in [
            ("moderation", "forbidden"),
            ("agent-activity", "forbidden"),
            (f"user:{w.alice.id}", "forbidden"),
            (f"thread:{uuid.uuid4()}", "not_found"),
            ("thread:not-a-uuid", "not_found"),
            ("nonsense", "invalid"),
            ("Bad Channel!", "invalid"),
        ]:
            ack = await subscribe(ws, channel) if channel != "Bad Channel!" else None
            if ack is None:
                await ws.send(json.dumps({"op": "subscribe", "channel": channel}))
                ack = (await recv_until(ws, lambda m: m["op"] == "error"))[-1]
            assert ack["op"] == "error" and ack["code"] == code, (channel, ack)
    # Private org: anonymous and non-members are refused as if it did not exist.
    for who in (None, w.bob):
        async with await connect(node, b, who) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    # Member: own user channel only; no moderation, no agent activity.
    async with await connect(node, a, w.bob) as ws:
        assert (await subscribe(ws, f"user:{w.bob.id}"))["op"] == "subscribed"
        for channel in (f"user:{w.alice.id}", "moderation", "agent-activity"):
            assert (await subscribe(ws, channel))["code"] == "forbidden"
    # Moderator: moderation yes, agent activity no. Admin: both.
    async with await connect(node, a, w.carol) as ws:
        assert (await subscribe(ws, "moderation"))["op"] == "subscribed"
        assert (await subscribe(ws, "agent-activity"))["code"] == "forbidden"
    async with await connect(node, a, w.alice) as ws:
        assert (await subscribe(ws, "moderation"))["op"] == "subscribed"
        assert (await subscribe(ws, "agent-activity"))["op"] == "subscribed"
        # Cross-tenant: another org's thread does not exist here.
        assert (await subscribe(ws, f"thread:{w.thread_b['id']}"))["code"] == "not_found"
    # A token of org B acts only in B; a bad token is refused.
    token_b = await bearer_token(w.dave, b)
    async with await connect(node, a, token=token_b) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with await connect(node, b, token=token_b) as ws:
        assert (await subscribe(ws, "agent-activity"))["op"] == "subscribed"
    async with await connect(node, b, token="fpt_nope") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    # A browser page of another site cannot ride on the session cookie.
    async with await connect(node, a, w.alice, origin="http://evil.example") as ws:  # type: ignore[arg-type]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_delivery_order_and_isolation(node: Node, world: World) -> None:
    w = world
    a, b = w.a["slug"], w.b["slug"]
    tid = w.thread_a["id"]
    async with (
        await connect(node, a, w.bob) as org_ws,
        await connect(node, a) as thread_ws,
        await connect(node, a) as cat_ws,
        await connect(node, b, w.dave) as other_ws,
    ):
        await subscribe(org_ws, "org")
        await subscribe(thread_ws, f"thread:{tid}")
        await subscribe(cat_ws, f"category:{w.cat_a['id']}")
        await subscribe(other_ws, "org")
        posts = [await reply(w.alice, a, tid, f"reply {i}") for i in range(5)]
        # Org B's write must never reach org A's sockets.
        await reply(w.dave, b, w.thread_b["id"], "elsewhere")
        for ws in (org_ws, thread_ws, cat_ws):
            got = await events(ws, 5)
            assert [e["data"]["post_id"] for e in got] == [p["id"] for p in posts]
            assert all(e["type"] == "forum.post.created" for e in got)
            ids = [e["id"] for e in got]
            assert ids == sorted(ids) and len(set(ids)) == 5
        other = await events(other_ws, 1)
        assert other[0]["data"]["thread_id"] == w.thread_b["id"]
        for ws in (org_ws, thread_ws, cat_ws, other_ws):
            await nothing_more(ws, 0.3)


async def test_moderation_agent_and_user_channels(
    node: Node, world: World, redis: Redis, streams: StreamConfig
) -> None:
    w = world
    a = w.a["slug"]
    tid, cid = w.thread_a["id"], w.cat_a["id"]
    post_id = str(uuid7())
    async with (
        await connect(node, a, w.carol) as mod_ws,
        await connect(node, a, w.alice) as admin_ws,
        await connect(node, a, w.bob) as bob_ws,
        await connect(node, a) as anon_ws,
    ):
        await subscribe(mod_ws, "moderation")
        await subscribe(admin_ws, "agent-activity")
        await subscribe(bob_ws, f"user:{w.bob.id}")
        await subscribe(anon_ws, "org")
        await emit_direct(
            w.a,
            redis,
            streams,
            [
                FlagCreated(
                    flag_id=str(uuid7()),
                    post_id=post_id,
                    thread_id=tid,
                    category_id=cid,
                    reason="spam",
                    flagger_user_id=w.bob.id,
                    flagger_agent_id=None,
                ),
                AgentMentioned(agent="faq", post_id=post_id, thread_id=tid, category_id=cid),
            ],
        )
        assert (await events(mod_ws, 1))[0]["type"] == "forum.moderation.flag.created"
        assert (await events(admin_ws, 1))[0]["type"] == "forum.agent.mentioned"
        # A reply to bob's post notifies bob, on his channel only (the forum service does it in the
        # reply's own transaction; alice mentioning herself notifies nobody).
        bob_post = await reply(w.bob, a, tid, "my question")
        await reply(w.alice, a, tid, f"an answer, says @{w.alice.user['username']}", reply_to=bob_post["id"])
        note = (await events(bob_ws, 1))[0]
        assert note["type"] == "forum.notification.created"
        assert note["data"]["kind"] == "reply" and note["data"]["user_id"] == w.bob.id
        # The anonymous org subscriber saw the posts but none of the moderation, agent or user events.
        seen = await events(anon_ws, 2)
        assert {e["type"] for e in seen} == {"forum.post.created"}
        await nothing_more(anon_ws, 0.3)
    # The inbox over HTTP, then mark read.
    r = await w.bob.client.get(f"/api/v1/o/{a}/notifications")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["unread_count"] == 1 and page["items"][0]["kind"] == "reply"
    assert page["items"][0]["actor_username"] == w.alice.user["username"]
    r = await w.bob.client.post(f"/api/v1/o/{a}/notifications/read", json={"all": True})
    assert r.status_code == 200 and r.json() == {"updated": 1}
    r = await w.bob.client.get(f"/api/v1/o/{a}/notifications", params={"unread": "true"})
    assert r.json()["items"] == [] and r.json()["unread_count"] == 0
    r = await w.bob.client.post(f"/api/v1/o/{a}/notifications/read", json={})
    assert r.status_code == 400
    r = await w.alice.client.get(f"/api/v1/o/{a}/notifications")
    # alice sees only what concerns her (bob replied in her thread), never bob's notifications
    assert all(n["actor_username"] != w.alice.user["username"] for n in r.json()["items"])


async def test_resume_with_since_exactly_once_in_order(node: Node, world: World) -> None:
    w = world
    a, tid = w.a["slug"], w.thread_a["id"]
    channel = f"thread:{tid}"
    async with await connect(node, a) as ws:
        await subscribe(ws, channel)
        first = [await reply(w.alice, a, tid, f"before {i}") for i in range(3)]
        seen = await events(ws, 3)
        assert [e["data"]["post_id"] for e in seen] == [p["id"] for p in first]
    last_seen = seen[-1]["id"]
    missed = [await reply(w.alice, a, tid, f"missed {i}") for i in range(4)]
    async with await connect(node, a) as ws:
        ack = await subscribe(ws, channel, since=last_seen)
        assert ack["op"] == "subscribed" and ack["replayed"] == 4
        replayed = [m for m in ack["before"] if m["op"] == "event"]
        assert [e["data"]["post_id"] for e in replayed] == [p["id"] for p in missed]
        live = await reply(w.alice, a, tid, "live")
        got = await events(ws, 1)
        assert got[0]["data"]["post_id"] == live["id"]
        await nothing_more(ws, 0.3)


async def test_resume_races_with_live_writes(node: Node, world: World) -> None:
    """Writes that land while the replay runs are delivered once, after the replay, in order."""
    w = world
    a, tid = w.a["slug"], w.thread_a["id"]
    channel = f"thread:{tid}"
    async with await connect(node, a) as ws:
        await subscribe(ws, channel)
        await reply(w.alice, a, tid, "anchor")
        anchor = (await events(ws, 1))[0]["id"]
    backlog = [await reply(w.alice, a, tid, f"backlog {i}") for i in range(10)]
    async with await connect(node, a) as ws:
        writer = asyncio.ensure_future(asyncio.gather(*[reply(w.alice, a, tid, f"during {i}") for i in range(10)]))
        await ws.send(json.dumps({"op": "subscribe", "channel": channel, "since": anchor}))
        during = await writer
        got = await events(ws, 20, within_s=15)
        ids = [e["data"]["post_id"] for e in got]
        assert len(ids) == len(set(ids)) == 20
        assert ids[:10] == [p["id"] for p in backlog]
        assert set(ids[10:]) == {p["id"] for p in during}
        await nothing_more(ws, 0.3)


async def test_resync_when_since_is_unknown_or_garbage(node: Node, world: World) -> None:
    async with await connect(node, world.a["slug"]) as ws:
        for since in (str(uuid7()), str(uuid.uuid4()), "garbage", "00000000-0000-7000-8000-000000000000"):
            ack = await subscribe(ws, "org", since=since)
            assert [m["op"] for m in ack["before"]] == ["resync"], since
            assert ack["before"][0]["channel"] == "org"


async def test_drafts_stream_and_late_subscriber(node: Node, world: World, redis: Redis) -> None:
    w = world
    a, tid = w.a["slug"], w.thread_a["id"]
    channel = f"thread:{tid}"
    execution = str(uuid7())
    async with await connect(node, a) as early:
        await subscribe(early, channel)
        assert await publish_draft_delta(redis, a, tid, execution, "Hel") == 1
        assert await publish_draft_delta(redis, a, tid, execution, "lo ") == 2
        got = await recv_until(early, lambda m: m["op"] == "draft" and m["seq"] == 2)
        drafts = [m for m in got if m["op"] == "draft"]
        assert [(d["seq"], d["delta"]) for d in drafts] == [(1, "Hel"), (2, "lo ")]
        assert drafts[0]["execution_id"] == execution and drafts[0]["channel"] == channel
        async with await connect(node, a) as late:
            ack = await subscribe(late, channel)
            snap = [m for m in ack["before"] if m["op"] == "draft"]
            assert len(snap) == 1 and snap[0]["delta"] == "Hello " and snap[0]["seq"] == 2
            assert snap[0]["snapshot"] is True
            await publish_draft_delta(redis, a, tid, execution, "world")
            await publish_draft_end(redis, a, tid, execution, "post-1")
            for ws in (early, late):
                msgs = await recv_until(ws, lambda m: m["op"] == "draft_end")
                assert [(m["op"], m.get("seq"), m.get("delta")) for m in msgs] == [
                    ("draft", 3, "world"),
                    ("draft_end", None, None),
                ]
                assert msgs[-1]["post_id"] == "post-1" and msgs[-1]["execution_id"] == execution
        # Another org's subscriber of a same-named thread channel hears nothing.
    async with await connect(node, a) as after:
        ack = await subscribe(after, channel)
        assert [m for m in ack["before"] if m["op"] == "draft"] == []


async def test_limits_and_protocol_errors(node: Node, world: World) -> None:
    w = world
    a = w.a["slug"]
    async with await connect(node, a) as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert (await recv(ws))["op"] == "pong"
        await ws.send("not json")
        assert (await recv(ws))["code"] == "invalid"
        await ws.send(json.dumps({"op": "dance"}))
        assert (await recv(ws))["code"] == "invalid"
        await ws.send(json.dumps({"op": "unsubscribe", "channel": "org"}))
        assert (await recv(ws))["op"] == "unsubscribed"
        for i in range(8):
            assert (await subscribe(ws, f"thread:{w.thread_a['id']}" if i == 0 else "org"))["op"] == "subscribed"
        ack = await subscribe(ws, f"category:{w.cat_a['id']}")
        assert ack["op"] == "subscribed"
        # 8 subscriptions max (thread, org, category = 3 distinct so far): fill up and overflow.
    async with await connect(node, a) as ws:
        channels = ["org", f"thread:{w.thread_a['id']}", f"category:{w.cat_a['id']}"]
        for ch in channels:
            await subscribe(ws, ch)
        # Message size: 2048 bytes max → 1009.
        await ws.send(json.dumps({"op": "subscribe", "channel": "x" * 4000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # Connections per user: 4 max on this node.
    sockets = [await connect(node, a, w.bob) for _ in range(4)]
    try:
        for s in sockets:
            await s.send(json.dumps({"op": "ping"}))
            assert (await recv(s))["op"] == "pong"
        async with await connect(node, a, w.bob) as extra:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(extra)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029
    finally:
        for s in sockets:
            await s.close()
    await asyncio.sleep(0.2)
    async with await connect(node, a, w.bob) as again:
        await again.send(json.dumps({"op": "ping"}))
        assert (await recv(again))["op"] == "pong"
