"""The replies benchmark's baseline: a bare Litestar app whose one endpoint INSERTs one row with asyncpg
into a table shaped like `post` (same columns that matter, generated tsvector, GIN and thread index).
No auth, tenancy, rendering, sanitizing, rate limits, outbox or publish: the floor our stack adds to.

`python -m bench.baseline_app --port P` with BENCH_DATABASE_URL set; served with the same uvicorn
settings as `forum web`.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

import asyncpg
import msgspec
import uvicorn
from litestar import Litestar, Request, get, post

from backend.settings import Settings
from engine.ids import uuid7

SCHEMA_DDL = """
CREATE SCHEMA IF NOT EXISTS bench_baseline;
CREATE TABLE IF NOT EXISTS bench_baseline.reply (
    id               uuid PRIMARY KEY,
    thread_id        uuid NOT NULL,
    author_user_id   uuid NOT NULL,
    role             text NOT NULL DEFAULT 'human',
    content_markdown text NOT NULL,
    content_html     text NOT NULL,
    is_deleted       boolean NOT NULL DEFAULT false,
    is_hidden        boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    search           tsvector GENERATED ALWAYS AS (to_tsvector('english', content_markdown)) STORED
);
CREATE INDEX IF NOT EXISTS reply_thread ON bench_baseline.reply (thread_id, created_at, id);
CREATE INDEX IF NOT EXISTS reply_search ON bench_baseline.reply USING gin (search);
"""
AUTHOR = uuid.UUID(int=1)


class ReplyIn(msgspec.Struct, forbid_unknown_fields=True):
    thread_id: uuid.UUID
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=50_000)]


class ReplyOut(msgspec.Struct):
    id: str
    thread_id: str
    created_at: datetime


def create_baseline_app(database_url: str, settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA_DDL)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @post("/replies")
    async def create_reply(request: Request, data: ReplyIn) -> ReplyOut:
        pool: asyncpg.Pool = request.app.state.pool
        created_at = await pool.fetchval(
            "INSERT INTO bench_baseline.reply (id, thread_id, author_user_id, content_markdown, content_html)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
            reply_id := uuid7(),
            data.thread_id,
            AUTHOR,
            data.body,
            data.body,
        )
        return ReplyOut(id=str(reply_id), thread_id=str(data.thread_id), created_at=created_at)

    return Litestar(route_handlers=[healthz, create_reply], lifespan=[lifespan], debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    app = create_baseline_app(os.environ["BENCH_DATABASE_URL"], settings)
    # The same uvicorn settings as `forum web` (backend/cli.py cmd_web).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        access_log=False,
    )


if __name__ == "__main__":
    main()
