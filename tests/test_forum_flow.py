from __future__ import annotations

from tests.factories import create_org, register_and_login


async def test_category_thread_reply_flow(make_client):
    admin = make_client()
    await register_and_login(admin)
    org = await create_org(admin, visibility="public")
    base = f"/api/v1/o/{org['slug']}"
    r = await admin.post(f"{base}/categories", json={"name": "General Help", "qa_mode": True})
    assert r.status_code == 201, r.text
    cat = r.json()["category"]
    assert cat["slug"] == "general-help"
    r = await admin.post(
        f"{base}/threads",
        json={"category": "general-help", "title": "How do I brew?", "body": "I need **help** with `yeast`"},
    )
    assert r.status_code == 201, r.text
    thread = r.json()["thread"]
    assert "<strong>help</strong>" in r.json()["post"]["html"]
    other = make_client(ip="198.51.100.9")
    await register_and_login(other)
    r = await other.post(f"/api/v1/orgs/{org['slug']}/join")
    assert r.status_code == 200, r.text
    r = await other.post(f"{base}/threads/{thread['id']}/posts", json={"body": "Use ale yeast @" + "nobody"})
    assert r.status_code == 201, r.text
    reply = r.json()["post"]
    r = await other.post(f"{base}/posts/{reply['id']}/reactions", json={"type": "like"})
    assert r.status_code == 200 and r.json()["count"] == 1
    r = await other.post(f"{base}/posts/{reply['id']}/reactions", json={"type": "like"})
    assert r.json()["count"] == 1
    r = await admin.post(f"{base}/threads/{thread['id']}/solve", json={"post_id": reply["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["is_solved"]
    r = await admin.get(f"{base}/threads/{thread['slug']}")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["thread"]["reply_count"] == 1
    assert detail["thread"]["view_count"] == 1
    assert [p["id"] for p in detail["posts"]][1] == reply["id"]
    assert detail["posts"][1]["is_solution"]
    r = await admin.get(f"{base}/categories")
    cats = r.json()["categories"]
    assert cats[0]["thread_count"] == 1 and cats[0]["post_count"] == 2
    r = await admin.get(f"{base}/threads")
    assert r.json()["threads"][0]["id"] == thread["id"]
