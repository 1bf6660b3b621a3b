"""Idempotent writes (issue 11, item 10): `Idempotency-Key` on creating threads, posts, reactions and
flags, with Stripe's semantics; keys stored in PostgreSQL in the write's own transaction."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from backend.idempotency import lock_id
from tests.factories import create_org, register_and_login, unique
from tests.realtime_helpers import account, make_category, make_org, start_node


async def _forum(make_client) -> tuple[Any, Any, dict[str, Any], str]:
    admin = make_client()
    user = await register_and_login(admin)
    org = await create_org(admin, visibility="public")
    base = f"/api/v1/o/{org['slug']}"
    assert (await admin.post(f"{base}/categories", json={"name": "General"})).status_code == 201
    return admin, user, org, base


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def _count(pool, org: dict[str, Any], table: str) -> int:
    return int(await pool.fetchval(f'SELECT count(*) FROM "org_{org["slug"]}".{table}'))


async def test_same_key_same_body_replays_the_first_response(make_client, pool):
    admin, _, org, base = await _forum(make_client)
    headers = _key()
    body = {"category": "general", "title": "Idempotent thread", "body": "written once"}
    first = await admin.post(f"{base}/threads", json=body, headers=headers)
    assert first.status_code == 201, first.text
    # the same request again (its JSON re-serialized with another key order): the first response, nothing new
    again = await admin.post(
        f"{base}/threads",
        content=json.dumps(dict(reversed(list(body.items())))),
        headers={**headers, "content-type": "application/json"},
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert first.headers.get("idempotent-replayed") is None
    assert await _count(pool, org, "thread") == 1
    assert await _count(pool, org, "post") == 1
    # a reply, a reaction and a flag: each once
    thread_id = first.json()["thread"]["id"]
    reply_key = _key()
    replies = [
        await admin.post(f"{base}/threads/{thread_id}/posts", json={"body": "a reply"}, headers=reply_key)
        for _ in range(3)
    ]
    assert [r.status_code for r in replies] == [201, 201, 201]
    assert len({r.json()["post"]["id"] for r in replies}) == 1
    assert await _count(pool, org, "post") == 2
    member = make_client(ip="198.51.100.9")
    await register_and_login(member)
    assert (await member.post(f"/api/v1/orgs/{org['slug']}/join")).status_code == 200
    post_id = replies[0].json()["post"]["id"]
    flag_key = _key()
    flags = [
        await member.post(f"{base}/posts/{post_id}/flags", json={"reason": "spam"}, headers=flag_key) for _ in range(2)
    ]
    assert [f.status_code for f in flags] == [201, 201] and flags[0].json() == flags[1].json()
    reaction_key = _key()
    reactions = [
        await member.post(f"{base}/posts/{post_id}/reactions", json={"type": "like"}, headers=reaction_key)
        for _ in range(2)
    ]
    assert [r.status_code for r in reactions] == [200, 200] and reactions[0].json() == reactions[1].json()
    assert reactions[1].headers.get("idempotent-replayed") == "true"


async def test_same_key_different_request_is_422_and_writes_nothing(make_client, pool):
    admin, _, org, base = await _forum(make_client)
    headers = _key()
    first = await admin.post(
        f"{base}/threads", json={"category": "general", "title": "First", "body": "one"}, headers=headers
    )
    assert first.status_code == 201
    other_body = await admin.post(
        f"{base}/threads", json={"category": "general", "title": "First", "body": "two"}, headers=headers
    )
    assert other_body.status_code == 422, other_body.text
    assert "different request" in other_body.json()["detail"]
    other_route = await admin.post(
        f"{base}/threads/{first.json()['thread']['id']}/posts", json={"body": "one"}, headers=headers
    )
    assert other_route.status_code == 422
    assert await _count(pool, org, "thread") == 1
    assert await _count(pool, org, "post") == 1


async def test_keys_are_per_user(make_client, pool):
    admin, _, org, base = await _forum(make_client)
    other = make_client(ip="198.51.100.10")
    await register_and_login(other)
    assert (await other.post(f"/api/v1/orgs/{org['slug']}/join")).status_code == 200
    headers = _key()
    thread = (
        await admin.post(
            f"{base}/threads", json={"category": "general", "title": "Title", "body": "b"}, headers=headers
        )
    ).json()["thread"]
    mine = await admin.post(f"{base}/threads/{thread['id']}/posts", json={"body": "same words"}, headers=_key())
    shared = {"Idempotency-Key": "the-same-key"}
    a = await admin.post(f"{base}/threads/{thread['id']}/posts", json={"body": "hello"}, headers=shared)
    b = await other.post(f"{base}/threads/{thread['id']}/posts", json={"body": "hello"}, headers=shared)
    assert a.status_code == b.status_code == 201 and mine.status_code == 201
    assert a.json()["post"]["id"] != b.json()["post"]["id"]
    assert b.headers.get("idempotent-replayed") is None
    assert await _count(pool, org, "post") == 4


async def test_a_failed_write_keeps_no_key_and_bad_keys_are_400(make_client, pool):
    admin, user, org, base = await _forum(make_client)
    headers = _key()
    missing = await admin.post(
        f"{base}/threads", json={"category": "nope", "title": "Title", "body": "b"}, headers=headers
    )
    assert missing.status_code in (400, 404, 422), missing.text
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE user_id = $1::uuid", user["id"]) == 0
    fixed = await admin.post(
        f"{base}/threads", json={"category": "general", "title": "Title", "body": "b"}, headers=headers
    )
    assert fixed.status_code == 201, fixed.text  # the key was free: the failure left nothing behind
    row = await pool.fetchrow("SELECT status, body FROM idempotency_keys WHERE user_id = $1::uuid", user["id"])
    assert row["status"] == 201 and json.loads(row["body"]) == fixed.json()
    for bad in ("", "x" * 256, "tab\tkey"):
        r = await admin.post(
            f"{base}/threads",
            json={"category": "general", "title": "Title two", "body": "b"},
            headers={"Idempotency-Key": bad},
        )
        assert r.status_code == 400, (bad, r.text)
    assert await _count(pool, org, "thread") == 1


async def test_a_key_still_in_flight_is_409(make_client, pool):
    admin, user, org, base = await _forum(make_client)
    key = str(uuid.uuid4())
    body = {"category": "general", "title": "In flight", "body": "b"}
    # Another request with this key holds its transaction open (exactly what a first attempt does).
    async with pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_id(user["id"], key))
        r = await admin.post(f"{base}/threads", json=body, headers={"Idempotency-Key": key})
        assert r.status_code == 409, r.text
    assert await _count(pool, org, "thread") == 0
    # and two real requests racing with one key: one thread, the other answered 409 or replayed
    key = str(uuid.uuid4())
    results = await asyncio.gather(
        *[admin.post(f"{base}/threads", json=body, headers={"Idempotency-Key": key}) for _ in range(4)]
    )
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1, [r.text for r in results]
    assert len({r.json()["thread"]["id"] for r in results if r.status_code == 201}) == 1
    assert await _count(pool, org, "thread") == 1


async def test_expired_keys_are_free_again_and_purged(make_client, pool):
    from backend.idempotency import purge_expired_keys

    admin, user, org, base = await _forum(make_client)
    headers = _key()
    body = {"category": "general", "title": "Old", "body": "b"}
    assert (await admin.post(f"{base}/threads", json=body, headers=headers)).status_code == 201
    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1::uuid", user["id"]
    )
    again = await admin.post(f"{base}/threads", json=body, headers=headers)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") is None
    assert await _count(pool, org, "thread") == 2
    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1::uuid", user["id"]
    )
    assert await purge_expired_keys() >= 1
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE user_id = $1::uuid", user["id"]) == 0


async def test_the_openapi_document_names_the_header(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    base = "/api/v1/o/{org}"
    with_header = {
        (path, method)
        for path, item in paths.items()
        for method, op in item.items()
        if isinstance(op, dict) and any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", []))
    }
    assert with_header == {
        (f"{base}/threads", "post"),
        (f"{base}/threads/{{ref}}/posts", "post"),
        (f"{base}/posts/{{post_id}}/reactions", "post"),
        (f"{base}/posts/{{post_id}}/flags", "post"),
    }


@pytest.mark.slow
async def test_retry_after_a_lost_response_makes_no_duplicate_post(app, servers, pool, tmp_path: Path):
    """Through a real server: the client sends a reply and drops the connection before reading the
    answer (a timeout, a dead proxy); the server commits it anyway. The retry gets the original post."""
    node = await start_node(servers, tmp_path)
    try:
        author = await account(node)
        org = await make_org(author)
        cat = await make_category(author, org["slug"])
        r = await author.client.post(
            f"/api/v1/o/{org['slug']}/threads", json={"category": cat["slug"], "title": unique("T"), "body": "q"}
        )
        thread_id = r.json()["thread"]["id"]
        key = str(uuid.uuid4())
        payload = json.dumps({"body": "an answer sent once"}).encode()
        raw = socket.create_connection(("127.0.0.1", node.port))
        raw.sendall(
            (
                f"POST /api/v1/o/{org['slug']}/threads/{thread_id}/posts HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
                f"Cookie: {author.cookie}\r\nx-csrftoken: {author.client.cookies['csrftoken']}\r\n"
                f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
        )
        raw.close()  # the response is lost
        schema = f'"org_{org["slug"]}"'
        deadline = time.monotonic() + 10
        while not await pool.fetchval(
            f"SELECT count(*) FROM {schema}.post WHERE content_markdown = 'an answer sent once'"
        ):
            assert time.monotonic() < deadline, "the first attempt was never committed"
            await asyncio.sleep(0.05)
        retry = await author.client.post(
            f"/api/v1/o/{org['slug']}/threads/{thread_id}/posts",
            json={"body": "an answer sent once"},
            headers={"Idempotency-Key": key},
        )
        assert retry.status_code == 201, retry.text
        assert retry.headers.get("idempotent-replayed") == "true"
        posts = await pool.fetch(f"SELECT id FROM {schema}.post WHERE content_markdown = 'an answer sent once'")
        assert len(posts) == 1 and retry.json()["post"]["id"] == str(posts[0]["id"])
    finally:
        node.stop()
