"""Full-text search over an org's posts (runs inside the request's tenant scope).

A post matches when its body or its thread's title matches `websearch_to_tsquery('english', q)`; both
tsvector columns are generated columns with GIN indexes (migration tenant/0001_forum.sql). The two
index scans are unioned (an OR across the join could use neither index). Hits are ranked with
`ts_rank_cd` over the title (weight A) followed by the body (weight D), so a title match outranks a
body mention, and paged by (rank, post id), which is unique, so ties never repeat or skip a hit.
`ts_headline` runs only for the returned page; its markers are private-use characters that are
removed from the text first, and the snippet is HTML-escaped before they become <mark> tags.
"""

from __future__ import annotations

import html
import math
from typing import Any

from backend.context import RequestContext
from backend.errors import Invalid, NotFound
from backend.forum.schemas import AuthorOut
from backend.pagination import decode_cursor, encode_cursor, parse_uuid
from backend.search.related import MAX_K, related_threads
from backend.search.schemas import RelatedIn, RelatedPage, SearchHit, SearchPage
from engine import db

MAX_QUERY_CHARS = 200
DEFAULT_PAGE = 20
MAX_PAGE = 50
MARK_START = "\ue000"  # private-use characters: stripped from the text before ts_headline
MARK_STOP = "\ue001"
HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_STOP}, MaxWords=35, MinWords=12, ShortWord=3,"
    " MaxFragments=2, FragmentDelimiter=' … '"
)


def search_sql(*, by_category: bool, after: bool) -> str:
    """The one search statement. Parameters: $1 query text, $2 page size + 1, $3 headline options,
    then the category id when `by_category`, then (rank, post id) of the cursor when `after`.
    Exposed so the benchmark can run exactly this SQL without the HTTP stack."""
    n = 3
    category_filter = cursor_filter = ""
    if by_category:
        n += 1
        category_filter = f" AND t.category_id = ${n}"
    if after:
        cursor_filter = f" WHERE (rank, id) < (${n + 1}::float8, ${n + 2}::uuid)"
    return f"""
WITH query AS (SELECT websearch_to_tsquery('english', $1) AS tsq),
matched AS (
    SELECT p.id FROM post p, query WHERE p.search @@ query.tsq
    UNION
    SELECT p.id FROM thread t JOIN post p ON p.thread_id = t.id, query WHERE t.search @@ query.tsq
),
ranked AS (
    SELECT p.id, p.thread_id, p.author_user_id, p.created_at, t.title AS thread_title,
           t.slug AS thread_slug, t.category_id,
           ts_rank_cd(setweight(t.search, 'A') || setweight(p.search, 'D'), query.tsq)::float8 AS rank
    FROM matched JOIN post p ON p.id = matched.id JOIN thread t ON t.id = p.thread_id, query
    WHERE NOT p.is_deleted AND NOT p.is_hidden{category_filter}
),
page AS (
    SELECT * FROM ranked{cursor_filter} ORDER BY rank DESC, id DESC LIMIT $2
)
SELECT page.*, c.slug AS category_slug, u.username AS author_username,
       CASE WHEN row_number() OVER (ORDER BY page.rank DESC, page.id DESC) < $2 THEN
           ts_headline('english', translate(p.content_markdown, '{MARK_START}{MARK_STOP}', ''),
                       query.tsq, $3)
       END AS headline
FROM page JOIN post p ON p.id = page.id JOIN category c ON c.id = page.category_id
     LEFT JOIN users u ON u.id = page.author_user_id, query
ORDER BY page.rank DESC, page.id DESC
"""


def snippet_html(headline: str) -> str:
    """Escape the headline text, then turn its markers into <mark> tags: no user HTML survives."""
    text = html.escape(" ".join(headline.split()), quote=True)
    return text.replace(MARK_START, "<mark>").replace(MARK_STOP, "</mark>")


def _query_text(q: str | None) -> str:
    text = (q or "").strip()
    if not text:
        raise Invalid("q must not be blank", field="q")
    if len(text) > MAX_QUERY_CHARS:
        raise Invalid(f"q is limited to {MAX_QUERY_CHARS} characters", field="q")
    if "\x00" in text:
        raise Invalid("q must not contain NUL characters", field="q")
    return text


def _page_size(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def _after(cursor: str) -> tuple[float, Any]:
    rank_text, post_id = decode_cursor(cursor, 2)
    try:
        rank = float(rank_text)
    except ValueError:
        raise Invalid("invalid cursor", field="cursor") from None
    if not math.isfinite(rank):
        raise Invalid("invalid cursor", field="cursor")
    try:
        return rank, parse_uuid(post_id, "cursor")
    except NotFound:
        raise Invalid("invalid cursor", field="cursor") from None


def _hit(row: Any) -> SearchHit:
    author = (
        AuthorOut(id=str(row["author_user_id"]), username=row["author_username"])
        if row["author_user_id"] is not None
        else None
    )
    return SearchHit(
        post_id=str(row["id"]),
        thread_id=str(row["thread_id"]),
        thread_title=row["thread_title"],
        thread_slug=row["thread_slug"],
        category_slug=row["category_slug"],
        author=author,
        snippet_html=snippet_html(row["headline"] or ""),
        rank=row["rank"],
        created_at=row["created_at"],
    )


async def search_posts(
    ctx: RequestContext,
    q: str | None,
    *,
    category_slug: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> SearchPage:
    """Visible posts (not deleted, not hidden) of the org matching `q`, best first."""
    ctx.require_org()
    text = _query_text(q)
    page = _page_size(limit)
    args: list[Any] = [text, page + 1, HEADLINE_OPTIONS]
    if category_slug is not None:
        category_id = await db.fetchval("SELECT id FROM category WHERE slug = $1", category_slug)
        if category_id is None:
            raise NotFound("category not found")
        args.append(category_id)
    if cursor:
        args.extend(_after(cursor))
    rows = await db.fetch(search_sql(by_category=category_slug is not None, after=bool(cursor)), *args)
    more = len(rows) > page
    rows = rows[:page]
    next_cursor = encode_cursor(repr(rows[-1]["rank"]), rows[-1]["id"]) if more else None
    return SearchPage(hits=[_hit(r) for r in rows], next_cursor=next_cursor)


MAX_RELATED_TITLE = 300
MAX_RELATED_BODY = 20_000


async def related_to_draft(ctx: RequestContext, data: RelatedIn) -> RelatedPage:
    """Compose time: the visible earlier threads most related to a draft's title and body."""
    ctx.require_org()
    title, body = data.title.strip(), data.body.strip()
    if len(title) > MAX_RELATED_TITLE:
        raise Invalid(f"title is limited to {MAX_RELATED_TITLE} characters", field="title")
    if len(body) > MAX_RELATED_BODY:
        raise Invalid(f"body is limited to {MAX_RELATED_BODY} characters", field="body")
    if "\x00" in title or "\x00" in body:
        raise Invalid("title and body must not contain NUL characters")
    if not 1 <= data.k <= MAX_K:
        raise Invalid(f"k must be between 1 and {MAX_K}", field="k")
    prefer = None
    if data.category is not None:
        prefer = await db.fetchval("SELECT id FROM category WHERE slug = $1", data.category)
        if prefer is None:
            raise NotFound("category not found")
    if len(title) + len(body) < 3:
        return RelatedPage(threads=[])
    threads = await related_threads(
        body,
        data.k,
        title=title,
        visible_to=ctx.principal.user_id if ctx.principal else None,
        prefer_category_id=str(prefer) if prefer else None,
    )
    return RelatedPage(threads=threads)
