"""Browser tests: a real Chromium (Debian's package, driven by playwright) against a real `forum web`.

The web process serves the built frontend (frontend/dist, `npm run build`) and the API on one origin.
Chromium is required: without it these tests FAIL (CI installs it), they are never skipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from backend.forum.service import create_agent_post
from backend.settings import Settings
from engine.relay import StreamConfig
from engine.signals import SignalContext
from engine.work import tenant_work
from realtime.drafts import publish_draft_delta, publish_draft_end
from tests.conftest import Client, Servers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "frontend" / "dist"
FORUM = str(Path(sys.executable).parent / "forum")
CHROMIUM = os.environ.get("FORUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery"
TIMEOUT_MS = 15_000
SCREENSHOT_DIR = Path(os.environ.get("FORUM_SCREENSHOT_DIR", ROOT / "test-artifacts"))  # CI artifacts, git-ignored
SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Web:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _spawn(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [FORUM, "web", "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def _chromium_missing() -> str | None:
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return (
        f"Chromium not found at {CHROMIUM} (which chromium: {shutil.which('chromium')}): install Debian's "
        "package (`apt-get install -y chromium`) or set FORUM_CHROMIUM. Browser tests never skip."
    )


@pytest.fixture(scope="module")
async def web(app: object, servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Web]:
    """A `forum web` process serving the built frontend. `app` has run the migrations."""
    if not (DIST / "index.html").is_file():
        pytest.fail(f"{DIST}/index.html is missing: run `cd frontend && npm ci && npm run build` first")
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = {
        **os.environ,
        "FORUM_DATABASE_URL": servers.database_url,
        "FORUM_REDIS_URL": servers.redis_url,
        "FORUM_SECRET_KEY": secrets.token_hex(16),
        "FORUM_DATA_DIR": str(tmp),
        "FORUM_FRONTEND_DIST": str(DIST),
        "FORUM_REGISTER_MAX_PER_IP": "100000",
        "FORUM_LOGIN_MAX_FAILURES_PER_IP": "100000",
        "FORUM_LOG_LEVEL": "WARNING",
    }
    log_path = tmp / "web.log"
    proc = _spawn(port, env, log_path)
    node = Web(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as probe:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"forum web exited:\n{node.log()}")
                try:
                    if (await probe.get(node.url + "/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"forum web did not become healthy:\n{node.log()}")
                await asyncio.sleep(0.1)
        yield node
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    missing = _chromium_missing()
    if missing:
        pytest.fail(missing)
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.fail(f"playwright is not installed ({exc}): pip install -e '.[dev]'")
    async with async_playwright() as pw:
        try:
            instance = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:
            pytest.fail(f"Chromium at {CHROMIUM} could not be launched: {exc}")
        try:
            yield instance
        finally:
            await instance.close()


@dataclass
class User:
    username: str
    context: Any
    page: Any
    api: Client

    async def close(self) -> None:
        await self.api.aclose()
        await self.context.close()


def _trace_websocket(ws: Any) -> None:
    ws.on("framereceived", lambda frame: print("ws <", frame))
    ws.on("framesent", lambda frame: print("ws >", frame))


async def _new_page(browser: Any) -> tuple[Any, Any]:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    if os.environ.get("FORUM_BROWSER_DEBUG"):  # print console messages and websocket frames
        page.on("console", lambda m: print("console", m.type, m.text))
        page.on("websocket", _trace_websocket)
    return context, page


async def _api_client(web: Web, context: Any) -> Client:
    """An API client carrying the browser context's cookies (session + CSRF)."""
    client = Client(base_url=web.url, timeout=20)
    for cookie in await context.cookies():
        client.cookies.set(cookie["name"], cookie["value"])
    return client


async def register_in_ui(web: Web, browser: Any) -> User:
    """Register through the home page (which signs straight in) and return the signed-in user."""
    context, page = await _new_page(browser)
    username = _unique("br")
    await page.goto(web.url + "/")
    await page.get_by_test_id("show-register").click()
    await page.get_by_test_id("register-username").fill(username)
    await page.get_by_test_id("register-email").fill(f"{username}@example.com")
    await page.get_by_test_id("register-password").fill(PASSWORD)
    await page.get_by_test_id("register-submit").click()
    await page.get_by_test_id("me-username").filter(has_text=username).wait_for()
    return User(username, context, page, await _api_client(web, context))


