"""Importers (`forum import stackexchange|jsonl`): mapping, idempotency, resume after an interruption,
placeholder accounts, imported signals that no agent acts on. On small dumps the tests write."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backend.cli import main as forum_main
from backend.importers.jsonl import read_jsonl
from backend.importers.pipeline import ImportRefused, run_import
from backend.importers.stackexchange import read_dump
from engine.agents.router import SignalRouter
from engine.signals import is_imported, row_to_signal
from tests.factories import create_org, register_and_login, tenant_fetch

POSTS = """<?xml version="1.0" encoding="utf-8"?>
<posts>
  <row Id="1" PostTypeId="1" AcceptedAnswerId="3" CreationDate="2014-01-21T20:26:05.383" Score="5" ViewCount="40"
       Body="&lt;p&gt;What are &lt;strong&gt;citra&lt;/strong&gt; hops?&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
       OwnerUserId="7" Title="What is a citra hop?" Tags="&lt;hops&gt;&lt;ingredients&gt;" />
  <row Id="2" PostTypeId="1" CreationDate="2014-01-22T10:00:00.000" Score="1" ViewCount="3"
       Body="&lt;p&gt;Which glass for a stout?&lt;/p&gt;" OwnerDisplayName="Gone Person"
       Title="Stout glassware" Tags="&lt;glassware&gt;" />
  <row Id="3" PostTypeId="2" ParentId="1" CreationDate="2014-01-21T20:31:18.540" Score="12"
       Body="&lt;p&gt;Citra is a hop variety with citrus aroma.&lt;/p&gt;" OwnerUserId="12" />
  <row Id="4" PostTypeId="2" ParentId="1" CreationDate="2014-01-21T21:00:00.000" Score="2"
       Body="&lt;p&gt;A trademark since 2007.&lt;/p&gt;" OwnerUserId="7" />
  <row Id="5" PostTypeId="1" CreationDate="2014-02-01T09:00:00.000" Score="0" ViewCount="9"
       Body="&lt;p&gt;What exactly are citra hops used for?&lt;/p&gt;" OwnerUserId="12"
       Title="Citra hops, what are they?" Tags="&lt;hops&gt;" />
  <row Id="6" PostTypeId="5" CreationDate="2014-02-01T09:00:00.000" Body="tag wiki" />
</posts>
"""
COMMENTS = """<?xml version="1.0" encoding="utf-8"?>
<comments>
  <row Id="10" PostId="3" Text="Great answer, thanks." CreationDate="2014-01-21T22:00:00.000" UserId="7" />
  <row Id="11" PostId="1" Text="Good question." CreationDate="2014-01-21T20:40:00.000" UserId="12" />
</comments>
"""
USERS = """<?xml version="1.0" encoding="utf-8"?>
<users>
  <row Id="-1" DisplayName="Community" CreationDate="2014-01-01T00:00:00.000" />
  <row Id="7" DisplayName="Hop Head" CreationDate="2014-01-01T00:00:00.000" />
  <row Id="12" DisplayName="Brewer Bob" CreationDate="2014-01-01T00:00:00.000" />
</users>
"""
LINKS = """<?xml version="1.0" encoding="utf-8"?>
<postlinks>
  <row Id="1" PostId="5" RelatedPostId="1" LinkTypeId="3" />
  <row Id="2" PostId="2" RelatedPostId="1" LinkTypeId="1" />
