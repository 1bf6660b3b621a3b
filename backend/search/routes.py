"""Search route (API.md: GET /api/v1/o/{org}/search). Thin: parse, call the service."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from backend.context import Ctx
from backend.search import service
from backend.search.schemas import RelatedIn, RelatedPage, SearchPage


class SearchController(Controller):
    path = "/api/v1/o/{org:str}"
    tags = ["search"]

    @get("/search")
    async def search(
        self,
        ctx: Ctx,
        org: FromPath[str],
        q: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> SearchPage:
        """Full-text search over the org's visible posts (websearch syntax: "phrase", -word, OR).
        Matches a post's body or its thread's title; title matches rank higher. Ranked hits with
        highlighted snippets, cursor pagination; `category` filters by category slug."""
        return await service.search_posts(ctx, q, category_slug=category, cursor=cursor, limit=limit)

    @post("/related", status_code=200, opt={"reads_only": True})
    async def related(self, ctx: Ctx, org: FromPath[str], data: JSONBody[RelatedIn]) -> RelatedPage:
        """Compose time: earlier threads the caller may open that may already answer the thread being
        written (`title`, `body`; `k` 1-50, default 5; `category` slug favours that category). Ranked by
        text relevance over titles, opening posts and replies, then accepted answers, reactions, recency."""
        return await service.related_to_draft(ctx, data)
