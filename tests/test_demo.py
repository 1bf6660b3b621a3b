"""The demo forum `make dev` seeds: created once through the services, a second run adds nothing."""

from __future__ import annotations

from backend import demo_content as content
from backend.demo import DEMO_ORG, ensure_demo
from tests.factories import snapshot_counts, tenant_fetch


async def test_ensure_demo_seeds_a_living_forum_once(app, pool, tmp_path, make_client):
    services = app.state.services
    creds = await ensure_demo(services, tmp_path)
    assert creds.org == DEMO_ORG and (tmp_path / "demo_credentials.json").stat().st_mode & 0o777 == 0o600
    first = await snapshot_counts(pool, DEMO_ORG)

    again = await ensure_demo(services, tmp_path)
    assert again == creds
    assert await snapshot_counts(pool, DEMO_ORG) == first

    categories = await tenant_fetch(pool, DEMO_ORG, "SELECT slug, name, qa_mode, thread_count FROM category")
    assert sorted(c["name"] for c in categories) == sorted(c.name for c in content.CATEGORIES)
    assert {c["slug"] for c in categories if c["qa_mode"]} == {"help-questions"}
    threads = await tenant_fetch(pool, DEMO_ORG, "SELECT title, reply_count, is_solved, solution_post_id FROM thread")
    assert sorted(t["title"] for t in threads) == sorted(t.title for t in content.THREADS)
    assert len(threads) >= 8 and all(2 <= t["reply_count"] <= 4 for t in threads)
    assert [t["title"] for t in threads if t["is_solved"]] == ["Fermentation stopped after two days: is it stuck?"]
    assert first["reaction"] > 0 and first["mention"] >= 1
    code = await tenant_fetch(pool, DEMO_ORG, "SELECT 1 FROM post WHERE content_html LIKE '%<pre><code%'")
    assert code, "a code block"
    members = await tenant_fetch(
        pool,
        DEMO_ORG,
        "SELECT u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id"
        " JOIN orgs o ON o.id = m.org_id WHERE o.slug = $1",
        DEMO_ORG,
    )
    roles = {m["username"]: m["role"] for m in members}
    assert roles["maltmonk"] == "moderator" and roles["hopsandhearth"] == roles["wortwhisperer"] == "member"
    # Posting limits are back on after seeding.
    settings = await tenant_fetch(pool, DEMO_ORG, "SELECT settings FROM forum_settings")
    assert '"enabled": true' in settings[0]["settings"] or settings[0]["settings"] in ("{}", {})

    # The seeded forum is what a visitor sees through the API.
    r = await make_client().get(f"/api/v1/o/{DEMO_ORG}/categories")
    assert r.status_code == 200 and len(r.json()["categories"]) == len(content.CATEGORIES)
