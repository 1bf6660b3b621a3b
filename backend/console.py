"""Running services from the command line: the same services and unit of work as HTTP requests,
with the operator acting as a named user."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from redis.asyncio import Redis

from backend.boundary import unit_of_work
from backend.context import OrgRef, Principal, RequestContext, Role, Services
from backend.migrations import all_migrations
from backend.settings import Settings
from engine import db
from engine.migrator import migrate_all
from engine.relay import StreamConfig


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Services]:
    database_url, redis_url = settings.require_urls()
    await db.connect(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(redis_url)
    try:
        yield Services(
            settings=settings,
            redis=redis,
            streams=StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen),
        )
    finally:
        await redis.aclose()
        await db.disconnect()


async def migrate(settings: Settings, progress: object = print) -> dict[str, list[str]]:
    database_url, _ = settings.require_urls()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        return await migrate_all(pool, all_migrations(), progress)  # type: ignore[arg-type]
    finally:
        await pool.close()


def operator_context(
    services: Services, principal: Principal | None, org: OrgRef | None = None, role: Role | None = None
) -> RequestContext:
    return RequestContext(
        services=services,
        principal=principal,
        ip_hash="cli",
        correlation_id=str(uuid.uuid4()),
        org=org,
        role=role,
        can_write=True,
    )


async def principal_named(username: str) -> Principal | None:
    async with db.transaction():
        row = await db.fetchrow("SELECT id, username FROM users WHERE lower(username) = lower($1)", username)
    if row is None:
        return None
    return Principal(user_id=str(row["id"]), username=row["username"], via="session")


@asynccontextmanager
async def as_operator(
    services: Services, principal: Principal | None, org: OrgRef | None = None, role: Role | None = None
) -> AsyncIterator[RequestContext]:
    ctx = operator_context(services, principal, org, role)
    async with unit_of_work(ctx, source="job"):
        yield ctx
