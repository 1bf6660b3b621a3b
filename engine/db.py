"""Database setup: one Piccolo PostgresEngine (asyncpg pool) shared by Piccolo tables and raw SQL.

Every Piccolo table of the project is declared with `db=DB`. `connect` configures it at startup; no
connection is made at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction


class ForumEngine(PostgresEngine):
    """Piccolo's engine, minus the connection its constructor makes to check the server version
    (an import-time side effect that would reach whatever server `config` defaults to)."""

    async def check_version(self) -> None:
        return None

    async def prep_database(self) -> None:
        return None


DB = ForumEngine(config={})


async def connect(dsn: str, *, min_size: int = 2, max_size: int = 10) -> PostgresEngine:
    """Start the pool (min and max together: asyncpg's default min is 10)."""
    DB.config = {"dsn": dsn}
    if DB.pool is None:
        await DB.start_connection_pool(min_size=min_size, max_size=max_size)
    return DB


async def disconnect() -> None:
    if DB.pool is not None:
        await DB.close_connection_pool()


async def expire_connections() -> None:
    """After the server went away: replace every pooled connection on its next use (best effort), so a
    restarted server is not met with one stale connection per pool slot."""
    if DB.pool is not None:
        try:
            await DB.pool.expire_connections()
        except Exception:
            return


def pool() -> asyncpg.Pool:
    if DB.pool is None:
        raise RuntimeError("database pool not started: call engine.db.connect first")
    return DB.pool


@asynccontextmanager
async def transaction() -> AsyncIterator[PostgresTransaction]:
    """Open a transaction that Piccolo queries in this task join automatically."""
    async with DB.transaction() as txn:
        yield txn


def current_connection() -> asyncpg.Connection:
    """The connection of the transaction open in this task (fails closed when there is none)."""
    txn = DB.current_transaction.get()
    if txn is None:
        raise RuntimeError("no open transaction: the request or job boundary must open one")
    conn: asyncpg.Connection = txn.connection
    return conn


def in_transaction() -> bool:
    return DB.current_transaction.get() is not None


async def fetch(sql: str, *args: Any) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await current_connection().fetch(sql, *args)
    return rows


async def fetchrow(sql: str, *args: Any) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await current_connection().fetchrow(sql, *args)
    return row


async def fetchval(sql: str, *args: Any) -> Any:
    return await current_connection().fetchval(sql, *args)


async def execute(sql: str, *args: Any) -> str:
    status: str = await current_connection().execute(sql, *args)
    return status
