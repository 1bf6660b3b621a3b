"""Run an import: batches of threads, each in its own unit of work (one transaction, signals with source
"import" published after its commit), then duplicates and the search statistics. Interrupting it
(Ctrl-C) loses at most the batch in flight; running it again resumes (see service.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from backend.boundary import unit_of_work
from backend.console import operator_context, principal_named
from backend.context import OrgRef, Principal, Services
from backend.importers import service
from backend.importers.progress import ProgressBar
from backend.importers.schemas import ImportSource, SourceThread, SourceUser
from backend.orgs.service import find_org
from backend.search.related import refresh_term_stats
from engine import db

BATCH = 50


class ImportRefused(ValueError):
    """The import cannot start (unknown org, no admin to act as)."""


@dataclass(slots=True)
class ImportResult:
    counts: service.ImportCounts
    seconds: float


async def org_and_admin(org_slug: str, admin_username: str | None) -> tuple[OrgRef, Principal]:
    """The org and the admin the import acts as (the named one, or the org's first admin)."""
    async with db.transaction():
        org = await find_org(org_slug)
        if org is None:
            raise ImportRefused(f"no org {org_slug!r}: create one with `forum org create`")
        name = await db.fetchval(
            "SELECT u.username FROM memberships m JOIN users u ON u.id = m.user_id"
            " WHERE m.org_id = $1::uuid AND m.role = 'admin' AND ($2::text IS NULL OR lower(u.username) = lower($2))"
            " ORDER BY m.created_at LIMIT 1",
            org.id,
            admin_username,
        )
    if name is None:
        raise ImportRefused(f"{admin_username or 'nobody'} is not an admin of {org_slug}: imports act as one")
    admin = await principal_named(name)
    if admin is None:
        raise ImportRefused(f"no user {name!r}")
    return org, admin


async def run_import(
    services: Services,
    org_slug: str,
    source: ImportSource,
    *,
    admin_username: str | None = None,
    progress: ProgressBar | None = None,
    batch_size: int = BATCH,
    after_thread: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import `source` into the org, acting as one of its admins. `after_thread(n)` is called inside
    the batch's transaction after the n-th thread (1-based) of this run."""
    started = time.monotonic()
    org, admin = await org_and_admin(org_slug, admin_username)
    counts = service.ImportCounts()

    def unit():  # type: ignore[no-untyped-def]
        return unit_of_work(operator_context(services, admin, org, "admin"), source="import")

    categories: dict[str, uuid.UUID] = {}
    async with unit() as uow:
        await service.lock_source(uow.ctx, source.name)
        names = {t.category or source.default_category for t in source.threads}
        for name in sorted(names):
            categories[name] = await service.ensure_category(uow.ctx, name, qa_mode=source.qa_mode)
    done = 0
    for start in range(0, len(source.threads), batch_size):
        batch = source.threads[start : start + batch_size]
        async with unit() as uow:
            await service.lock_source(uow.ctx, source.name)
            users, created = await service.ensure_placeholders(uow.ctx, source.name, _authors(source, batch))
            for thread in batch:
                category = categories[thread.category or source.default_category]
                counts.add(await service.import_thread(uow.ctx, source.name, thread, category, users))
                done += 1
                if after_thread is not None:
                    after_thread(done)
        counts.users += created
        if progress is not None:
            progress.update(done, f"{counts.threads:,} new threads, {counts.posts:,} posts, {counts.skipped:,} skipped")
    async with unit() as uow:
        await service.lock_source(uow.ctx, source.name)
        counts.duplicates = await service.record_duplicates(uow.ctx, source.name, source.duplicates)
        await refresh_term_stats()
    if progress is not None:
        progress.close()
    return ImportResult(counts=counts, seconds=time.monotonic() - started)


def _authors(source: ImportSource, batch: list[SourceThread]) -> list[SourceUser]:
    ids = {t.question.author for t in batch} | {p.author for t in batch for p in t.replies}
    return [source.users[i] for i in sorted(ids)]
