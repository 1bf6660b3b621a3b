"""Forum writes notify the right people: the thread's author on a reply, a mentioned member, the
member an agent answers — and the channel map sends agent activity to admins only."""

from __future__ import annotations

from backend.realtime_channels import channels_for
from engine.signals import Signal
from tests.factories import create_org, register_and_login


async def _member(make_client, org, ip):
    client = make_client(ip=ip)
    user = await register_and_login(client)
    assert (await client.post(f"/api/v1/orgs/{org['slug']}/join")).status_code == 200
    return client, user


async def test_reply_notifies_thread_author_and_mention_notifies_member(make_client):
    admin = make_client()
    await register_and_login(admin)
    org = await create_org(admin, visibility="public")
    base = f"/api/v1/o/{org['slug']}"
    assert (await admin.post(f"{base}/categories", json={"name": "General"})).status_code == 201
    author, _ = await _member(make_client, org, "198.51.100.20")
    replier, _ = await _member(make_client, org, "198.51.100.21")
    watcher, watcher_user = await _member(make_client, org, "198.51.100.22")
    r = await author.post(
        f"{base}/threads",
        json={"category": "general", "title": "Kegging question", "body": "How long should I carbonate?"},
    )
    thread = r.json()["thread"]
    r = await replier.post(
        f"{base}/threads/{thread['id']}/posts",
        json={"body": f"About a week. @{watcher_user['username']} knows more."},
    )
    assert r.status_code == 201
    mine = (await author.get(f"{base}/notifications")).json()
    kinds = [(n["kind"], n["thread_id"]) for n in mine["items"]]
    assert kinds == [("reply", thread["id"])]
    theirs = (await watcher.get(f"{base}/notifications")).json()
    assert [n["kind"] for n in theirs["items"]] == ["mention"]
    assert (await replier.get(f"{base}/notifications")).json()["items"] == []  # never yourself


def _signal(type_: str, payload: dict) -> Signal:
    return Signal(
        id="0",
        type=type_,
        version=1,
        tenant="t",
        actor_type="agent",
        actor_id="x",
        source="job",
        correlation_id="c",
        causation_id=None,
        dedupe_key=None,
        occurred_at="2026-01-01T00:00:00Z",
        payload=payload,
    )


def test_agent_runtime_signals_reach_admins_only():
    for type_ in (
        "agent.directive.created",
        "agent.execution.started",
        "agent.execution.finished",
        "agent.directive.refused",
        "forum.agent.responded",
    ):
        assert channels_for(_signal(type_, {"thread_id": "t1", "category_id": "c1"})) == ["agent-activity"]
    assert channels_for(_signal("forum.post.created", {"thread_id": "t1", "category_id": "c1"})) == [
        "org",
        "category:c1",
        "thread:t1",
    ]
