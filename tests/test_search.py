"""Search (GET /api/v1/o/{org}/search): ranking, websearch syntax, highlights, filters, visibility,
tenant isolation, pagination under ties, bad input and snippet safety."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.factories import create_org, register_and_login, unique


async def forum(client: httpx.AsyncClient, *categories: str, visibility: str = "public") -> str:
    """An org with posting limits off (these tests post fast) and the named categories; its base URL."""
    org = await create_org(client, visibility=visibility)
    base = f"/api/v1/o/{org['slug']}"
    r = await client.put(f"{base}/settings", json={"posting": {"enabled": False}})
    assert r.status_code == 200, r.text
    for name in categories or ("general",):
        r = await client.post(f"{base}/categories", json={"name": name, "slug": name})
        assert r.status_code == 201, r.text
    return base


async def thread(client: httpx.AsyncClient, base: str, title: str, body: str, category: str = "general"):
    r = await client.post(f"{base}/threads", json={"category": category, "title": title, "body": body})
    assert r.status_code == 201, r.text
    return r.json()["thread"], r.json()["post"]


async def reply(client: httpx.AsyncClient, base: str, thread_id: str, body: str) -> dict[str, Any]:
    r = await client.post(f"{base}/threads/{thread_id}/posts", json={"body": body})
    assert r.status_code == 201, r.text
    return r.json()["post"]


async def search(client: httpx.AsyncClient, base: str, **params: Any) -> dict[str, Any]:
    r = await client.get(f"{base}/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def post_ids(page: dict[str, Any]) -> list[str]:
    return [hit["post_id"] for hit in page["hits"]]


async def test_title_match_ranks_above_body_mention(client):
    await register_and_login(client)
    base = await forum(client)
    other, other_first = await thread(client, base, "Weekend plans", "I might bake with my sourdough later.")
    titled, titled_first = await thread(client, base, "Sourdough starter troubleshooting", "My bread is flat.")
    await reply(client, base, other["id"], "Nothing about bread here.")
    page = await search(client, base, q="sourdough")
    assert post_ids(page) == [titled_first["id"], other_first["id"]]
    best, second = page["hits"]
    assert best["rank"] > second["rank"] > 0
    assert best["thread_title"] == "Sourdough starter troubleshooting"
    assert best["thread_slug"] == titled["slug"] and best["thread_id"] == titled["id"]
    assert best["category_slug"] == "general"
    assert best["author"]["username"] and best["created_at"]
    assert page["next_cursor"] is None


async def test_websearch_syntax_phrase_exclusion_or(client):
    await register_and_login(client)
    base = await forum(client)
    t, _ = await thread(client, base, "Miscellaneous observations", "Notes collected over time.")
    jumps = await reply(client, base, t["id"], "The quick brown fox jumps over the fence.")
    reversed_ = await reply(client, base, t["id"], "A brown quick fox naps.")
    dog = await reply(client, base, t["id"], "The lazy dog sleeps all afternoon.")
    both = await reply(client, base, t["id"], "The fox and the dog are friends.")

    assert post_ids(await search(client, base, q='"quick brown"')) == [jumps["id"]]
    assert set(post_ids(await search(client, base, q="quick brown"))) == {jumps["id"], reversed_["id"]}
    assert set(post_ids(await search(client, base, q="fox -dog"))) == {jumps["id"], reversed_["id"]}
    assert set(post_ids(await search(client, base, q="sleeps OR jumps"))) == {jumps["id"], dog["id"]}
    assert set(post_ids(await search(client, base, q="fox dog"))) == {both["id"]}
    # Stemming (english config): "jumping" finds "jumps".
    assert post_ids(await search(client, base, q="jumping")) == [jumps["id"]]
    # Only stop words: a valid query that matches nothing.
    assert (await search(client, base, q="the and"))["hits"] == []


async def test_snippets_highlight_matches(client):
    await register_and_login(client)
    base = await forum(client)
    t, first = await thread(client, base, "Fermentation log", "Day one: bubbles everywhere.")
    long_body = " ".join(["filler"] * 80) + " the airlock started jumping at midnight " + " ".join(["tail"] * 80)
    post = await reply(client, base, t["id"], long_body)
    page = await search(client, base, q="airlock jumped")
    (hit,) = page["hits"]
    assert hit["post_id"] == post["id"]
    assert "<mark>airlock</mark>" in hit["snippet_html"]
    assert "<mark>jumping</mark>" in hit["snippet_html"]
    assert len(hit["snippet_html"]) < len(long_body) / 2  # a fragment, not the whole post
    # A title-only match still gets a snippet of the post (its beginning), unhighlighted.
    page = await search(client, base, q="fermentation")
    snippets = {hit["post_id"]: hit["snippet_html"] for hit in page["hits"]}
    assert snippets[first["id"]] == "Day one: bubbles everywhere."


async def test_category_filter_and_unknown_category(client):
    await register_and_login(client)
    base = await forum(client, "brewing", "baking")
    _, brew = await thread(client, base, "Yeast choices", "Which yeast for a stout?", category="brewing")
    _, bake = await thread(client, base, "Bread rising", "My yeast seems dead.", category="baking")
    assert set(post_ids(await search(client, base, q="yeast"))) == {brew["id"], bake["id"]}
    page = await search(client, base, q="yeast", category="baking")
    assert post_ids(page) == [bake["id"]]
    assert page["hits"][0]["category_slug"] == "baking"
    r = await client.get(f"{base}/search", params={"q": "yeast", "category": "nope"})
    assert r.status_code == 404, r.text
    r = await client.get(f"{base}/search", params={"q": "yeast", "category": "Not A Slug!"})
    assert r.status_code == 404, r.text


async def test_deleted_and_hidden_posts_are_excluded(client, pool):
    await register_and_login(client)
    base = await forum(client)
    org = base.rsplit("/", 1)[1]
    t, _ = await thread(client, base, "Cleaning routines", "Sanitize everything.")
    kept = await reply(client, base, t["id"], "Starsan works for kegs.")
    deleted = await reply(client, base, t["id"], "Starsan foams a lot.")
    hidden = await reply(client, base, t["id"], "Starsan is acidic.")
    assert len((await search(client, base, q="starsan"))["hits"]) == 3
    r = await client.delete(f"{base}/posts/{deleted['id']}")
    assert r.status_code == 204, r.text
    await pool.execute(f'UPDATE "org_{org}".post SET is_hidden = true WHERE id = $1::uuid', hidden["id"])
    assert post_ids(await search(client, base, q="starsan")) == [kept["id"]]
    # A title match does not bring back a deleted or hidden reply either.
    assert kept["id"] in post_ids(await search(client, base, q="cleaning"))
    assert not {deleted["id"], hidden["id"]} & set(post_ids(await search(client, base, q="cleaning")))


async def test_tenant_isolation(make_client):
    alice, bob = make_client(), make_client(ip="198.51.100.20")
    await register_and_login(alice)
    await register_and_login(bob)
    base_a = await forum(alice)
    base_b = await forum(bob)
    secret = unique("zebra")
    _, a_post = await thread(alice, base_a, "Shared topic", "Both orgs talk about hops.")
    _, b_post = await thread(bob, base_b, "Shared topic", f"Hops and the word {secret}.")
    assert post_ids(await search(alice, base_a, q="hops")) == [a_post["id"]]
    assert post_ids(await search(bob, base_b, q="hops")) == [b_post["id"]]
    assert (await search(alice, base_a, q=secret))["hits"] == []
    assert (await search(bob, base_a, q=secret))["hits"] == []  # a public org, searched by an outsider
    # A private org's search is 404 to non-members.
    base_p = await forum(bob, visibility="private")
    await thread(bob, base_p, "Private notes", f"Only members see {secret}.")
    r = await alice.get(f"{base_p}/search", params={"q": secret})
    assert r.status_code == 404, r.text


async def test_pagination_is_stable_under_ties(client):
    await register_and_login(client)
    base = await forum(client)
    t, _ = await thread(client, base, "Identical replies", "Starting the pile.")
    made = {(await reply(client, base, t["id"], "malt malt"))["id"] for _ in range(7)}
    seen: list[str] = []
    ranks: list[float] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"q": "malt", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await search(client, base, **params)
        assert len(page["hits"]) <= 2
        seen += post_ids(page)
        ranks += [hit["rank"] for hit in page["hits"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 7
    assert len(set(ranks)) == 1  # all tied: the post id orders them
    assert seen == sorted(seen, reverse=True)


async def test_bad_input(client):
    await register_and_login(client)
    base = await forum(client)
    await thread(client, base, "Something", "Some text.")
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}, {"q": "a\x00b"}):
        r = await client.get(f"{base}/search", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["extra"] == [{"key": "q", "message": r.json()["detail"]}]
    assert (await client.get(f"{base}/search", params={"q": "x" * 200})).status_code == 200
    for params in ({"q": "text", "limit": 0}, {"q": "text", "limit": 51}, {"q": "text", "limit": "many"}):
        r = await client.get(f"{base}/search", params=params)
        assert r.status_code == 400, (params, r.text)
    for cursor in ("garbage", "WyJhIiwiYiJd", "WyJuYW4iLCJ4Il0", "WyIxLjAiXQ"):
        r = await client.get(f"{base}/search", params={"q": "text", "cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
    r = await client.get("/api/v1/o/no_such_org/search", params={"q": "text"})
    assert r.status_code == 404


async def test_snippets_never_carry_live_html(client):
    await register_and_login(client)
    base = await forum(client)
    t, _ = await thread(client, base, "Payload collection", "Testing the renderer.")
    payloads = [
        "<script>alert(1)</script> payloadword",
        'payloadword <img src=x onerror="alert(1)">',
        'payloadword <svg/onload=alert(1)> <a href="javascript:alert(1)">x</a>',
        "`<iframe src=//evil>` payloadword </mark><script>",
        "payloadword \ue000<b>marker</b>\ue001 unbalanced \ue001\ue001",
        "[click](javascript:alert(1)) payloadword &lt;script&gt;",
    ]
    for body in payloads:
        await reply(client, base, t["id"], body)
    for q in ("payloadword", "script", "alert", "onerror", "marker", "iframe"):
        for hit in (await search(client, base, q=q))["hits"]:
            snippet = hit["snippet_html"]
            assert snippet.count("<mark>") == snippet.count("</mark>") >= 0, snippet
            without_marks = re.sub(r"</?mark>", "", snippet)
            assert "<" not in without_marks and ">" not in without_marks, snippet
            assert "\ue000" not in snippet and "\ue001" not in snippet


async def test_search_is_in_the_openapi_document(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    operation = r.json()["paths"]["/api/v1/o/{org}/search"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"q", "category", "cursor", "limit"} <= names
