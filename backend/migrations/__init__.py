"""The ordered list of every migration the project applies: public first, then tenant schemas
(the engine's tables, then the forum's)."""

from __future__ import annotations

from functools import cache

from engine.migrator import Migration, engine_migrations, load_migrations


@cache
def all_migrations() -> tuple[Migration, ...]:
    return (
        *load_migrations("backend.migrations", "public", "backend"),
        *engine_migrations(),
        *load_migrations("backend.migrations", "tenant", "backend"),
    )