</postlinks>
"""
TAGS = """<?xml version="1.0" encoding="utf-8"?>
<tags><row Id="1" TagName="hops" Count="2" /></tags>
"""


def write_dump(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("Posts.xml", POSTS),
        ("Comments.xml", COMMENTS),
        ("Users.xml", USERS),
        ("PostLinks.xml", LINKS),
        ("Tags.xml", TAGS),
    ):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


async def make_org(make_client: Any) -> tuple[Any, str]:
    admin = make_client()
    await register_and_login(admin)
    org = await create_org(admin, visibility="public")
    return admin, org["slug"]


async def counts(pool: Any, slug: str) -> dict[str, int]:
    out = {}
    for table in ("thread", "post", "thread_tag", "thread_duplicate", "import_record", "signal"):
        out[table] = (await tenant_fetch(pool, slug, f"SELECT count(*) AS n FROM {table}"))[0]["n"]
    out["placeholders"] = (
        await pool.fetchrow("SELECT count(*) AS n FROM users WHERE placeholder_of LIKE $1", f"{slug}/%")
    )["n"]
    return out


def test_stackexchange_dump_is_read_into_threads(tmp_path):
    source = read_dump(write_dump(tmp_path / "beer"))
    assert source.name == "stackexchange:beer"
    assert [t.external_id for t in source.threads] == ["1", "2", "5"]
    first = source.threads[0]
    assert first.tags == ["hops", "ingredients"] and first.accepted == "3" and first.views == 40
    # answers and comments in time order; a comment replies to the post it was written under
    assert [(p.external_id, p.reply_to) for p in first.replies] == [
        ("3", None),
        ("c11", "1"),
        ("4", None),
        ("c10", "3"),
    ]
    assert source.threads[1].question.author == "name:gone person"
    assert [(d.thread, d.original) for d in source.duplicates] == [("5", "1")]  # LinkTypeId 1 is not a duplicate


async def test_import_maps_threads_answers_solutions_tags_users_duplicates(app, make_client, pool, tmp_path):
    admin, slug = await make_org(make_client)
    source = read_dump(write_dump(tmp_path / "beer"))
    result = await run_import(app.state.services, slug, source)
    c = result.counts
    assert (c.threads, c.posts, c.solutions, c.duplicates, c.skipped) == (3, 7, 1, 1, 0)
    assert c.users == 3  # Hop Head, Brewer Bob, and the deleted "Gone Person"

    base = f"/api/v1/o/{slug}"
    threads = {t["title"]: t for t in (await admin.get(f"{base}/threads")).json()["threads"]}
    assert set(threads) == {"What is a citra hop?", "Stout glassware", "Citra hops, what are they?"}
    citra = threads["What is a citra hop?"]
    detail = (await admin.get(f"{base}/threads/{citra['id']}")).json()
    posts = detail["posts"]
    assert len(posts) == 5 and detail["thread"]["reply_count"] == 4
    assert detail["thread"]["is_solved"] and detail["thread"]["solution_post_id"] == posts[1]["id"]
    assert "<script" not in posts[0]["html"] and "<strong>citra</strong>" in posts[0]["html"]
    assert posts[0]["created_at"].startswith("2014-01-21T20:26:05")
    comment_on_answer = posts[4]
    assert comment_on_answer["body"] == "Great answer, thanks."
    assert comment_on_answer["reply_to_post_id"] == posts[1]["id"]
    assert posts[0]["author"]["username"].startswith("Hop_Head_")

    tags = await tenant_fetch(
        pool, slug, "SELECT tag FROM thread_tag WHERE thread_id = $1::uuid ORDER BY tag", citra["id"]
    )
    assert [r["tag"] for r in tags] == ["hops", "ingredients"]
    dups = await tenant_fetch(pool, slug, "SELECT thread_id, original_id FROM thread_duplicate")
    assert [(str(r["thread_id"]), str(r["original_id"])) for r in dups] == [
        (threads["Citra hops, what are they?"]["id"], citra["id"])
    ]
    category = await tenant_fetch(pool, slug, "SELECT slug, qa_mode, thread_count, post_count FROM category")
    assert [dict(r) for r in category] == [{"slug": "questions", "qa_mode": True, "thread_count": 3, "post_count": 7}]
    # found by search and related threads like any post
    hits = (await admin.get(f"{base}/search", params={"q": "trademark"})).json()["hits"]
    assert [h["thread_id"] for h in hits] == [citra["id"]]


async def test_placeholder_accounts_cannot_sign_in(app, make_client, pool, tmp_path):
    _, slug = await make_org(make_client)
    await run_import(app.state.services, slug, read_dump(write_dump(tmp_path / "beer")))
    rows = await pool.fetch("SELECT username, password_hash FROM users WHERE placeholder_of LIKE $1", f"{slug}/%")
    assert len(rows) == 3
    stranger = make_client(ip="198.51.100.9")
    for row in rows:
        for password in ("", row["password_hash"], "!placeholder", "correct horse battery"):
            r = await stranger.post("/api/v1/auth/login", json={"login": row["username"], "password": password})
            assert r.status_code in (400, 401), r.text
    members = await pool.fetchval(
        "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.placeholder_of LIKE $1",
        f"{slug}/%",
    )
    assert members == 0


async def test_second_run_imports_nothing_twice(app, make_client, pool, tmp_path):
    _, slug = await make_org(make_client)
    source = read_dump(write_dump(tmp_path / "beer"))
    await run_import(app.state.services, slug, source)
    before = await counts(pool, slug)
    again = await run_import(app.state.services, slug, read_dump(tmp_path / "beer"))
    assert (again.counts.threads, again.counts.posts, again.counts.users, again.counts.skipped) == (0, 0, 0, 3)
    assert (again.counts.solutions, again.counts.duplicates) == (0, 0)
    assert await counts(pool, slug) == before


class Interrupted(Exception):
    """Stands in for Ctrl-C in the middle of a batch."""


async def test_interrupted_import_resumes_without_duplicates(app, make_client, pool, tmp_path):
    _, slug = await make_org(make_client)
    source = read_dump(write_dump(tmp_path / "beer"))

    def stop_at_third(done: int) -> None:
        if done == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        await run_import(app.state.services, slug, source, batch_size=2, after_thread=stop_at_third)
    partial = await counts(pool, slug)
    assert partial["thread"] == 2  # the first batch committed, the second rolled back whole

    resumed = await run_import(app.state.services, slug, source, batch_size=2)
    assert (resumed.counts.threads, resumed.counts.skipped) == (1, 2)
    _, clean_slug = await make_org(make_client)
    await run_import(app.state.services, clean_slug, source)
    got, clean = await counts(pool, slug), await counts(pool, clean_slug)
    assert {k: v for k, v in got.items() if k != "signal"} == {k: v for k, v in clean.items() if k != "signal"}
    assert got["signal"] == clean["signal"]


async def test_imported_signals_are_flagged_and_no_agent_acts_on_them(app, make_client, pool, tmp_path):
    admin, slug = await make_org(make_client)
    base = f"/api/v1/o/{slug}"
    r = await admin.put(
        f"{base}/agents/forum_welcome_agent", json={"enabled": True, "config": {"rules_url": "https://example.com/r"}}
    )
    assert r.status_code == 200, r.text
    await run_import(app.state.services, slug, read_dump(write_dump(tmp_path / "beer")))
    rows = await tenant_fetch(pool, slug, "SELECT * FROM signal WHERE type LIKE 'forum.%' ORDER BY id")
    signals = [row_to_signal(r, slug) for r in rows]
    assert {s.type for s in signals} >= {"forum.thread.created", "forum.post.created", "forum.thread.solved"}
    assert all(is_imported(s) for s in signals)
    services = app.state.services
    router = SignalRouter(redis=services.redis, streams=services.streams, runtime=services.agents, consumer="t")
    first_posts = [s for s in signals if s.type == "forum.post.created" and s.payload["is_first_post"]]
    for signal in first_posts:
        assert await router.route(signal) == []
    # the same facts written live would be routed (the deleted author of "Stout glassware" has one post):
    # the import flag is what keeps agents away
    live = [msgspec.structs.replace(s, source="web") for s in first_posts]
    assert not any(is_imported(s) for s in live)
    assert sum([len(await router.route(s)) for s in live]) == 1


async def test_jsonl_import_and_refusals(app, make_client, pool, tmp_path):
    _, slug = await make_org(make_client)
    path = tmp_path / "threads.jsonl"
    lines = [
        {
            "thread_id": "Q1_R1",
            "category": "Advice and Help",
            "created": "2013-05-02 19:43:00",
            "author": "U1",
            "title": "Best Bank",
            "body": "Which is the best bank in Doha?",
            "comments": [
                {
                    "comment_id": "Q1_R1_C1",
                    "created": "2013-05-03 07:23:20",
                    "author": "U2",
                    "text": "QNB",
                    "relevance_to_thread": "Good",
                },
            ],
        },
        {
            "thread_id": "Q1_R2",
            "created": "2013-06-01 10:00:00",
            "author": "U2",
            "title": "Visa renewal",
            "body": "How long does a visa renewal take?",
            "comments": [],
        },
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    source = read_jsonl(path)
    first = await run_import(app.state.services, slug, source)
    assert (first.counts.threads, first.counts.posts, first.counts.users) == (2, 3, 2)
    again = await run_import(app.state.services, slug, read_jsonl(path))
    assert (again.counts.threads, again.counts.posts) == (0, 0)
    cats = await tenant_fetch(pool, slug, "SELECT slug, thread_count FROM category ORDER BY slug")
    assert [(r["slug"], r["thread_count"]) for r in cats] == [("advice-and-help", 1), ("imported", 1)]
    bodies = await tenant_fetch(pool, slug, "SELECT content_markdown FROM post ORDER BY created_at")
    assert [r["content_markdown"] for r in bodies] == [
        "Which is the best bank in Doha?",
        "QNB",
        "How long does a visa renewal take?",
    ]

    with pytest.raises(ImportRefused):
        await run_import(app.state.services, "no_such_org", source)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "no id"}\n', encoding="utf-8")
    assert forum_main(["import", "jsonl", str(bad), "--org", slug]) == 2


async def test_two_runs_at_once_import_everything_once(app, make_client, pool, tmp_path):
    _, slug = await make_org(make_client)
    source = read_dump(write_dump(tmp_path / "beer"))
    first, second = await asyncio.gather(
        run_import(app.state.services, slug, source, batch_size=1),
        run_import(app.state.services, slug, read_dump(tmp_path / "beer"), batch_size=1),
    )
    assert first.counts.threads + second.counts.threads == 3
    assert first.counts.posts + second.counts.posts == 7
    assert first.counts.users + second.counts.users == 3
    _, clean_slug = await make_org(make_client)
    await run_import(app.state.services, clean_slug, source)
    assert await counts(pool, slug) == await counts(pool, clean_slug)
