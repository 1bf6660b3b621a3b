"""Forum routes, part 2: threads, replies, solutions, posts (edit, history, delete), reactions, preview
and settings: normal paths and their route-specific bad input (each 4xx writes nothing)."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import (
    UNKNOWN,
    Forum,
    make_forum,
    make_reply,
    make_scene,
    make_thread,
    rejected,
    snapshot_counts,
    tenant_fetch,
)


@pytest.fixture
async def forum(make_client) -> Forum:
    return await make_forum(make_client)


# --- threads ---


async def test_create_thread(forum, pool):
    r = await forum.member.post(
        f"{forum.base}/threads",
        json={"category": "general", "title": "  My first brew  ", "body": "Hello **all**"},
    )
    assert r.status_code == 201, r.text
    thread, post = r.json()["thread"], r.json()["post"]
    assert thread["title"] == "My first brew" and thread["slug"].startswith("my-first-brew-")
    assert thread["category_slug"] == "general" and thread["status"] == "open"
    assert thread["author"]["username"] == forum.users["member"]["username"]
    assert thread["reply_count"] == 0 and thread["view_count"] == 0
    assert post["html"] == "<p>Hello <strong>all</strong></p>\n" and post["body"] == "Hello **all**"
    assert post["role"] == "human" and not post["is_agent_generated"]
    b, c = forum.base, forum.member
    for body in (
        {"category": "general", "title": "t" * 201, "body": "x"},
        {"category": "general", "title": "ab", "body": "x"},
        {"category": "general", "title": "     ", "body": "x"},
        {"category": "general", "title": "Fine title", "body": "b" * 50_001},
        {"category": "general", "title": "Fine title", "body": ""},
        {"category": "", "title": "Fine title", "body": "x"},
    ):
        await rejected(pool, forum, 400, c.post(f"{b}/threads", json=body))
    # Within the schema's 50,000 but over the org's max_body_chars (32,000 by default): 413.
    await rejected(
        pool,
        forum,
        413,
        c.post(f"{b}/threads", json={"category": "general", "title": "Long", "body": "b" * 40_000}),
    )


async def test_get_thread_by_id_and_slug_with_post_pagination(forum, pool):
    scene = await make_scene(forum)
    for i in range(3):
        await make_reply(forum.member, forum.slug, scene.thread["id"], f"reply number {i}")
    by_slug = (await forum.member.get(f"{forum.base}/threads/{scene.thread['slug']}")).json()
    assert by_slug["thread"]["id"] == scene.thread["id"]
    assert [p["id"] for p in by_slug["posts"]][:2] == [scene.first_post["id"], scene.reply["id"]]
    assert len(by_slug["posts"]) == 5 and by_slug["next_cursor"] is None
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await forum.member.get(f"{forum.base}/threads/{scene.thread['id']}", params=params)).json()
        ids += [p["id"] for p in page["posts"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == [p["id"] for p in by_slug["posts"]]
    path = f"{forum.base}/threads/{scene.thread['id']}"
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "%%%"}, {"cursor": "bm9wZQ"}):
        await rejected(pool, forum, 400, forum.outsider.get(path, params=params))


# --- replies ---


async def test_reply_and_reply_to(forum, pool):
    scene = await make_scene(forum)
    r = await forum.member.post(
        f"{forum.base}/threads/{scene.thread['slug']}/posts",
        json={"body": "Thanks!", "reply_to_post_id": scene.reply["id"]},
    )
    assert r.status_code == 201, r.text
    post = r.json()["post"]
    assert post["reply_to_post_id"] == scene.reply["id"] and post["thread_id"] == scene.thread["id"]
    thread = (await forum.member.get(f"{forum.base}/threads/{scene.thread['id']}")).json()["thread"]
    assert thread["reply_count"] == 2
    other = await make_thread(forum.member, forum.slug, "general")
    await rejected(
        pool,
        forum,
        422,
        forum.member.post(
            f"{forum.base}/threads/{scene.thread['id']}/posts",
            json={"body": "wrong thread", "reply_to_post_id": other["post"]["id"]},
        ),
    )
    await rejected(
        pool,
        forum,
        400,
        forum.member.post(f"{forum.base}/threads/{scene.thread['id']}/posts", json={"body": "b" * 50_001}),
    )


async def test_reply_to_a_closed_thread_is_409(forum, pool):
    scene = await make_scene(forum)
    async with pool.acquire() as conn:
        await conn.execute(
            f"UPDATE org_{forum.slug}.thread SET status = 'closed' WHERE id = $1",
            uuid.UUID(scene.thread["id"]),
        )
    for client in (forum.member, forum.moderator, forum.admin):
        await rejected(
            pool,
            forum,
            409,
            client.post(f"{forum.base}/threads/{scene.thread['id']}/posts", json={"body": "late"}),
        )


# --- solutions ---


async def test_solve(forum, pool):
    created = await make_thread(forum.moderator, forum.slug, "help", "Which yeast for a saison?")
    b, t, first = forum.base, created["thread"]["id"], created["post"]
    answer = await make_reply(forum.member, forum.slug, t, "Try a French saison strain.")
    other = await make_reply(forum.admin, forum.slug, t, "Or a Belgian one.")
    # A member who is not the thread's author may not; neither may a non-member.
    await rejected(pool, forum, 403, forum.member.post(f"{b}/threads/{t}/solve", json={"post_id": answer["id"]}))
    await rejected(pool, forum, 403, forum.outsider.post(f"{b}/threads/{t}/solve", json={"post_id": answer["id"]}))
    # The question itself cannot be the solution; a post of another thread neither.
    author = forum.moderator
    await rejected(pool, forum, 422, author.post(f"{b}/threads/{t}/solve", json={"post_id": first["id"]}))
    elsewhere = await make_thread(forum.member, forum.slug, "help")
    await rejected(pool, forum, 422, author.post(f"{b}/threads/{t}/solve", json={"post_id": elsewhere["post"]["id"]}))
    await rejected(pool, forum, 404, author.post(f"{b}/threads/{t}/solve", json={"post_id": UNKNOWN}))
    r = await author.post(f"{b}/threads/{t}/solve", json={"post_id": answer["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["is_solved"] and r.json()["solution_post_id"] == answer["id"]
    # Solving again with the same post is a no-op (no second signal); another moderator may change it.
    before = await snapshot_counts(pool, forum.slug)
    assert (await author.post(f"{b}/threads/{t}/solve", json={"post_id": answer["id"]})).status_code == 200
    assert await snapshot_counts(pool, forum.slug) == before
    r = await forum.admin.post(f"{b}/threads/{t}/solve", json={"post_id": other["id"]})
    assert r.status_code == 200 and r.json()["solution_post_id"] == other["id"]
    posts = (await forum.anon.get(f"{b}/threads/{t}")).json()["posts"]
    assert [p["is_solution"] for p in posts] == [False, False, True]
    solved = await tenant_fetch(pool, forum.slug, "SELECT payload FROM signal WHERE type = 'forum.thread.solved'")
    assert len(solved) == 2
    # A deleted post cannot be the solution.
    assert (await forum.member.delete(f"{b}/posts/{answer['id']}")).status_code == 204
    await rejected(pool, forum, 422, author.post(f"{b}/threads/{t}/solve", json={"post_id": answer["id"]}))


async def test_solve_in_a_non_qa_category_is_422(forum, pool):
    created = await make_thread(forum.member, forum.slug, "general")
    reply = await make_reply(forum.moderator, forum.slug, created["thread"]["id"])
    for client in (forum.member, forum.moderator, forum.admin):
        await rejected(
            pool,
            forum,
            422,
            client.post(f"{forum.base}/threads/{created['thread']['id']}/solve", json={"post_id": reply["id"]}),
        )


# --- posts: read, edit, history, delete ---


async def test_get_post(forum):
    scene = await make_scene(forum)
    r = await forum.moderator.get(f"{forum.base}/posts/{scene.reply['id']}")
    assert r.status_code == 200
    post = r.json()["post"]
    assert post["id"] == scene.reply["id"] and post["body"] == "Check the temperature."
    assert post["author"]["username"] == forum.users["moderator"]["username"]


async def test_edit_post_author_or_moderator(forum, pool):
    scene = await make_scene(forum)
    b, p = forum.base, scene.first_post["id"]
    r = await forum.member.patch(f"{b}/posts/{p}", json={"body": "Edited *text*", "edit_reason": "clarity"})
    assert r.status_code == 200, r.text
    post = r.json()["post"]
    assert post["html"] == "<p>Edited <em>text</em></p>\n" and post["edit_reason"] == "clarity"
    assert post["edited_at"] is not None
    # Someone else's post: 403 for members (even admins of nothing), allowed to moderators.
    await rejected(pool, forum, 403, forum.member.patch(f"{b}/posts/{scene.reply['id']}", json={"body": "mine now"}))
    await rejected(pool, forum, 403, forum.outsider.patch(f"{b}/posts/{p}", json={"body": "mine now"}))
    r = await forum.moderator.patch(f"{b}/posts/{p}", json={"body": "Moderated", "edit_reason": "rules"})
    assert r.status_code == 200 and r.json()["post"]["html"] == "<p>Moderated</p>\n"
    for body in ({"body": ""}, {"body": "x" * 50_001}, {"body": "x", "edit_reason": "r" * 301}):
        await rejected(pool, forum, 400, forum.member.patch(f"{b}/posts/{p}", json=body))
    # The same body and reason again is a no-op: no revision, no signal.
    before = await snapshot_counts(pool, forum.slug)
    r = await forum.moderator.patch(f"{b}/posts/{p}", json={"body": "Moderated", "edit_reason": "rules"})
    assert r.status_code == 200
    assert await snapshot_counts(pool, forum.slug) == before


async def test_post_history(forum, pool):
    scene = await make_scene(forum)
    b, p = forum.base, scene.reply["id"]
    path = f"{b}/posts/{p}/history"
    assert (await forum.moderator.get(path)).json() == {"revisions": []}
    await forum.moderator.patch(f"{b}/posts/{p}", json={"body": "v2", "edit_reason": "first fix"})
    await forum.admin.patch(f"{b}/posts/{p}", json={"body": "v3", "edit_reason": "second fix"})
    revisions = (await forum.moderator.get(path)).json()["revisions"]
    assert [(r["revision"], r["content_markdown"], r["edit_reason"]) for r in revisions] == [
        (1, "Check the temperature.", None),
        (2, "v2", "first fix"),
    ]
    assert revisions[1]["edited_by"] == forum.users["admin"]["username"]
    # Not the author and not a moderator.
    await rejected(pool, forum, 403, forum.member.get(path))
    await rejected(pool, forum, 403, forum.outsider.get(path))


async def test_delete_post_is_soft(forum, pool):
    scene = await make_scene(forum)
    b = forum.base
    await rejected(pool, forum, 403, forum.member.delete(f"{b}/posts/{scene.reply['id']}"))
    await rejected(pool, forum, 403, forum.outsider.delete(f"{b}/posts/{scene.first_post['id']}"))
    r = await forum.moderator.delete(f"{b}/posts/{scene.reply['id']}")
    assert r.status_code == 204
    post = (await forum.member.get(f"{b}/posts/{scene.reply['id']}")).json()["post"]
    assert post["is_deleted"] and post["html"] == "" and post["body"] is None
    rows = await tenant_fetch(
        pool,
        forum.slug,
        "SELECT is_deleted, content_markdown FROM post WHERE id = $1",
        uuid.UUID(scene.reply["id"]),
    )
    assert rows[0]["is_deleted"] and rows[0]["content_markdown"] == "Check the temperature."
    thread = (await forum.member.get(f"{b}/threads/{scene.thread['id']}")).json()
    assert thread["thread"]["reply_count"] == 0 and len(thread["posts"]) == 2
    # Deleting again is a no-op; editing or reacting to a deleted post is 404.
    before = await snapshot_counts(pool, forum.slug)
    assert (await forum.moderator.delete(f"{b}/posts/{scene.reply['id']}")).status_code == 204
    assert await snapshot_counts(pool, forum.slug) == before
    await rejected(pool, forum, 404, forum.moderator.patch(f"{b}/posts/{scene.reply['id']}", json={"body": "x"}))
    await rejected(
        pool, forum, 404, forum.member.post(f"{b}/posts/{scene.reply['id']}/reactions", json={"type": "like"})
    )
    # The author may delete their own post.
    assert (await forum.member.delete(f"{b}/posts/{scene.first_post['id']}")).status_code == 204


# --- reactions ---


async def test_reactions_add_twice_and_remove(forum, pool):
    scene = await make_scene(forum)
    path = f"{forum.base}/posts/{scene.reply['id']}/reactions"
    r = await forum.member.post(path, json={"type": "like"})
    assert r.status_code == 200 and r.json() == {
        "post_id": scene.reply["id"],
        "type": "like",
        "count": 1,
        "mine": True,
    }
    before = await snapshot_counts(pool, forum.slug)
    r = await forum.member.post(path, json={"type": "like"})
    assert r.status_code == 200 and r.json()["count"] == 1
    assert await snapshot_counts(pool, forum.slug) == before  # no row, no signal
    assert (await forum.admin.post(path, json={"type": "like"})).json()["count"] == 2
    assert (await forum.admin.post(path, json={"type": "laugh"})).json()["count"] == 1
    post = (await forum.member.get(f"{forum.base}/posts/{scene.reply['id']}")).json()["post"]
    assert post["reactions"] == {"like": 2, "laugh": 1} and post["my_reactions"] == ["like"]
    r = await forum.member.delete(f"{path}/like")
    assert r.status_code == 200 and r.json()["count"] == 1 and not r.json()["mine"]
    before = await snapshot_counts(pool, forum.slug)
    assert (await forum.member.delete(f"{path}/like")).json()["count"] == 1  # removing twice: no-op
    assert await snapshot_counts(pool, forum.slug) == before
    signals = await tenant_fetch(
        pool, forum.slug, "SELECT payload FROM signal WHERE type = 'forum.post.reacted' ORDER BY id"
    )
    assert len(signals) == 4


# --- preview ---


async def test_preview(forum, pool):
    before = await snapshot_counts(pool, forum.slug)
    r = await forum.member.post(f"{forum.base}/preview", json={"body": "# Title\n\n`code` and *em*"})
    assert r.status_code == 200, r.text
    assert r.json() == {"html": "<h1>Title</h1>\n<p><code>code</code> and <em>em</em></p>\n"}
    assert await snapshot_counts(pool, forum.slug) == before
    await rejected(pool, forum, 400, forum.member.post(f"{forum.base}/preview", json={"body": "x" * 50_001}))


# --- settings ---


async def test_settings_admin_only_and_validated(forum, pool):
    b = forum.base
    r = await forum.admin.get(f"{b}/settings")
    assert r.status_code == 200 and r.json()["posting"]["enabled"] is False
    r = await forum.admin.put(f"{b}/settings", json={"posting": {"reply_interval_s": 7, "ip_posts_per_minute": 9}})
    assert r.status_code == 200, r.text
    posting = (await forum.admin.get(f"{b}/settings")).json()["posting"]
    assert posting["reply_interval_s"] == 7 and posting["ip_posts_per_minute"] == 9 and posting["enabled"]
    for client in (forum.member, forum.moderator, forum.outsider):
        await rejected(pool, forum, 403, client.get(f"{b}/settings"))
        await rejected(pool, forum, 403, client.put(f"{b}/settings", json={"posting": {"enabled": False}}))
    for posting in (
        {"ip_posts_per_minute": 0},
        {"reply_interval_s": -5},
        {"reply_interval_s": 86_401},
        {"max_body_chars": 99},
        {"max_body_chars": 50_001},
        {"new_account_max_links": 101},
        {"duplicate_window_s": "five minutes"},
        {"enabled": None},
    ):
        await rejected(pool, forum, 400, forum.admin.put(f"{b}/settings", json={"posting": posting}))
    async with pool.acquire() as conn:
        stored = await conn.fetchval(f"SELECT settings FROM org_{forum.slug}.forum_settings")
    assert '"reply_interval_s": 7' in stored
