"""The thread page applies live events without requests (issue 12): a real Chromium watches a thread
while replies, an edit and reactions arrive; the page's HTTP requests are counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests import test_browser
from tests.test_browser import Web, _live, _make_org_and_category, _thread_via_api, register_in_ui

# the real server and Chromium of the browser tests (module-scoped fixtures, shared by name)
web = test_browser.web
browser = test_browser.browser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_live_reply_burst_costs_the_watching_page_no_request(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    bob = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        r = await alice.api.post(f"/api/v1/orgs/{org}/members", json={"username": bob.username, "role": "member"})
        assert r.status_code in (200, 201), r.text
        thread = await _thread_via_api(alice, org, category["slug"], "Busy thread", "Who is watching?")
        page = bob.page
        await page.goto(f"{web.url}/#/o/{org}/t/{thread['id']}")
        await page.get_by_test_id("thread-title").filter(has_text="Busy thread").wait_for()
        await _live(page)
        await asyncio.sleep(0.5)  # let the page's own loading requests finish before counting

        requests: list[str] = []
        page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))

        async def post(n: int) -> str:
            r = await alice.api.post(
                f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": f"Burst reply **number-{n}**"}
            )
            assert r.status_code == 201, r.text
            return str(r.json()["post"]["id"])

        burst = 12
        post_ids = await asyncio.gather(*(post(n) for n in range(burst)))
        for n in range(burst):
            await page.get_by_test_id("post-html").get_by_text(f"number-{n}", exact=True).wait_for()
        assert await page.get_by_test_id("post").count() == burst + 1
        # the counters came with the events too
        await page.get_by_text(f"{burst} replies").first.wait_for()

        # an edit and a reaction by someone else update the open page, still without a request
        target = post_ids[3]
        r = await alice.api.patch(f"/api/v1/o/{org}/posts/{target}", json={"body": "Edited *live* text"})
        assert r.status_code == 200, r.text
        edited = page.locator('[data-testid="post"]:has(em:text("live"))')
        await edited.wait_for()
        r = await alice.api.post(f"/api/v1/o/{org}/posts/{target}/reactions", json={"type": "like"})
        assert r.status_code == 200, r.text
        await edited.get_by_test_id("reaction-like-count").filter(has_text="1").wait_for()

        await asyncio.sleep(1.5)  # a coalesced fetch, if any event still caused one, would have gone out
        fetched_posts = [u for u in requests if any(pid in u for pid in post_ids)]
        assert fetched_posts == [], fetched_posts
        api_requests = [u for u in requests if "/api/" in u]
        assert api_requests == [], api_requests
        assert page.errors == []
    finally:
        await alice.close()
        await bob.close()


async def test_a_hidden_post_vanishes_live_from_another_members_open_thread(web: Web, browser: Any) -> None:
    """Issue 10: a moderator hides a post; a member watching the thread sees its text go at once (no reload),
    and sees it come back when it is restored."""
    alice = await register_in_ui(web, browser)  # admin (moderates)
    bob = await register_in_ui(web, browser)  # member watching
    try:
        org, category = await _make_org_and_category(alice)
        r = await alice.api.post(f"/api/v1/orgs/{org}/members", json={"username": bob.username, "role": "member"})
        assert r.status_code in (200, 201), r.text
        thread = await _thread_via_api(alice, org, category["slug"], "Watched thread", "Opening post")
        r = await alice.api.post(
            f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": "Buy cheap **watches-now** here"}
        )
        assert r.status_code == 201, r.text
        post_id = r.json()["post"]["id"]
        page = bob.page
        await page.goto(f"{web.url}/#/o/{org}/t/{thread['id']}")
        text = page.get_by_test_id("post-html").get_by_text("watches-now", exact=True)
        await text.wait_for()
        await _live(page)

        r = await bob.api.post(f"/api/v1/o/{org}/posts/{post_id}/flags", json={"reason": "spam"})
        assert r.status_code == 201, r.text
        flag_id = r.json()["flag"]["id"]
        r = await alice.api.post(f"/api/v1/o/{org}/moderation/flags/{flag_id}/resolve", json={"action": "hide"})
        assert r.status_code == 200, r.text
        await text.wait_for(state="detached", timeout=10_000)  # gone from the open page, no reload
        await page.get_by_text("This post is hidden.").wait_for()

        r = await bob.api.post(f"/api/v1/o/{org}/posts/{post_id}/flags", json={"reason": "other", "notes": "oops"})
        assert r.status_code == 201, r.text
        flag_id = r.json()["flag"]["id"]
        r = await alice.api.post(f"/api/v1/o/{org}/moderation/flags/{flag_id}/resolve", json={"action": "restore"})
        assert r.status_code == 200, r.text
        await text.wait_for(timeout=10_000)  # back, live
        assert page.errors == []
    finally:
        await alice.close()
        await bob.close()
