"""Forum routes (API.md, everything under /api/v1/o/{org}). Thin: parse, call the service, shape."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.abuse.schemas import ForumSettings
from backend.abuse.service import load_forum_settings, save_forum_settings
from backend.context import Ctx
from backend.errors import NotFound
from backend.forum import queries, service
from backend.forum.schemas import (
    CategoryEnvelope,
    CategoryIn,
    CategoryList,
    EditIn,
    PostEnvelope,
    PreviewIn,
    PreviewOut,
    ReactionIn,
    ReactionOut,
    ReplyIn,
    SolveIn,
    ThreadCreatedOut,
    ThreadDetail,
    ThreadIn,
    ThreadOut,
    ThreadPage,
)
from backend.idempotency import IDEMPOTENT

REACTIONS = ("like", "upvote", "downvote", "laugh")


class ForumController(Controller):
    path = "/api/v1/o/{org:str}"
    tags = ["forum"]

    @get("/categories")
    async def list_categories(self, ctx: Ctx, org: FromPath[str]) -> CategoryList:
        """Categories with thread counts and latest activity."""
        return CategoryList(categories=await queries.list_categories(ctx))

    @post("/categories", status_code=HTTP_201_CREATED)
    async def create_category(self, ctx: Ctx, org: FromPath[str], data: JSONBody[CategoryIn]) -> CategoryEnvelope:
        """Create a category (admin)."""
        return CategoryEnvelope(category=await service.create_category(ctx, data))

    @get("/categories/{slug:str}/threads")
    async def category_threads(
        self,
        ctx: Ctx,
        org: FromPath[str],
        slug: FromPath[str],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> ThreadPage:
        """Threads of one category, newest activity first (cursor pagination)."""
        return await queries.list_threads(ctx, category_slug=slug, cursor=cursor, limit=limit)

    @get("/threads")
    async def latest_threads(
        self,
        ctx: Ctx,
        org: FromPath[str],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> ThreadPage:
        """Latest threads across categories (cursor pagination)."""
        return await queries.list_threads(ctx, category_slug=None, cursor=cursor, limit=limit)

    @post("/threads", status_code=HTTP_201_CREATED, opt=IDEMPOTENT)
    async def create_thread(self, ctx: Ctx, org: FromPath[str], data: JSONBody[ThreadIn]) -> ThreadCreatedOut:
        """Start a thread; `body` is markdown."""
        thread, first = await service.create_thread(ctx, data)
        return ThreadCreatedOut(thread=thread, post=first)

    @get("/threads/{ref:str}")
    async def get_thread(
        self,
        ctx: Ctx,
        org: FromPath[str],
        ref: FromPath[str],
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> ThreadDetail:
        """A thread (by id or slug) with its posts, oldest first (cursor pagination)."""
        return await service.get_thread(ctx, ref, cursor=cursor, limit=limit)

    @post("/threads/{ref:str}/posts", status_code=HTTP_201_CREATED, opt=IDEMPOTENT)
    async def reply(self, ctx: Ctx, org: FromPath[str], ref: FromPath[str], data: JSONBody[ReplyIn]) -> PostEnvelope:
        """Reply in a thread."""
        return PostEnvelope(post=await service.create_reply(ctx, ref, data.body, data.reply_to_post_id))

    @post("/threads/{ref:str}/solve", status_code=HTTP_200_OK)
    async def solve(self, ctx: Ctx, org: FromPath[str], ref: FromPath[str], data: JSONBody[SolveIn]) -> ThreadOut:
        """Mark a reply as the solution (thread author or moderator, Q&A categories)."""
        return await service.solve_thread(ctx, ref, data.post_id)

    @get("/posts/{post_id:str}")
    async def get_post(self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str]) -> PostEnvelope:
        return PostEnvelope(post=await queries.get_post(ctx, post_id))

    @patch("/posts/{post_id:str}")
    async def edit_post(
        self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str], data: JSONBody[EditIn]
    ) -> PostEnvelope:
        """Edit a post (author or moderator); the previous version is kept in its history."""
        return PostEnvelope(post=await service.edit_post(ctx, post_id, data.body, data.edit_reason))

    @get("/posts/{post_id:str}/history")
    async def post_history(self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str]) -> dict[str, Any]:
        return {"revisions": await service.post_history(ctx, post_id)}

    @delete("/posts/{post_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_post(self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str]) -> None:
        """Soft-delete a post (author or moderator)."""
        await service.delete_post(ctx, post_id)

    @post("/posts/{post_id:str}/reactions", status_code=HTTP_200_OK, opt=IDEMPOTENT)
    async def add_reaction(
        self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str], data: JSONBody[ReactionIn]
    ) -> ReactionOut:
        """React; reacting twice is a no-op."""
        count, mine = await service.react(ctx, post_id, data.type, add=True)
        return ReactionOut(post_id=post_id, type=data.type, count=count, mine=mine)

    @delete("/posts/{post_id:str}/reactions/{reaction:str}", status_code=HTTP_200_OK)
    async def remove_reaction(
        self, ctx: Ctx, org: FromPath[str], post_id: FromPath[str], reaction: FromPath[str]
    ) -> ReactionOut:
        if reaction not in REACTIONS:
            raise NotFound(f"unknown reaction type {reaction!r}")
        count, mine = await service.react(ctx, post_id, reaction, add=False)
        return ReactionOut(post_id=post_id, type=reaction, count=count, mine=mine)

    @post("/preview", status_code=HTTP_200_OK, opt={"reads_only": True})
    async def preview(self, ctx: Ctx, org: FromPath[str], data: JSONBody[PreviewIn]) -> PreviewOut:
        """Exactly the HTML a post with this body would render to."""
        ctx.require_user()
        return PreviewOut(html=await service.preview(data.body))

    @get("/settings")
    async def get_settings(self, ctx: Ctx, org: FromPath[str]) -> ForumSettings:
        """The org's forum settings (posting limits). Admin."""
        ctx.require_role("admin")
        return await load_forum_settings()

    @put("/settings")
    async def put_settings(
        self, ctx: Ctx, org: FromPath[str], data: JSONBody[ForumSettings]
    ) -> Response[ForumSettings]:
        """Replace the org's forum settings. Admin."""
        return Response(await save_forum_settings(ctx, data))
