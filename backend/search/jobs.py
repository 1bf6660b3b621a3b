"""Background upkeep of the related-thread index, per org (run by the worker, and by importers' callers
that need it at once): thread embeddings for threads that have none (or whose opening post changed), and
term statistics when they are older than STATS_MAX_AGE_S. Bounded work per call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from backend.search import embedding
from backend.search.related import refresh_term_stats
from engine import db
from engine.migrator import tenant_schemas
from engine.tenancy import SCHEMA_PREFIX, Tenant, tenant_scope

log = logging.getLogger("forum.search.jobs")

EMBED_BATCH = 32  # threads embedded per transaction
PASS_BUDGET = 16  # threads embedded per upkeep pass over all orgs (bounds the worker's background CPU)
BACKGROUND_NICE = 10  # the upkeep's encoder thread yields the CPU to request and agent work
STATS_MAX_AGE_S = 600.0
_TAG = re.compile(r"<[^>]*>")

_MISSING_SQL = """
SELECT t.id, t.title, f.content_markdown, greatest(f.updated_at, t.updated_at) AS source_updated_at
FROM thread t
JOIN LATERAL (SELECT p.content_markdown, p.updated_at FROM post p WHERE p.thread_id = t.id
              ORDER BY p.created_at, p.id LIMIT 1) f ON true
LEFT JOIN thread_embedding e ON e.thread_id = t.id
WHERE e.thread_id IS NULL OR e.model <> $1 OR e.source_updated_at < greatest(f.updated_at, t.updated_at)
ORDER BY t.created_at DESC
LIMIT $2
"""


def thread_text(title: str, opening: str) -> str:
    """What a thread's embedding is made from: its title and the start of its opening post, as text."""
    return title + "\n" + " ".join(_TAG.sub(" ", opening or "").split())


_background: concurrent.futures.ThreadPoolExecutor | None = None
_next_start = 0  # where the next upkeep pass starts in the list of orgs


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)  # Linux: per thread
    except (AttributeError, OSError):
        pass


def background_executor() -> concurrent.futures.ThreadPoolExecutor:
    """One low-priority thread for the upkeep's encoding (not the loop's default executor, which
    serves request-time work such as encoding a draft)."""
    global _background
    if _background is None:
        _background = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="related-upkeep", initializer=_lower_priority
        )
    return _background


async def embed_missing_threads(limit: int = EMBED_BATCH, *, background: bool = True) -> int:
    """Embed up to `limit` threads of the current tenant that need it; returns how many (0 when no
    model is installed). `background`: on the low-priority upkeep thread (else the loop's default one)."""
    model = embedding.model()
    if model is None:
        return 0
    rows: list[Any] = await db.fetch(_MISSING_SQL, embedding.MODEL_NAME, limit)
    if not rows:
        return 0
    texts = [thread_text(r["title"], r["content_markdown"]) for r in rows]
    executor = background_executor() if background else None
    vectors = await asyncio.get_running_loop().run_in_executor(executor, model.encode, texts)
    await db.current_connection().executemany(
        "INSERT INTO thread_embedding (thread_id, model, vector, source_updated_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (thread_id) DO UPDATE SET model = EXCLUDED.model, vector = EXCLUDED.vector,"
        " source_updated_at = EXCLUDED.source_updated_at, created_at = now()",
        [
            (r["id"], embedding.MODEL_NAME, embedding.to_bytes(v), r["source_updated_at"])
            for r, v in zip(rows, vectors, strict=True)
        ],
    )
    return len(rows)


async def stats_are_stale(max_age_s: float = STATS_MAX_AGE_S) -> bool:
    return bool(
        await db.fetchval(
            "SELECT refreshed_at IS NULL OR refreshed_at < now() - make_interval(secs => $1) FROM search_stats",
            max_age_s,
        )
    )


async def maintain_related_index(slugs: Sequence[str] | None = None) -> dict[str, int]:
    """One pass over every org (or those named): a batch of embeddings each, stale statistics refreshed.
    Returns the number of threads embedded per org (orgs with nothing to do are left out)."""
    global _next_start
    if slugs is None:
        async with db.pool().acquire() as conn:
            slugs = [schema.removeprefix(SCHEMA_PREFIX) for schema in await tenant_schemas(conn)]
        # round robin: each pass starts after the org where the last one's budget ran out, so one org's
        # large backlog (a big import) cannot starve the others
        start = _next_start % len(slugs) if slugs else 0
        slugs = slugs[start:] + slugs[:start]
    done: dict[str, int] = {}
    budget = PASS_BUDGET
    for index, slug in enumerate(slugs):
        try:
            async with db.transaction():
                async with tenant_scope(db.current_connection(), Tenant(slug=slug), restore=False):
                    embedded = await embed_missing_threads(min(budget, EMBED_BATCH)) if budget > 0 else 0
                    budget -= embedded
                    if await stats_are_stale():
                        await refresh_term_stats()
        except Exception as exc:  # a tenant dropped or mid-migration: next pass
            log.warning("related index upkeep: %s skipped (%s)", slug, type(exc).__name__)
            continue
        if embedded:
            done[slug] = embedded
        if budget <= 0:
            _next_start += index + 1
            break
    return done


async def embed_all_threads() -> int:
    """Embed every thread of the current tenant that needs it (benchmarks, tests)."""
    total = 0
    while n := await embed_missing_threads(background=False):
        total += n
    return total
