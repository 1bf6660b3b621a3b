"""A throwaway org filled by an importer, for the retrieval evaluations (bench/eval_related.py,
bench/eval_duplicates.py): fresh database (bench.harness.servers), an admin, a public org, the import."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from backend.boundary import unit_of_work
from backend.console import as_operator, connected, operator_context, principal_named
from backend.context import OrgRef, Principal, RequestContext, Services
from backend.identity.schemas import RegisterIn
from backend.identity.service import register
from backend.importers.pipeline import ImportResult, org_and_admin, run_import
from backend.importers.progress import ProgressBar
from backend.importers.schemas import ImportSource
from backend.orgs.schemas import OrgIn
from backend.orgs.service import create_org
from backend.search.jobs import embed_all_threads
from backend.settings import load_settings
from bench.harness import Servers
from engine import db


@dataclass
class ImportedOrg:
    services: Services
    org: OrgRef
    admin: Principal
    result: ImportResult

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[RequestContext]:
        """A read-only unit of work in the org, as its admin (rolled back)."""
        async with unit_of_work(operator_context(self.services, self.admin, self.org, "admin")) as uow:
            yield uow.ctx
            uow.mark_rollback()

    async def embed_all(self) -> tuple[int, float]:
        """Embed every thread now (the worker does it in the background in the product); (count, seconds)."""
        started = time.monotonic()
        async with unit_of_work(operator_context(self.services, self.admin, self.org, "admin")):
            count = await embed_all_threads()
        return count, time.monotonic() - started

    async def thread_ids(self, kind: str = "thread") -> dict[str, str]:
        """External id → local id of what the import recorded."""
        async with self.reading():
            rows = await db.fetch("SELECT external_id, local_id FROM import_record WHERE kind = $1", kind)
        return {r["external_id"]: str(r["local_id"]) for r in rows}


@asynccontextmanager
async def imported_org(
    infra: Servers, source: ImportSource, *, show_progress: bool = True, embed: bool = True
) -> AsyncIterator[ImportedOrg]:
    settings = load_settings({}, database_url=infra.database_url, redis_url=infra.redis_url, secret_key="e" * 32)
    slug = f"eval_{secrets.token_hex(3)}"
    admin_name = f"evaladmin_{secrets.token_hex(2)}"
    async with connected(settings) as services:
        async with as_operator(services, None) as ctx:
            await register(
                ctx,
                RegisterIn(username=admin_name, email=f"{admin_name}@example.com", password="eval password 1234"),
                throttle=False,
            )
        admin = await principal_named(admin_name)
        assert admin is not None
        async with as_operator(services, admin) as ctx:
            await create_org(ctx, OrgIn(slug=slug, name="Retrieval evaluation", visibility="public"))
        progress = ProgressBar(len(source.threads), "import") if show_progress else None
        result = await run_import(services, slug, source, progress=progress)
        org, admin = await org_and_admin(slug, None)
        imported = ImportedOrg(services=services, org=org, admin=admin, result=result)
        if embed:
            count, seconds = await imported.embed_all()
            print(f"embedded {count} threads in {seconds:.1f}s (the worker's job, run here at once)", flush=True)
        yield imported
