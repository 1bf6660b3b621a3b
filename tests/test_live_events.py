"""Live events carry what the pages draw (issue 12), against a real `forum web` process and real sockets:
created/edited posts carry `data.post` (what `GET /posts/{id}` returns to any reader), reactions,
hiding and restoring reach the thread channel with the changed fields, counters come with the event,
and a hidden post's content never reaches a member's socket (moderators get it on `moderation`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.realtime_helpers import (
    Account,
    Node,
    account,
    add_member,
    connect,
    events,
    make_category,
    make_org,
    make_thread,
    recv,
    reply,
    start_node,
    subscribe,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def node(app: object, servers: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    n = await start_node(servers, tmp_path_factory.mktemp("live"))
    yield n
    n.stop()


class World:
    def __init__(self) -> None:
        self.alice: Account  # admin
        self.bob: Account  # member
        self.carol: Account  # moderator
        self.org: str
        self.category: dict[str, Any]


@pytest.fixture(scope="module")
async def world(node: Node) -> World:
    w = World()
    w.alice, w.bob, w.carol = [await account(node) for _ in range(3)]
    org = await make_org(w.alice, "public")
    w.org = org["slug"]
    await add_member(w.alice, w.org, w.bob)
    await add_member(w.alice, w.org, w.carol, "moderator")
    w.category = await make_category(w.alice, w.org)
    return w


async def _event_of(ws: ClientConnection, type_: str, within_s: float = 10.0) -> dict[str, Any]:
    """The next event of `type_` (earlier events are skipped)."""
    while True:
        (event,) = await events(ws, 1, within_s)
        if event["type"] == type_:
            return event


async def _anonymous_view(node: Node, org: str, post_id: str) -> dict[str, Any]:
    async with node.client() as anon:
        r = await anon.get(f"/api/v1/o/{org}/posts/{post_id}")
        assert r.status_code == 200, r.text
        return dict(r.json()["post"])


async def test_created_edited_and_reacted_events_carry_what_the_page_draws(node: Node, world: World) -> None:
    w = world
    thread = (await make_thread(w.alice, w.org, w.category["slug"]))["thread"]
    async with await connect(node, w.org, w.bob) as thread_ws, await connect(node, w.org) as org_ws:
        await subscribe(thread_ws, f"thread:{thread['id']}")
        await subscribe(org_ws, "org")
        posted = await reply(w.alice, w.org, thread["id"], "Use **less** sugar: <script>x()</script>")

        created = await _event_of(thread_ws, "forum.post.created")
        assert created["data"]["post_id"] == posted["id"]
        # exactly what GET /posts/{id} returns to any reader: rendered, sanitized html, author, role, reactions
        assert created["data"]["post"] == await _anonymous_view(node, w.org, posted["id"])
        assert "<strong>less</strong>" in created["data"]["post"]["html"]
        assert "<script>" not in created["data"]["post"]["html"]
        assert created["data"]["post"]["author"]["username"] == w.alice.user["username"]
        assert created["data"]["thread"]["reply_count"] == 1
        assert created["data"]["thread"]["last_activity_at"] >= thread["last_activity_at"]
        assert created["data"]["category"]["id"] == w.category["id"]

        # the org channel gets the counters and latest activity, not the post
        on_org = await _event_of(org_ws, "forum.post.created")
        assert "post" not in on_org["data"]
        assert on_org["data"]["thread"]["reply_count"] == 1 and on_org["data"]["category"]["post_count"] >= 2

        r = await w.alice.client.patch(
            f"/api/v1/o/{w.org}/posts/{posted['id']}", json={"body": "Use _more_ sugar", "edit_reason": "typo"}
        )
        assert r.status_code == 200, r.text
        edited = await _event_of(thread_ws, "forum.post.edited")
        assert edited["data"]["post"] == await _anonymous_view(node, w.org, posted["id"])
        assert "<em>more</em>" in edited["data"]["post"]["html"] and edited["data"]["post"]["edit_reason"] == "typo"

        r = await w.bob.client.post(f"/api/v1/o/{w.org}/posts/{posted['id']}/reactions", json={"type": "like"})
        assert r.status_code == 200, r.text
        reacted = await _event_of(thread_ws, "forum.post.reacted")
        assert reacted["data"]["reactions"] == {"like": 1}
        assert reacted["data"]["user_id"] == w.bob.id and reacted["data"]["added"] is True

        # none of the edit or reaction events went to the org channel (only the thread page draws them)
        await subscribe(org_ws, "org")  # a round trip: anything sent before the ack is in `before`
        r = await w.bob.client.delete(f"/api/v1/o/{w.org}/posts/{posted['id']}/reactions/like")
        assert (await _event_of(thread_ws, "forum.post.reacted"))["data"]["reactions"] == {}
        ack = await subscribe(org_ws, "org")
        assert [m.get("type") for m in ack["before"]] == []


async def test_a_hidden_post_never_reaches_a_members_socket(node: Node, world: World) -> None:
    w = world
    thread = (await make_thread(w.alice, w.org, w.category["slug"]))["thread"]
    secret_before, secret_after = "visible-words-31337", "hidden-words-42424"
    async with (
        await connect(node, w.org, w.bob) as member_ws,
        await connect(node, w.org, w.carol) as moderator_ws,
    ):
        await subscribe(member_ws, f"thread:{thread['id']}")
        await subscribe(moderator_ws, "moderation")
        await reply(w.alice, w.org, thread["id"], "an earlier reply")
        earlier = await _event_of(member_ws, "forum.post.created")
        posted = await reply(w.alice, w.org, thread["id"], f"first version {secret_before}")
        created = await _event_of(member_ws, "forum.post.created")
        assert secret_before in created["data"]["post"]["html"]

        r = await w.bob.client.post(f"/api/v1/o/{w.org}/posts/{posted['id']}/flags", json={"reason": "spam"})
        assert r.status_code == 201, r.text
        flag = await _event_of(moderator_ws, "forum.moderation.flag.created")
        assert secret_before in flag["data"]["post"]["html"]  # moderators get the post on `moderation`
        r = await w.carol.client.post(
            f"/api/v1/o/{w.org}/moderation/flags/{flag['data']['flag_id']}/resolve", json={"action": "hide"}
        )
        assert r.status_code == 200, r.text

        hidden = await _event_of(member_ws, "forum.post.hidden")
        assert hidden["data"]["post_id"] == posted["id"]
        assert hidden["data"]["post"]["is_hidden"] is True and hidden["data"]["post"]["html"] == ""
        action = await _event_of(moderator_ws, "forum.moderation.action.taken")
        assert secret_before in action["data"]["post"]["html"] and action["data"]["post"]["is_hidden"] is True

        # the author edits the hidden post: the member's socket gets the edit without its content
        r = await w.alice.client.patch(f"/api/v1/o/{w.org}/posts/{posted['id']}", json={"body": secret_after})
        assert r.status_code == 200, r.text
        edited = await _event_of(member_ws, "forum.post.edited")
        assert edited["data"]["post"]["html"] == "" and edited["data"]["post"]["body"] is None

        # a member who reconnects and resumes from before the post gets no content either (replayed
        # events carry no view: it showed the post as it was before it was hidden)
        async with await connect(node, w.org, w.bob) as again:
            ack = await subscribe(again, f"thread:{thread['id']}", since=earlier["id"])
            assert ack["op"] == "subscribed" and ack["replayed"] == 3, ack
            resumed = await subscribe(again, f"thread:{thread['id']}")  # a round trip after the replay
            assert resumed["op"] == "subscribed"
            replayed = [m for m in ack["before"] if m["op"] == "event"]
            assert [m["type"] for m in replayed] == ["forum.post.created", "forum.post.hidden", "forum.post.edited"]
            full_replay = json.dumps(replayed)
            assert secret_after not in full_replay and secret_before not in full_replay

        r = await w.carol.client.post(
            f"/api/v1/o/{w.org}/posts/{posted['id']}/flags", json={"reason": "other", "notes": "check again"}
        )
        assert r.status_code == 201, r.text
        second = await _event_of(moderator_ws, "forum.moderation.flag.created")
        r = await w.carol.client.post(
            f"/api/v1/o/{w.org}/moderation/flags/{second['data']['flag_id']}/resolve", json={"action": "restore"}
        )
        assert r.status_code == 200, r.text
        restored = await _event_of(member_ws, "forum.post.restored")
        assert secret_after in restored["data"]["post"]["html"] and restored["data"]["post"]["is_hidden"] is False

    # nothing the member's socket got while the post was hidden held its content
    seen: list[dict[str, Any]] = [created, hidden, edited]
    assert all(secret_after not in json.dumps(m) for m in seen)


async def test_deleted_and_solved_events_carry_counters(node: Node, world: World) -> None:
    w = world
    r = await w.alice.client.post(
        f"/api/v1/o/{w.org}/categories", json={"name": "Questions " + w.org[-4:], "qa_mode": True}
    )
    assert r.status_code == 201, r.text
    qa = r.json()["category"]
    thread = (await make_thread(w.bob, w.org, qa["slug"]))["thread"]
    async with await connect(node, w.org, w.bob) as ws:
        await subscribe(ws, f"thread:{thread['id']}")
        answer = await reply(w.alice, w.org, thread["id"], "the answer")
        extra = await reply(w.alice, w.org, thread["id"], "noise")
        r = await w.alice.client.delete(f"/api/v1/o/{w.org}/posts/{extra['id']}")
        assert r.status_code == 204
        deleted = await _event_of(ws, "forum.post.deleted")
        assert deleted["data"]["thread"]["reply_count"] == 1
        assert deleted["data"]["post"]["is_deleted"] is True and deleted["data"]["post"]["html"] == ""
        r = await w.bob.client.post(f"/api/v1/o/{w.org}/threads/{thread['id']}/solve", json={"post_id": answer["id"]})
        assert r.status_code == 200, r.text
        solved = await _event_of(ws, "forum.thread.solved")
        assert solved["data"]["thread"]["is_solved"] is True
        assert solved["data"]["thread"]["solution_post_id"] == answer["id"]


async def test_an_idle_socket_gets_no_event_of_other_threads(node: Node, world: World) -> None:
    """Thread-only events stay on their thread: a reaction elsewhere sends nothing to this socket."""
    w = world
    mine = (await make_thread(w.alice, w.org, w.category["slug"]))["thread"]
    other = (await make_thread(w.alice, w.org, w.category["slug"]))["thread"]
    other_post = await reply(w.alice, w.org, other["id"], "elsewhere")
    async with await connect(node, w.org, w.bob) as ws:
        await subscribe(ws, f"thread:{mine['id']}")
        r = await w.bob.client.post(f"/api/v1/o/{w.org}/posts/{other_post['id']}/reactions", json={"type": "laugh"})
        assert r.status_code == 200
        await reply(w.alice, w.org, mine["id"], "here")
        first = await recv(ws)
        assert first["op"] == "event" and first["type"] == "forum.post.created", first


async def test_a_private_categorys_events_reach_only_those_who_may_see_it(node: Node, world: World) -> None:
    w = world
    r = await w.alice.client.post(
        f"/api/v1/o/{w.org}/categories", json={"name": "Staff room " + w.org[-4:], "is_private": True}
    )
    assert r.status_code == 201, r.text
    private = r.json()["category"]
    thread = (await make_thread(w.alice, w.org, private["slug"]))["thread"]
    async with (
        await connect(node, w.org, w.bob) as member_ws,
        await connect(node, w.org, w.carol) as moderator_ws,
    ):
        # a member outside the private category may not subscribe to its thread or category
        refused = await subscribe(member_ws, f"thread:{thread['id']}")
        assert refused["op"] == "error" and refused["code"] == "not_found", refused
        refused = await subscribe(member_ws, f"category:{private['id']}")
        assert refused["op"] == "error" and refused["code"] == "not_found", refused
        await subscribe(member_ws, "org")
        await subscribe(moderator_ws, f"thread:{thread['id']}")
        await reply(w.alice, w.org, thread["id"], "staff only: the-private-words")
        seen = await _event_of(moderator_ws, "forum.post.created")
        assert "the-private-words" in seen["data"]["post"]["html"]
        # the org-wide channel never carried it (a public reply afterwards is the first thing it gets)
        public = (await make_thread(w.alice, w.org, w.category["slug"]))["thread"]
        first = await recv(member_ws)
        assert first["op"] == "event" and first["data"]["thread_id"] == public["id"], first
