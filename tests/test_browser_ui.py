"""Browser tests of issue 10 in Chromium: what a person can do in the web UI without reading the docs.

Join and post, live replies between two browsers, the moderators' badge and toast on any page, search,
the notifications bell, approving a waiting directive, pages members may not open, the server-rendered
thread page without JavaScript, no console errors on anonymous pages. Screenshots (desktop and phone width)
go to test-artifacts/ (git-ignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from backend.settings import Settings
from engine.agents.api import DirectiveRequest, PackageManifest
from engine.agents.directives import request_directive
from engine.relay import StreamConfig
from engine.signals import SignalContext
from engine.work import tenant_work
from tests.conftest import Servers
from tests.test_browser import (  # noqa: F401  (module fixtures: one web process and one Chromium per module)
    SCREENSHOT_DIR,
    User,
    Web,
    _api_client,
    _live,
    _make_org_and_category,
    _new_page,
    _thread_via_api,
    browser,
    register_in_ui,
    web,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}


async def _shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


async def _add_member(admin: User, org: str, username: str, role: str) -> None:
    r = await admin.api.post(f"/api/v1/orgs/{org}/members", json={"username": username, "role": role})
    assert r.status_code in (200, 201), r.text


async def _posting_limits(admin: User, org: str, **posting: Any) -> None:
    r = await admin.api.put(f"/api/v1/o/{org}/settings", json={"posting": posting})
    assert r.status_code == 200, r.text


async def test_new_user_registers_joins_and_posts_with_preview_draft_and_limits(web: Web, browser: Any) -> None:
    admin = await register_in_ui(web, browser)
    newbie = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(admin)
        await _thread_via_api(
            admin, org, category["slug"], "Calibrating a hydrometer for first use", "Float it in distilled water."
        )
        await _posting_limits(admin, org, enabled=True, new_reply_interval_s=600, new_thread_interval_s=0)
        page = newbie.page
        await page.goto(f"{web.url}/#/o/{org}/c/{category['slug']}")
        # A signed-in non-member sees a clear call to join, and no composer yet.
        cta = page.get_by_test_id("join-cta")
        await cta.wait_for()
        assert await page.get_by_test_id("new-thread-button").count() == 0
        await _shot(page, "join_cta_desktop")
        await page.get_by_test_id("join-button").click()
        await cta.wait_for(state="detached")

        # "New thread" at the top of the category page, with the category preselected.
        await page.get_by_test_id("new-thread-button").click()
        assert await page.get_by_test_id("new-thread-category").input_value() == category["slug"]
        # Related threads show while typing a title that was asked before.
        await page.get_by_test_id("new-thread-title").fill("How do I calibrate my hydrometer?")
        related = page.get_by_test_id("related-threads")
        await related.locator("a", has_text="Calibrating a hydrometer").wait_for()
        await page.get_by_test_id("new-thread-title").fill("My first question here")
        await page.get_by_test_id("new-thread-body").fill("Hello **everyone**, how do I start?")
        await page.get_by_test_id("new-thread-body-preview").click()
        preview = page.get_by_test_id("new-thread-body-preview-html")
        await preview.locator("strong", has_text="everyone").wait_for()
        # Side by side: the text box stays visible next to the preview, and the preview follows typing.
        assert await page.get_by_test_id("new-thread-body").is_visible()
        await page.get_by_test_id("new-thread-body").fill("Hello **everyone**, how do I *start*?")
        await preview.locator("em", has_text="start").wait_for()
        await _shot(page, "composer_desktop")

        # The draft survives a reload.
        await page.reload()
        await page.get_by_test_id("new-thread-button").click()
        assert await page.get_by_test_id("new-thread-title").input_value() == "My first question here"
        assert "how do I *start*?" in await page.get_by_test_id("new-thread-body").input_value()

        await page.get_by_test_id("new-thread-submit").click()
        await page.get_by_test_id("thread-title").filter(has_text="My first question here").wait_for()
        await page.get_by_test_id("post-html").locator("em", has_text="start").wait_for()

        # Reply once; the second reply hits the new-account limit and says when posting is possible again.
        await page.get_by_test_id("reply-body").fill("Adding some details.")
        await page.get_by_test_id("reply-submit").click()
        await page.get_by_test_id("post").nth(1).wait_for()
        await page.get_by_test_id("reply-body").fill("And one more thing.")
        await page.get_by_test_id("reply-submit").click()
        error = page.get_by_test_id("error").filter(has_text="You can post again in")
        await error.wait_for()
        assert "minutes" in await error.inner_text()
        assert page.errors == []
    finally:
        await admin.close()
        await newbie.close()


async def test_two_browsers_see_each_others_replies_live(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    bob = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        await _add_member(alice, org, bob.username, "member")
        thread = await _thread_via_api(alice, org, category["slug"], "Live chat", "Who is around?")
        url = f"{web.url}/#/o/{org}/t/{thread['id']}"
        for user in (alice, bob):
            await user.page.goto(url)
            await user.page.get_by_test_id("thread-title").wait_for()
            await _live(user.page)
            await user.page.evaluate("window.__noReload = 1")
        await bob.page.get_by_test_id("reply-body").fill("Bob here, *hello*!")
        await bob.page.get_by_test_id("reply-submit").click()
        await alice.page.get_by_test_id("post-html").locator("em", has_text="hello").wait_for()
        await alice.page.get_by_test_id("reply-body").fill("Alice here, **hi** Bob.")
        await alice.page.get_by_test_id("reply-submit").click()
        await bob.page.get_by_test_id("post-html").locator("strong", has_text="hi").wait_for()
        for user in (alice, bob):
            assert await user.page.evaluate("window.__noReload") == 1
            assert await user.page.get_by_test_id("post").count() == 3
            assert user.page.errors == []
    finally:
        await alice.close()
        await bob.close()


async def test_moderator_on_home_page_gets_badge_and_toast_then_acts_in_the_queue(web: Web, browser: Any) -> None:
    admin = await register_in_ui(web, browser)
    mod = await register_in_ui(web, browser)
    member = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(admin)
        await _add_member(admin, org, mod.username, "moderator")
        await _add_member(admin, org, member.username, "member")
        thread = await _thread_via_api(admin, org, category["slug"], "Flag target", "Something questionable.")
        post_id = (await admin.api.get(f"/api/v1/o/{org}/threads/{thread['id']}")).json()["posts"][0]["id"]

        page = mod.page
        await page.goto(f"{web.url}/#/o/{org}")
        await page.get_by_test_id("mod-badge").wait_for()
        await _live(page)
        assert await page.get_by_test_id("mod-badge-count").count() == 0
        await page.evaluate("window.__noReload = 1")
        r = await member.api.post(f"/api/v1/o/{org}/posts/{post_id}/flags", json={"reason": "spam", "notes": "ad"})
        assert r.status_code == 201, r.text
        await page.get_by_test_id("mod-badge-count").filter(has_text="1").wait_for()
        toast = page.get_by_test_id("toast").filter(has_text="flagged a post as spam")
        await toast.wait_for()
        assert await page.evaluate("window.__noReload") == 1
        await _shot(page, "moderator_toast_desktop")

        # The queue: the post in context, who flagged it and why, the author's history, the actions that apply.
        await page.get_by_test_id("mod-badge").click()
        item = page.locator(f'[data-testid="mod-queue-item"][data-post-id="{post_id}"]')
        await item.wait_for()
        assert member.username in await item.get_by_test_id("mod-flags").inner_text()
        assert "Author history: 1 post" in await item.get_by_test_id("mod-history").inner_text()
        assert await item.get_by_test_id("resolve-restore").count() == 0  # not hidden: nothing to restore
        href = await item.get_by_test_id("mod-context-link").get_attribute("href")
        assert thread["id"] in href and post_id in href
        await _shot(page, "moderation_queue_desktop")
        await item.get_by_test_id("resolve-hide").click()
        await page.get_by_test_id("mod-done").filter(has_text="Post hidden").wait_for()
        await page.get_by_test_id("mod-queue-empty").wait_for()
        await page.locator('[data-testid="mod-badge"]:not(:has([data-testid="mod-badge-count"]))').wait_for()
        assert page.errors == []
    finally:
        for user in (admin, mod, member):
            await user.close()


async def test_search_from_the_header_finds_a_post_with_keyboard_navigation(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        word = f"zebrafish{uuid.uuid4().hex[:6]}"
        thread = await _thread_via_api(alice, org, category["slug"], "Aquarium notes", f"My {word} eats flakes.")
        page = alice.page
        await page.goto(f"{web.url}/#/o/{org}")
        await page.get_by_test_id("search-input").fill(word)
        await page.get_by_test_id("search-input").press("Enter")
        hit = page.get_by_test_id("search-hit").first
        await hit.wait_for()
        assert (await hit.locator("mark").first.inner_text()).lower() == word
        await _shot(page, "search_desktop")
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("Enter")
        await page.get_by_test_id("thread-title").filter(has_text="Aquarium notes").wait_for()
        assert thread["id"] in page.url
        assert page.errors == []
    finally:
        await alice.close()


async def test_a_mention_lights_the_bell_and_reading_clears_it(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    bob = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        await _add_member(alice, org, bob.username, "member")
        page = bob.page
        await page.goto(f"{web.url}/#/o/{org}")
        await page.get_by_test_id("bell").wait_for()
        await _live(page)
        assert await page.get_by_test_id("bell-count").count() == 0
        await _thread_via_api(alice, org, category["slug"], "Calling Bob", f"Hey @{bob.username}, a question.")
        await page.get_by_test_id("bell-count").filter(has_text="1").wait_for()
        await page.get_by_test_id("bell").click()
        note = page.get_by_test_id("notification").first
        await note.wait_for()
        assert "mentioned you" in await note.inner_text()
        await _shot(page, "notifications_desktop")
        await page.get_by_test_id("mark-all-read").click()
        await page.get_by_test_id("bell-count").wait_for(state="detached")
        assert page.errors == []
    finally:
        await alice.close()
        await bob.close()


async def test_admin_approves_a_waiting_directive(web: Web, browser: Any, settings: Settings, servers: Servers) -> None:
    from redis.asyncio import Redis

    alice = await register_in_ui(web, browser)
    redis = Redis.from_url(servers.redis_url)
    try:
        org, category = await _make_org_and_category(alice)
        thread = await _thread_via_api(alice, org, category["slug"], "Heated thread", "Calm down please.")
        manifest = PackageManifest(
            name="approval_test_agent",
            version="0",
            title="t",
            description="t",
            agent_handle="approval-agent",
            consumes=(),
            directives=("forum.thread.close",),
            permissions=(),
            requires_approval=("forum.thread.close",),
        )
        streams = StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)
        ctx = SignalContext(
            actor_type="agent", actor_id="approval-agent", source="job", correlation_id=str(uuid.uuid4())
        )
        async with tenant_work(redis, streams, org, ctx):
            directive, created = await request_directive(
                DirectiveRequest(
                    type="forum.thread.close",
                    idempotency_key=f"browser-approval:{thread['id']}",
                    payload={"thread_id": thread["id"], "reason": "the discussion turned hostile"},
                ),
                manifest=manifest,
                signal=None,
                correlation_id=ctx.correlation_id,
            )
        assert created and directive.status == "awaiting_approval"

        page = alice.page
        await page.goto(f"{web.url}/#/o/{org}/admin/directives")
        row = page.locator(f'[data-testid="directive"][data-directive-id="{directive.id}"]')
        await row.wait_for()
        text = await row.inner_text()
        assert "Close the thread to new replies" in text and "the discussion turned hostile" in text
        await _shot(page, "approvals_desktop")
        await row.get_by_test_id("directive-approve").click()
        await page.get_by_test_id("approval-note").filter(has_text="Approved").wait_for()
        await page.get_by_test_id("approvals-empty").wait_for()
        r = await alice.api.get(f"/api/v1/o/{org}/directives?status=approved")
        assert [d["id"] for d in r.json()["items"]] == [directive.id]

        # The activity history: filtered by outcome, and the filter survives a reload.
        await page.get_by_test_id("admin-tab-activity").click()
        await page.get_by_test_id("filter-outcome").select_option("approved")
        row = page.locator(f'[data-testid="directive"][data-directive-id="{directive.id}"][data-status="approved"]')
        await row.wait_for()
        await page.reload()
        await row.wait_for()
        assert await page.get_by_test_id("filter-outcome").input_value() == "approved"
        await page.get_by_test_id("filter-outcome").select_option("failed")
        await page.get_by_test_id("activity-empty").wait_for()

        # Agent settings are a form generated from the package's schema, not a JSON box.
        await page.get_by_test_id("admin-tab-agents").click()
        agent = page.locator('[data-testid="agent-item"][data-package="forum_moderation_agent"]')
        await agent.locator("summary").click()
        threshold = agent.get_by_test_id("cfg-spam_threshold")
        assert await threshold.get_attribute("type") == "number" and await threshold.get_attribute("max") == "1"
        await threshold.fill("0.65")
        await agent.get_by_test_id("agent-save").click()
        await agent.get_by_role("status").filter(has_text="Saved").wait_for()
        assert await agent.locator("textarea.mono").count() == 0
        agents = (await alice.api.get(f"/api/v1/o/{org}/agents")).json()["agents"]
        (moderation,) = [a for a in agents if a["package"] == "forum_moderation_agent"]
        assert moderation["config"]["spam_threshold"] == 0.65
        await _shot(page, "agent_settings_desktop")
        assert page.errors == []
    finally:
        await redis.aclose()
        await alice.close()


async def test_a_member_cannot_open_moderation_or_admin_pages(web: Web, browser: Any) -> None:
    admin = await register_in_ui(web, browser)
    member = await register_in_ui(web, browser)
    try:
        org, _ = await _make_org_and_category(admin)
        await _add_member(admin, org, member.username, "member")
        page = member.page
        for path in ("mod", "admin/agents", "admin/directives", "admin/signals", "agents"):
            await page.goto(f"{web.url}/#/o/{org}/{path}")
            await page.get_by_test_id("forbidden").wait_for()
            assert await page.get_by_test_id("agent-item").count() == 0
            assert await page.get_by_test_id("mod-queue").count() == 0
        assert await page.get_by_test_id("mod-badge").count() == 0
        assert await page.get_by_test_id("admin-link").count() == 0
        for api in ("moderation/queue", "agents/metrics", "directives", "signals"):
            assert (await member.api.get(f"/api/v1/o/{org}/{api}")).status_code == 403
        assert page.errors == []
    finally:
        await admin.close()
        await member.close()


async def test_server_rendered_thread_page_without_javascript_and_app_takeover(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        thread = await _thread_via_api(alice, org, category["slug"], "Crawlable thread", "The **first** words.")
        r = await alice.api.post(f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": "A *second* post."})
        assert r.status_code == 201, r.text
        url = f"{web.url}/o/{org}/t/{thread['id']}/{thread['slug']}"

        context = await browser.new_context(java_script_enabled=False)
        try:
            page = await context.new_page()
            response = await page.goto(url)
            assert response.status == 200
            assert await page.title() == f"Crawlable thread · {org} · FleetPrompt Forum"
            await page.get_by_test_id("ssr-title").filter(has_text="Crawlable thread").wait_for()
            posts = page.get_by_test_id("ssr-post")
            assert await posts.count() == 2
            assert await posts.nth(0).locator("strong", has_text="first").count() == 1
            assert await posts.nth(1).locator("em", has_text="second").count() == 1
            description = await page.locator('meta[name="description"]').get_attribute("content")
            assert description == "The first words."
            await _shot(page, "thread_no_javascript")
        finally:
            await context.close()

        # With JavaScript, the app takes over the same URL: the live thread page replaces the server's HTML.
        context, page = await _new_page(browser)
        try:
            await page.goto(url)
            await page.get_by_test_id("thread-title").filter(has_text="Crawlable thread").wait_for()
            await page.locator("#ssr").wait_for(state="detached")
            assert await page.get_by_test_id("post").count() == 2
            assert page.errors == []
        finally:
            await context.close()
    finally:
        await alice.close()


async def test_anonymous_pages_have_no_console_errors_and_show_how_to_join(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        thread = await _thread_via_api(alice, org, category["slug"], "Open to all", "Readable by anyone.")
        context, page = await _new_page(browser)
        console: list[str] = []
        failed: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        try:
            for path in ("/", f"/#/o/{org}", f"/#/o/{org}/c/{category['slug']}", f"/#/o/{org}/t/{thread['id']}"):
                await page.goto(web.url + path)
                await page.locator("main[aria-busy='false']").wait_for()
                await asyncio.sleep(0.3)
            await page.get_by_test_id("join-cta").filter(has_text="Sign in or create an account").wait_for()
            await page.goto(f"{web.url}/#/o/{org}/search?q=readable")
            await page.get_by_test_id("search-hit").first.wait_for()
            assert await page.locator('link[rel="icon"]').count() == 1
            assert (await page.request.get(web.url + "/favicon.svg")).status == 200
            assert console == [] and failed == [], (console, failed)
            assert page.errors == []
        finally:
            await context.close()
    finally:
        await alice.close()


async def test_error_messages_are_written_for_people(web: Web, browser: Any) -> None:
    context, page = await _new_page(browser)
    try:
        await page.goto(web.url + "/")
        await page.get_by_test_id("show-register").click()
        # The rules are shown before submitting.
        assert "at least 8 characters" in await page.get_by_test_id("register-form").inner_text()
        await page.get_by_test_id("register-username").fill(f"short{uuid.uuid4().hex[:6]}")
        await page.get_by_test_id("register-email").fill("short@example.com")
        await page.get_by_test_id("register-password").fill("abc")
        await page.evaluate("document.querySelector('[data-testid=register-form]').noValidate = true")
        await page.get_by_test_id("register-submit").click()
        error = page.get_by_test_id("error")
        await error.wait_for()
        text = await error.inner_text()
        assert "Password needs at least 8 characters" in text, text
        assert "Expected" not in text and "$." not in text
    finally:
        await context.close()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
async def test_walkthrough_screenshots_as_stranger_member_moderator_admin(
    web: Web, browser: Any, viewport: str
) -> None:
    """Screenshots of the main pages for each kind of visitor (looked at by a person; layout must not break)."""
    size = PHONE if viewport == "phone" else {"width": 1280, "height": 900}
    admin = await register_in_ui(web, browser)
    mod = await register_in_ui(web, browser)
    member = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(admin, qa_mode=True)
        await _add_member(admin, org, mod.username, "moderator")
        await _add_member(admin, org, member.username, "member")
        thread = await _thread_via_api(
            member,
            org,
            category["slug"],
            "How do I tune the widget settings?",
            ("I tried `widget.tune = 3` but nothing changes.\n\n- restarted\n- cleared the cache"),
        )
        r = await mod.api.post(f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": "Try **5**."})
        reply_id = r.json()["post"]["id"]
        await admin.api.post(f"/api/v1/o/{org}/posts/{reply_id}/flags", json={"reason": "off_topic"})
        stranger_context, stranger = await _new_page(browser)
        pages = {"stranger": stranger, "member": member.page, "moderator": mod.page, "admin": admin.page}
        routes = {
            "stranger": ["", f"t/{thread['id']}"],
            "member": ["", f"t/{thread['id']}", f"u/{member.username}", "notifications"],
            "moderator": ["", "mod"],
            "admin": ["admin/agents", "admin/activity", "admin/metrics", "admin/signals"],
        }
        for who, page in pages.items():
            await page.set_viewport_size(size)
            for path in routes[who]:
                await page.goto("about:blank")  # a fresh load each time (a hash change alone would not reload)
                await page.goto(f"{web.url}/#/o/{org}/{path}")
                await page.locator("main[aria-busy='false']").wait_for()
                await page.wait_for_load_state("networkidle")
                await page.locator("#main h2").first.wait_for()
                await page.get_by_test_id("loading").first.wait_for(state="detached")
                await page.wait_for_load_state("networkidle")
                name = path.split("/")[0] if path.startswith(("t/", "u/")) else path.replace("/", "-") or "home"
                await _shot(page, f"walk_{who}_{name}_{viewport}")
                # Nothing wider than the screen (phone layouts must not overflow sideways).
                overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{who} {path} overflows by {overflow}px at {viewport} width"
            assert page.errors == [], (who, page.errors)
        await stranger_context.close()
    finally:
        for user in (admin, mod, member):
            await user.close()
