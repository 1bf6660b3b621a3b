"""A small migration runner over versioned SQL, per schema.

Piccolo's migration bookkeeping cannot tell tenant schemas apart (STACK_NOTES), so each schema keeps
its own `schema_migrations` table and every tenant schema receives the same ordered list of files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import asyncpg

from engine.tenancy import SCHEMA_PREFIX, quote_schema

Scope = Literal["public", "tenant"]
_LOCK_KEY = 7_130_431_001  # pg_advisory_xact_lock key shared by every migrator


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    scope: Scope
    sql: str


def load_migrations(package: str, scope: Scope, prefix: str) -> list[Migration]:
    """Every `*.sql` file in `package`/`scope`, sorted by file name, named `<prefix>.<stem>`."""
    folder = resources.files(package).joinpath(scope)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f"{prefix}.{f.name[:-4]}", scope, f.read_text("utf-8")) for f in files]


def engine_migrations() -> list[Migration]:
    return load_migrations("engine.migrations", "tenant", "engine")


async def migrate_schema(conn: asyncpg.Connection, schema: str, migrations: Sequence[Migration]) -> list[str]:
    """Bring one schema to the latest version inside the caller's transaction; return what ran."""
    if not conn.is_in_transaction():
        raise RuntimeError("migrate_schema needs an open transaction")
    scope: Scope = "public" if schema == "public" else "tenant"
    quoted = quote_schema(schema)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    search_path = "public" if scope == "public" else f"{quoted}, public"
    await conn.execute(f"SET LOCAL search_path TO {search_path}")
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
        " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {r["name"] for r in await conn.fetch(f"SELECT name FROM {quoted}.schema_migrations")}
    ran: list[str] = []
    for migration in migrations:
        if migration.scope != scope or migration.name in applied:
            continue
        await conn.execute(migration.sql)
        await conn.execute(f"INSERT INTO {quoted}.schema_migrations (name) VALUES ($1)", migration.name)
        ran.append(migration.name)
    await conn.execute("SET LOCAL search_path TO public")
    return ran


async def tenant_schemas(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1 ORDER BY nspname",
        SCHEMA_PREFIX.replace("_", "\\_") + "%",
    )
    return [r["nspname"] for r in rows]


async def migrate_all(
    pool: asyncpg.Pool,
    migrations: Iterable[Migration],
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, list[str]]:
    """Migrate `public`, then every tenant schema, each in its own transaction."""
    ordered = list(migrations)
    report: dict[str, list[str]] = {}
    async with pool.acquire() as conn:
        async with conn.transaction():
            report["public"] = await migrate_schema(conn, "public", ordered)
        progress(f"public: {len(report['public'])} migration(s) applied")
        schemas = await tenant_schemas(conn)
        for index, schema in enumerate(schemas, start=1):
            async with conn.transaction():
                report[schema] = await migrate_schema(conn, schema, ordered)
            progress(f"[{index}/{len(schemas)}] {schema}: {len(report[schema])} migration(s) applied")
    return report
