"""Revocation reaches open websockets on every web node within 1 s (issue 11, item 2), and the routes
that revoke: token revocation and listing, member role change and removal.

Two real `forum web` processes share the database and Redis; sockets are opened on both, the change is
made through the HTTP API of one, and each socket must be closed (4401 auth gone, 4403 membership gone)
or lose the channels its user may no longer see, measured from the change's response.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection

from backend.forum.signals import FlagCreated
from backend.settings import Settings
from engine import db
from engine.relay import StreamConfig
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
    start_node,
    stoppable_database,
    subscribe,
)

pytestmark = pytest.mark.slow
DEADLINE_S = 1.0
delays: list[tuple[str, float]] = []  # (what, seconds): printed at the end of the module


@pytest.fixture(scope="module")
async def nodes(app: object, servers: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Node]]:
    base = tmp_path_factory.mktemp("revocation")
    pair = [await start_node(servers, Path(base) / "a"), await start_node(servers, Path(base) / "b")]
    yield pair
    for node in pair:
        node.stop()
    if delays:
        print("\nrevocation delays (change requested -> socket closed or channel dropped):")
        for what, seconds in delays:
            print(f"  {what}: {seconds * 1000:.0f} ms")


@pytest.fixture
def streams(settings: Settings) -> StreamConfig:
    return StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)


async def closed_with(ws: ClientConnection, within_s: float = 5.0) -> tuple[int, str, float]:
    """Read until the server closes; (code, reason, monotonic time of the close)."""
    try:
        while True:
            await recv(ws, within_s)
    except websockets.ConnectionClosed as exc:
        at = time.monotonic()
        assert exc.rcvd is not None, exc
        return exc.rcvd.code, exc.rcvd.reason, at


async def lost_channel(ws: ClientConnection, channel: str, within_s: float = 5.0) -> float:
    await recv_until(ws, lambda m: m["op"] == "error" and m.get("channel") == channel, within_s)
    return time.monotonic()


async def org_with_people(nodes: list[Node], visibility: str = "private") -> tuple[Account, Account, dict[str, Any]]:
    admin = await account(nodes[0])
    org = await make_org(admin, visibility)
    other = await account(nodes[0])
    return admin, other, org


async def test_revoked_token_closes_its_sockets_on_every_node(nodes: list[Node]) -> None:
    a, b = nodes
    admin, _, org = await org_with_people(nodes)
    slug = org["slug"]
    token = await bearer_token(admin, slug, ("admin",))
    listed = (await admin.client.get(f"/api/v1/orgs/{slug}/tokens")).json()["tokens"]
    assert len(listed) == 1 and "token" not in listed[0] and listed[0]["revoked_at"] is None
    assert token not in str(listed) and token[4:] not in str(listed)
    token_id = listed[0]["id"]
    sockets = [await connect(node, slug, token=token) for node in (a, b)]
    for ws in sockets:
        for channel in ("org", "moderation", "agent-activity"):
            assert (await subscribe(ws, channel))["op"] == "subscribed"
    # the admin's own cookie socket is not the token's: it stays open
    own = await connect(b, slug, admin)
    await subscribe(own, "org")

    answered = time.monotonic()  # before the request: the delay is an upper bound
    r = await admin.client.delete(f"/api/v1/orgs/{slug}/tokens/{token_id}")
    assert r.status_code == 204, r.text
    for node, ws in zip(("a", "b"), sockets, strict=True):
        code, reason, at = await closed_with(ws)
        assert code == 4401 and "revoked" in reason, (code, reason)
        delays.append((f"token revoked, socket on node {node}", at - answered))
        assert at - answered < DEADLINE_S
    api = a.client()
    api.headers["Authorization"] = f"Bearer {token}"
    assert (await api.get(f"/api/v1/o/{slug}/categories")).status_code == 401
    refused = await connect(b, slug, token=token)
    assert (await closed_with(refused))[0] == 4401
    listed = (await admin.client.get(f"/api/v1/orgs/{slug}/tokens")).json()["tokens"]
    assert listed[0]["revoked_at"] is not None
    # revoking again changes nothing; another org's admin cannot see or revoke it
    assert (await admin.client.delete(f"/api/v1/orgs/{slug}/tokens/{token_id}")).status_code == 204
    stranger = await account(a)
    other = await make_org(stranger)
    assert (await stranger.client.delete(f"/api/v1/orgs/{other['slug']}/tokens/{token_id}")).status_code == 404
    assert (await stranger.client.delete(f"/api/v1/orgs/{other['slug']}/tokens/not-a-uuid")).status_code == 404
    await own.send('{"op":"ping"}')
    assert (await recv(own))["op"] == "pong"
    await own.close()


async def test_demoted_moderator_loses_moderation_on_every_node(
    nodes: list[Node], redis: Redis, streams: StreamConfig
) -> None:
    a, b = nodes
    admin, carol, org = await org_with_people(nodes, "public")
    slug = org["slug"]
    await add_member(admin, slug, carol, "moderator")
    cat = await make_category(admin, slug)
    thread = (await make_thread(admin, slug, cat["slug"]))["thread"]
    sockets = [await connect(node, slug, carol) for node in (a, b)]
    for ws in sockets:
        for channel in ("org", "moderation"):
            assert (await subscribe(ws, channel))["op"] == "subscribed"

    answered = time.monotonic()  # before the request: the delay is an upper bound
    r = await admin.client.patch(f"/api/v1/orgs/{slug}/members/{carol.user['username']}", json={"role": "member"})
    assert r.status_code == 200, r.text
    assert r.json()["member"]["role"] == "member"
    for node, ws in zip(("a", "b"), sockets, strict=True):
        at = await lost_channel(ws, "moderation")
        delays.append((f"moderator demoted, socket on node {node}", at - answered))
        assert at - answered < DEADLINE_S
    # moderation events no longer reach her; org events still do; she cannot subscribe again
    await emit_direct(
        org,
        redis,
        streams,
        [
            FlagCreated(
                flag_id=str(uuid.uuid4()),
                post_id=str(uuid.uuid4()),
                thread_id=thread["id"],
                category_id=cat["id"],
                reason="spam",
                flagger_user_id=admin.id,
                flagger_agent_id=None,
            )
        ],
    )
    await make_thread(admin, slug, cat["slug"])
    for ws in sockets:
        got = await events(ws, 1)
        assert got[0]["channel"] == "org" and got[0]["type"] != "forum.post.flagged"
        assert (await subscribe(ws, "moderation"))["code"] == "forbidden"
        await ws.close()


async def test_removed_member_sockets_close_on_every_node(nodes: list[Node]) -> None:
    a, b = nodes
    admin, bob, org = await org_with_people(nodes, "private")
    slug = org["slug"]
    await add_member(admin, slug, bob, "member")
    bob_token = await bearer_token(admin, slug, ("read",))  # the admin's: unaffected
    sockets = [await connect(node, slug, bob) for node in (a, b)]
    for ws in sockets:
        assert (await subscribe(ws, "org"))["op"] == "subscribed"
    admin_socket = await connect(a, slug, token=bob_token)
    await subscribe(admin_socket, "org")

    answered = time.monotonic()  # before the request: the delay is an upper bound
    r = await admin.client.delete(f"/api/v1/orgs/{slug}/members/{bob.user['username']}")
    assert r.status_code == 204, r.text
    for node, ws in zip(("a", "b"), sockets, strict=True):
        code, _, at = await closed_with(ws)
        assert code == 4403
        delays.append((f"member removed, socket on node {node}", at - answered))
        assert at - answered < DEADLINE_S
    assert (await bob.client.get(f"/api/v1/o/{slug}/categories")).status_code == 404
    got = await events(admin_socket, 1)
    assert got[0]["type"] == "org.member.removed" and got[0]["data"]["user_id"] == bob.id
    await admin_socket.close()


async def test_logout_closes_that_sessions_sockets_on_every_node(nodes: list[Node]) -> None:
    a, b = nodes
    admin, _, org = await org_with_people(nodes, "private")
    slug = org["slug"]
    second = a.client()  # the same user signed in a second time (another browser)
    r = await second.post(
        "/api/v1/auth/login", json={"login": admin.user["username"], "password": "correct horse battery"}
    )
    assert r.status_code == 200
    other_session = Account(second, admin.user)
    doomed = [await connect(node, slug, admin) for node in (a, b)]
    kept = await connect(b, slug, other_session)
    for ws in [*doomed, kept]:
        assert (await subscribe(ws, "agent-activity"))["op"] == "subscribed"

    answered = time.monotonic()  # before the request: the delay is an upper bound
    r = await admin.client.post("/api/v1/auth/logout")
    assert r.status_code == 204
    for node, ws in zip(("a", "b"), doomed, strict=True):
        code, _, at = await closed_with(ws)
        assert code == 4401
        delays.append((f"logout, socket on node {node}", at - answered))
        assert at - answered < DEADLINE_S
    await nothing_more(kept, 0.3)
    await kept.send('{"op":"ping"}')
    assert (await recv(kept))["op"] == "pong"
    await kept.close()


async def test_subscribe_racing_a_demotion_does_not_keep_the_channel(nodes: list[Node]) -> None:
    """A subscription authorized just before the change commits is re-checked once it is in place."""
    a, _ = nodes
    admin, carol, org = await org_with_people(nodes, "public")
    slug = org["slug"]
    for _ in range(5):
        await add_member(admin, slug, carol, "moderator")
        ws = await connect(a, slug, carol)
        await ws.send('{"op":"subscribe","channel":"moderation"}')
        r = await admin.client.patch(f"/api/v1/orgs/{slug}/members/{carol.user['username']}", json={"role": "member"})
        assert r.status_code == 200
        msgs = await recv_until(ws, lambda m: m["op"] == "error" and m.get("channel") == "moderation", 3.0)
        assert msgs[-1]["code"] == "forbidden"
        await ws.close()


# --- the routes: authorization and the last admin ---------------------------------------------------


async def test_member_routes_are_admin_only_and_keep_an_admin(nodes: list[Node]) -> None:
    admin, bob, org = await org_with_people(nodes, "public")
    slug = org["slug"]
    await add_member(admin, slug, bob, "moderator")
    base = f"/api/v1/orgs/{slug}/members"
    name = admin.user["username"]
    # not an admin: 403, nothing changes
    assert (await bob.client.patch(f"{base}/{name}", json={"role": "member"})).status_code == 403
    assert (await bob.client.delete(f"{base}/{name}")).status_code == 403
    assert (await bob.client.get(f"/api/v1/orgs/{slug}/tokens")).status_code == 403
    # the last admin can neither be demoted nor removed
    r = await admin.client.patch(f"{base}/{name}", json={"role": "member"})
    assert r.status_code == 409, r.text
    assert (await admin.client.delete(f"{base}/{name}")).status_code == 409
    # bad input: 400; unknown member: 404
    assert (await admin.client.patch(f"{base}/{bob.user['username']}", json={"role": "owner"})).status_code == 400
    assert (
        await admin.client.patch(f"{base}/{bob.user['username']}", json={"role": "admin", "x": 1})
    ).status_code == 400
    assert (await admin.client.patch(f"{base}/nobody_here", json={"role": "member"})).status_code == 404
    assert (await admin.client.delete(f"{base}/nobody_here")).status_code == 404
    # with a second admin, the first may step down; role unchanged is a no-op 200
    r = await admin.client.patch(f"{base}/{bob.user['username']}", json={"role": "admin"})
    assert r.status_code == 200 and r.json()["member"]["role"] == "admin"
    assert (await admin.client.patch(f"{base}/{bob.user['username']}", json={"role": "admin"})).status_code == 200
    r = await admin.client.patch(f"{base}/{name}", json={"role": "member"})
    assert r.status_code == 200, r.text
    roles = await db.pool().fetch(
        "SELECT u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1::uuid",
        org["id"],
    )
    assert {r["username"]: r["role"] for r in roles} == {name: "member", bob.user["username"]: "admin"}
    # each change emitted its signal
    types = [
        row["type"]
        for row in await db.pool().fetch(
            f'SELECT type FROM "org_{slug}".signal WHERE type LIKE $1 ORDER BY id', "org.member.%"
        )
    ]
    assert types.count("org.member.role_changed") == 2


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(nodes: list[Node]) -> None:
    admin, other, org = await org_with_people(nodes, "public")
    slug = org["slug"]
    await add_member(admin, slug, other, "admin")
    base = f"/api/v1/orgs/{slug}/members"
    results = await asyncio.gather(
        admin.client.patch(f"{base}/{other.user['username']}", json={"role": "member"}),
        other.client.patch(f"{base}/{admin.user['username']}", json={"role": "member"}),
    )
    assert sorted(r.status_code for r in results) in ([200, 403], [200, 409]), [r.text for r in results]
    admins = await db.pool().fetchval(
        "SELECT count(*) FROM memberships WHERE org_id = $1::uuid AND role = 'admin'", org["id"]
    )
    assert admins == 1


async def test_a_revocation_that_cannot_be_checked_closes_the_socket_1013(
    app: object, servers: Any, tmp_path: Path, redis: Redis
) -> None:
    """PostgreSQL down when a revocation notice arrives: the socket is not kept on trust; after a few
    failed re-checks it is closed with 1013 (try again later), as a new socket would be."""
    from realtime.revocation import publish_revocation

    own_dir = Path(tempfile.mkdtemp(prefix="forum_revocation_"))
    os.chmod(own_dir, 0o755)  # the embedded PostgreSQL's system user must reach it
    pg, own = await stoppable_database(own_dir / "pg", "revocation", servers.redis_url)
    try:
        node = await start_node(own, tmp_path / "web")
        try:
            alice = await account(node)
            org = await make_org(alice, "private")
            ws = await connect(node, org["slug"], alice)
            assert (await subscribe(ws, "org"))["op"] == "subscribed"
            pg.stop()
            started = time.monotonic()
            await publish_revocation(redis, alice.id, reason="test")  # what a logout publishes
            code, _, at = await closed_with(ws, within_s=40)
            assert code == 1013
            assert at - started < 30
        finally:
            node.stop()
    finally:
        pg.stop()
        shutil.rmtree(own_dir, ignore_errors=True)


async def test_an_expired_session_socket_closes_at_the_periodic_recheck(
    app: object, servers: Any, tmp_path: Path, redis: Redis
) -> None:
    """A session that reaches its TTL sends no notice: the periodic re-check closes its sockets (4401)."""
    from backend.identity.service import SESSION_COOKIE, session_key

    node = await start_node(servers, tmp_path, ws_recheck_interval_s=0.5)
    try:
        alice = await account(node)
        org = await make_org(alice, "private")
        ws = await connect(node, org["slug"], alice)
        assert (await subscribe(ws, "org"))["op"] == "subscribed"
        await nothing_more(ws, 1.2)  # re-checked a few times already: still open
        assert await redis.delete(session_key(alice.client.cookies[SESSION_COOKIE])) == 1  # what the TTL does
        code, _, _ = await closed_with(ws, within_s=5)
        assert code == 4401
    finally:
        node.stop()