async def _expect_text(locator: Any, text: str) -> None:
    await locator.filter(has_text=text).first.wait_for()


async def _make_org_and_category(user: User, *, qa_mode: bool = False) -> tuple[str, dict[str, Any]]:
    slug = _unique("br")
    r = await user.api.post("/api/v1/orgs", json={"slug": slug, "name": f"Org {slug}", "visibility": "public"})
    assert r.status_code == 201, r.text
    r = await user.api.post(
        f"/api/v1/o/{slug}/categories",
        json={"name": "General talk", "description": "Anything", "qa_mode": qa_mode},
    )
    assert r.status_code == 201, r.text
    return slug, r.json()["category"]


async def _thread_via_api(user: User, org: str, category: str, title: str, body: str) -> dict[str, Any]:
    r = await user.api.post(f"/api/v1/o/{org}/threads", json={"category": category, "title": title, "body": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["thread"])


async def _live(page: Any) -> None:
    await page.locator('[data-testid="live-status"][data-status="live"]').wait_for()


async def test_register_sign_in_create_thread_and_reply(web: Web, browser: Any) -> None:
    alice = await register_in_ui(web, browser)
    page = alice.page
    try:
        # Sign out and back in through the UI.
        await page.get_by_test_id("logout").click()
        await page.get_by_test_id("login-form").wait_for()
        await page.get_by_test_id("login-input").fill(alice.username)
        await page.get_by_test_id("password-input").fill(PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("me-username").filter(has_text=alice.username).wait_for()
        await alice.api.aclose()
        alice.api = await _api_client(web, alice.context)

        org, _ = await _make_org_and_category(alice, qa_mode=True)
        await page.reload()
        org_link = page.locator(f'[data-testid="org-item"][data-org-slug="{org}"] a')
        await org_link.click()
        await page.get_by_test_id("category-link").filter(has_text="General talk").wait_for()
        assert "0 threads" in await page.get_by_test_id("category-thread-count").inner_text()

        # New thread (at the top of the org page), with a server-rendered preview first.
        await page.get_by_test_id("new-thread-button").click()
        await page.get_by_test_id("new-thread-title").fill("How do I configure the widget?")
        await page.get_by_test_id("new-thread-body").fill("I tried **everything** in `config.yaml`.")
        await page.get_by_test_id("new-thread-body-preview").click()
        preview = page.get_by_test_id("new-thread-body-preview-html")
        await preview.locator("strong", has_text="everything").wait_for()
        await page.get_by_test_id("new-thread-body-preview").click()  # hide the preview
        await page.get_by_test_id("new-thread-submit").click()

        await page.get_by_test_id("thread-title").filter(has_text="How do I configure the widget?").wait_for()
        assert "/t/" in page.url
        first = page.get_by_test_id("post").first
        await first.get_by_test_id("post-html").locator("strong", has_text="everything").wait_for()
        await first.get_by_test_id("post-html").locator("code", has_text="config.yaml").wait_for()
        assert alice.username in await first.get_by_test_id("post-author").inner_text()

        # Reply through the composer.
        await page.get_by_test_id("reply-body").fill("Answering myself: set `widget: on`.")
        await page.get_by_test_id("reply-submit").click()
        await (
            page.get_by_test_id("post")
            .nth(1)
            .get_by_test_id("post-html")
            .locator("code", has_text="widget: on")
            .wait_for()
        )
        assert await page.get_by_test_id("post").count() == 2
        assert await page.get_by_test_id("reply-body").input_value() == ""

        # Reactions toggle, and the Q&A author can mark the solution.
        second = page.get_by_test_id("post").nth(1)
        await second.get_by_test_id("reaction-like").click()
        await second.locator('[data-testid="reaction-like"][aria-pressed="true"]').wait_for()
        assert await second.get_by_test_id("reaction-like-count").inner_text() == "1"
        await second.get_by_test_id("reaction-like").click()
        await second.locator('[data-testid="reaction-like"][aria-pressed="false"]').wait_for()
        assert await second.get_by_test_id("reaction-like-count").inner_text() == "0"
        await second.get_by_test_id("mark-solution").click()
        await second.get_by_test_id("solution-badge").wait_for()

        # The org page now lists the thread and its category count.
        await page.goto(f"{web.url}/#/o/{org}")
        await page.get_by_test_id("thread-link").filter(has_text="How do I configure the widget?").wait_for()
        assert "1 thread" in await page.get_by_test_id("category-thread-count").inner_text()
        await page.screenshot(path=str(SCREENSHOT_DIR / "forum_org.png"), full_page=True)
        await page.get_by_test_id("category-link").click()
        await page.get_by_test_id("category-title").filter(has_text="General talk").wait_for()
        await page.get_by_test_id("thread-link").filter(has_text="How do I configure the widget?").wait_for()
        assert page.errors == []
    finally:
        await alice.close()


async def test_live_reply_xss_agent_draft_and_moderation(
    web: Web, browser: Any, settings: Settings, servers: Servers
) -> None:
    alice = await register_in_ui(web, browser)
    bob = await register_in_ui(web, browser)
    redis = Redis.from_url(servers.redis_url)
    try:
        org, category = await _make_org_and_category(alice)
        r = await alice.api.post(f"/api/v1/orgs/{org}/members", json={"username": bob.username, "role": "member"})
        assert r.status_code in (200, 201), r.text
        thread = await _thread_via_api(alice, org, category["slug"], "Live thread", "First post, by alice.")
        thread_url = f"{web.url}/#/o/{org}/t/{thread['id']}"

        # Bob (another browser context) watches the thread; alice replies through the API.
        page = bob.page
        await page.goto(thread_url)
        await page.get_by_test_id("thread-title").filter(has_text="Live thread").wait_for()
        await _live(page)
        await page.evaluate("window.__noReload = 1")
        r = await alice.api.post(f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": "A *live* reply"})
        assert r.status_code == 201, r.text
        live_post_id = r.json()["post"]["id"]
        await page.get_by_test_id("post-html").locator("em", has_text="live").wait_for()
        assert await page.evaluate("window.__noReload") == 1, "the page reloaded"
        assert await page.get_by_test_id("post").count() == 2

        # XSS: raw HTML with an event handler and a javascript: link render inert.
        evil = '<img src=x onerror="window.__xss=1">\n\n[x](javascript:window.__xss=1)\n\nafter the bait'
        r = await alice.api.post(f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": evil})
        assert r.status_code == 201, r.text
        evil_post = page.get_by_test_id("post").filter(has_text="after the bait")
        await evil_post.wait_for()
        html = await evil_post.get_by_test_id("post-html").inner_html()
        assert "onerror" not in html and "javascript:" not in html, html
        link = evil_post.get_by_test_id("post-html").locator("a", has_text="x")
        if await link.count():
            await link.first.click()
            await asyncio.sleep(0.3)
        assert await page.evaluate("typeof window.__xss") == "undefined"
        assert await page.evaluate("window.__noReload") == 1
        assert await page.get_by_test_id("thread-title").is_visible(), "the link navigated away"

        # An agent writes: the draft streams in, then becomes the saved post with its badge.
        execution_id = str(uuid.uuid4())
        for delta in ["Hello ", "from the ", "agent."]:
            await publish_draft_delta(redis, org, thread["id"], execution_id, delta)
        draft = page.get_by_test_id("draft")
        await draft.get_by_test_id("draft-text").filter(has_text="Hello from the agent.").wait_for()
        draft_text = (await draft.inner_text()).lower()  # the tag is upper-cased by CSS
        assert "ai agent" in draft_text and "is writing" in draft_text

        streams = StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)
        ctx = SignalContext(actor_type="agent", actor_id="helper", source="job", correlation_id=str(uuid.uuid4()))
        async with tenant_work(redis, streams, org, ctx):
            post_id, _, created = await create_agent_post(
                thread_id=thread["id"],
                agent_handle="helper",
                body="Hello from the agent. See **the docs**.",
                idempotency_key=f"browser-test:{execution_id}",
                reply_to_post_id=None,
                confidence=0.87,
                model="claude-test",
                citations=[{"title": "Widget docs", "url": "https://example.com/docs", "thread_id": None}],
            )
        assert created
        await publish_draft_end(redis, org, thread["id"], execution_id, post_id)
        agent_post = page.locator(f'[data-testid="post"][data-post-id="{post_id}"]')
        await agent_post.get_by_test_id("agent-badge").wait_for()
        badge = (await agent_post.get_by_test_id("agent-badge").inner_text()).lower()
        assert "ai agent" in badge and "@helper" in badge and "claude-test" in badge and "87%" in badge
        await agent_post.get_by_test_id("post-html").locator("strong", has_text="the docs").wait_for()
        await agent_post.get_by_test_id("agent-citations").locator("a", has_text="Widget docs").wait_for()
        await draft.wait_for(state="detached")
        assert await page.locator(f'[data-testid="post"][data-post-id="{post_id}"]').count() == 1
        await agent_post.get_by_test_id("feedback-helpful").click()
        await agent_post.get_by_role("status").filter(has_text="Thanks for the feedback").wait_for()

        await page.screenshot(path=str(SCREENSHOT_DIR / "forum_thread.png"), full_page=True)

        # Moderation: alice (admin) watches the queue while bob flags her post from the thread page.
        await alice.page.goto(f"{web.url}/#/o/{org}/mod")
        await alice.page.get_by_test_id("mod-queue-empty").wait_for()
        await _live(alice.page)
        first_post = page.get_by_test_id("post").filter(has_text="A live reply")
        await first_post.get_by_test_id("flag-button").click()
        await first_post.get_by_test_id("flag-reason").select_option("spam")
        await first_post.get_by_test_id("flag-submit").click()
        await first_post.get_by_role("status").filter(has_text="moderator will review").wait_for()
        item = alice.page.locator(f'[data-testid="mod-queue-item"][data-post-id="{live_post_id}"]')
        await item.wait_for()
        await alice.page.screenshot(path=str(SCREENSHOT_DIR / "forum_moderation.png"), full_page=True)
        await item.get_by_test_id("resolve-dismiss").click()
        await alice.page.get_by_test_id("mod-queue-empty").wait_for()

        # The admin page lists the packages with their toggles; the metrics table is on its metrics tab.
        await alice.page.goto(f"{web.url}/#/o/{org}/agents")
        await alice.page.get_by_test_id("agent-item").first.wait_for()
        toggle = alice.page.get_by_test_id("agent-toggle").first
        await toggle.check()
        await alice.page.locator('[data-testid="agent-toggle"]:checked:not([disabled])').first.wait_for()
        assert "Enabled" in await alice.page.get_by_test_id("agent-item").first.inner_text()
        await alice.page.screenshot(path=str(SCREENSHOT_DIR / "forum_agents.png"), full_page=True)
        await alice.page.get_by_test_id("admin-tab-metrics").click()
        await alice.page.get_by_test_id("agent-metrics").wait_for()
        assert page.errors == [] and alice.page.errors == []
    finally:
        await redis.aclose()
        await alice.close()
        await bob.close()


async def test_summary_requested_notice_clears_when_the_tldr_arrives(web: Web, browser: Any, app: Any) -> None:
    from engine.agents.runner import run_directive

    alice = await register_in_ui(web, browser)
    try:
        org, category = await _make_org_and_category(alice)
        r = await alice.api.put(f"/api/v1/o/{org}/agents/forum_summary_agent", json={"enabled": True, "config": {}})
        assert r.status_code == 200, r.text
        thread = await _thread_via_api(alice, org, category["slug"], "Kettle choice", "Which kettle for 20 litres?")
        for body in ("A **40 litre** kettle leaves room for the boil.", "| kettle | litres |\n|---|---|\n| Big | 40 |"):
            r = await alice.api.post(f"/api/v1/o/{org}/threads/{thread['id']}/posts", json={"body": body})
            assert r.status_code == 201, r.text
        page = alice.page
        await page.goto(f"{web.url}/#/o/{org}/t/{thread['id']}")
        await page.get_by_test_id("thread-title").filter(has_text="Kettle choice").wait_for()
        await _live(page)
        await page.get_by_test_id("request-summary").click()
        notice = page.get_by_role("status").filter(has_text="Summary requested")
        await notice.wait_for()
        directive_id = (await alice.api.post(f"/api/v1/o/{org}/threads/{thread['id']}/summary")).json()["directive_id"]
        services = app.state.services  # the worker's job, run here: its signals reach the web process's sockets
        outcome = await run_directive(services.agents, services.redis, services.streams, org, directive_id)
        assert outcome.status == "succeeded", outcome.error
        tldr = page.get_by_test_id("post").filter(has_text="TL;DR")
        await tldr.wait_for()
        await notice.wait_for(state="detached")
        text = await tldr.get_by_test_id("post-html").inner_text()
        assert "|" not in text and "**" not in text and "40 litre kettle" in text
        assert page.errors == []
    finally:
        await alice.close()
