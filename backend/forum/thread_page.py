"""The canonical, shareable URL of a thread: `/o/{org}/t/{id}[/{slug}]` answers readable server-rendered
HTML (title, posts, meta description, canonical link) that crawlers and clients without JavaScript can
read, inside the app's own page so that in a browser the app takes over. Public orgs only: a private org
(or an unknown thread) is a 404, whoever asks (the app's hash routes serve members of private orgs).

It runs in the same unit of work as an API request, as an anonymous reader: the boundary authorizes the
org and sets the tenant; the forum service reads the thread (and records the view) as for the API.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from litestar import Request, Response, get
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery

from backend.boundary import unit_of_work
from backend.context import RequestContext, Services
from backend.forum import service
from backend.forum.schemas import PostOut, ThreadDetail
from backend.identity.service import hash_ip
from backend.middleware import Reject, authorize_org, correlation_id_from, request_headers

DESCRIPTION_CHARS = 160
_BLOCK_TAG_RE = re.compile(r"</?(?:p|br|li|ul|ol|h[1-6]|div|pre|blockquote|tr|td|th|table)\b[^>]*>", re.I)
_TAG_RE = re.compile(r"<[^>]+>")
_FALLBACK_SHELL = (
    '<!doctype html><html lang="en"><head><meta charset="UTF-8" />'
    '<meta name="viewport" content="width=device-width, initial-scale=1" /><title>FleetPrompt Forum</title>'
    '</head><body><div id="app"></div></body></html>'
)


@lru_cache(maxsize=4)
def _shell(dist: str, mtime: float) -> str:
    """The built index.html (its script and stylesheet tags), read once per build."""
    index = Path(dist) / "index.html"
    return index.read_text(encoding="utf-8") if mtime else _FALLBACK_SHELL


def app_shell(dist: str) -> str:
    index = Path(dist) / "index.html"
    try:
        mtime = index.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _shell(dist, mtime)


def plain_text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG_RE.sub("", _BLOCK_TAG_RE.sub(" ", fragment))).split())


def describe(detail: ThreadDetail) -> str:
    first = next((p for p in detail.posts if not p.is_hidden and not p.is_deleted), None)
    text = plain_text(first.html) if first else detail.thread.title
    return text if len(text) <= DESCRIPTION_CHARS else text[: DESCRIPTION_CHARS - 1].rstrip() + "…"


def _author(post: PostOut) -> str:
    if post.author_agent_id:
        return f'@{html.escape(post.author_agent_id)} <span class="tag">AI agent</span>'
    return html.escape(post.author.username) if post.author else "unknown"


def render_posts(posts: list[PostOut]) -> str:
    parts = []
    for post in posts:
        if post.is_deleted or post.is_hidden:
            body = '<p class="muted"><em>This post is not shown.</em></p>'
        else:
            body = post.html
        solution = ' <span class="pill ok">solution</span>' if post.is_solution else ""
        parts.append(
            f'<article class="post card" id="post-{html.escape(post.id)}" data-testid="ssr-post">'
            f'<header class="muted small-meta"><strong>{_author(post)}</strong> · '
            f'<time datetime="{post.created_at.isoformat()}">{post.created_at:%Y-%m-%d %H:%M} UTC</time>{solution}'
            f'</header><div class="prose">{body}</div></article>'
        )
    return "\n".join(parts)


def render_page(shell: str, org: str, detail: ThreadDetail, canonical: str, next_url: str | None) -> str:
    thread = detail.thread
    title = html.escape(thread.title)
    description = html.escape(describe(detail), quote=True)
    head = (
        f"<title>{title} · {html.escape(org)} · FleetPrompt Forum</title>\n"
        f'<meta name="description" content="{description}" />\n'
        f'<link rel="canonical" href="{html.escape(canonical, quote=True)}" />\n'
        f'<meta property="og:title" content="{title}" />\n'
        f'<meta property="og:description" content="{description}" />\n'
        '<meta property="og:type" content="article" />\n'
        f'<meta property="og:url" content="{html.escape(canonical, quote=True)}" />'
    )
    more = (
        f'<p class="center"><a rel="next" href="{html.escape(next_url, quote=True)}">Next page</a></p>'
        if next_url
        else ""
    )
    solved = ' <span class="pill ok">solved</span>' if thread.is_solved else ""
    o, c = html.escape(org), html.escape(thread.category_slug)
    body = (
        '<main id="ssr" class="container">'
        f'<nav class="crumbs muted"><a href="/#/o/{o}">{o}</a> &rsaquo; <a href="/#/o/{o}/c/{c}">{c}</a></nav>'
        f'<h1 data-testid="ssr-title">{title}{solved}</h1>'
        f'<p class="muted">{thread.reply_count} {"reply" if thread.reply_count == 1 else "replies"}</p>'
        f"{render_posts(detail.posts)}{more}</main>"
    )
    page = re.sub(r'\s*<meta name="description"[^>]*>', "", shell)  # the shell's generic one
    page = re.sub(r"<title>.*?</title>", lambda _: head, page, count=1, flags=re.S)
    return page.replace('<div id="app"></div>', '<div id="app"></div>' + body, 1)


@get(["/o/{org:str}/t/{ref:str}", "/o/{org:str}/t/{ref:str}/{slug:str}"], include_in_schema=False)
async def thread_page(
    request: Request, org: FromPath[str], ref: FromPath[str], cursor: FromQuery[str | None] = None
) -> Response[str]:
    """A thread as server-rendered HTML (public orgs; 404 otherwise)."""
    services: Services = request.app.state.services
    headers = request_headers(request.scope)
    client = request.client.host if request.client else "unknown"
    ctx = RequestContext(
        services=services,
        principal=None,  # what anyone may read: the page is the same for crawlers and people
        ip_hash=hash_ip(services.settings.secret_key, client),
        correlation_id=correlation_id_from(headers),
    )

    async def prepare(c: RequestContext) -> None:
        await authorize_org(c, org)

    shell = app_shell(services.settings.frontend_dist)
    try:
        async with unit_of_work(ctx, prepare=prepare):
            detail = await service.get_thread(ctx, ref, cursor=cursor, limit=None)
    except Reject as rejection:
        return _error_page(shell, rejection.status)
    except HTTPException as exc:
        return _error_page(shell, exc.status_code)
    base = str(request.base_url).rstrip("/")
    path = f"/o/{quote(org)}/t/{detail.thread.id}/{quote(detail.thread.slug)}"
    next_url = f"{path}?cursor={quote(detail.next_cursor)}" if detail.next_cursor else None
    canonical = base + path + (f"?cursor={quote(cursor)}" if cursor else "")
    return Response(render_page(shell, org, detail, canonical, next_url), media_type="text/html; charset=utf-8")


def _error_page(shell: str, status: int) -> Response[str]:
    """A readable page for a missing (or private) thread; the app still loads and shows its own message."""
    text = "This thread does not exist, or it is not public." if status == 404 else "This page could not be shown."
    body = f'<main id="ssr" class="container"><h1>Not found</h1><p>{text}</p><p><a href="/">Home</a></p></main>'
    page = shell.replace('<div id="app"></div>', '<div id="app"></div>' + body, 1)
    page = re.sub(r"<title>.*?</title>", "<title>Not found · FleetPrompt Forum</title>", page, count=1, flags=re.S)
    return Response(page, status_code=404 if status in (400, 404) else status, media_type="text/html; charset=utf-8")
