"""The unit of work every boundary (HTTP request, CLI command, job) runs services in.

One transaction; the org's schema when the context names an org; the signal context; signals written
are published only after commit and dropped on rollback. Services never commit (STYLE 4, 5).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass

from backend.context import RequestContext, current_request_context, reset_request_context, set_request_context
from engine import db
from engine.relay import publish_committed_signals
from engine.signals import SignalContext, Source, collect_signals, signal_context
from engine.tenancy import maybe_current_tenant, tenant_scope

log = logging.getLogger("forum.boundary")


class InheritedContext(RuntimeError):
    """A unit of work found a transaction or tenant it did not open (e.g. a server that ran this request
    in a copy of an earlier request's contextvars). It refuses to join it."""


async def run_in_fresh_context(work: Coroutine[object, object, None]) -> None:
    """Run `work` in a new task with EMPTY contextvars, whatever context the server handed us.

    uvicorn resumes reading a keep-alive connection from inside the request that paused it (a body over
    64 KiB), so the next request's task starts in a copy of that request's contextvars: Piccolo's
    current transaction (already released to the pool), the request context, the tenant. Every request
    starts here instead. Cancelling the caller cancels the work.
    """
    task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
    await task


def ensure_clean_boundary() -> None:
    """Refuse to start a unit of work inside a transaction, tenant or request context it did not open."""
    if db.in_transaction():
        raise InheritedContext("a unit of work was started inside a transaction it did not open")
    if maybe_current_tenant() is not None:
        raise InheritedContext("a unit of work was started inside a tenant scope it did not open")
    if current_request_context() is not None:
        raise InheritedContext("a unit of work was started inside another request's context")


@dataclass(slots=True)
class UnitOfWork:
    ctx: RequestContext
    rollback_only: bool = False
    published: int = 0

    def mark_rollback(self) -> None:
        """Roll back instead of committing (e.g. the handler answered with an error)."""
        self.rollback_only = True


@asynccontextmanager
async def unit_of_work(
    ctx: RequestContext,
    *,
    prepare: Callable[[RequestContext], Awaitable[None]] | None = None,
    source: Source | None = None,
) -> AsyncIterator[UnitOfWork]:
    ensure_clean_boundary()
    uow = UnitOfWork(ctx)
    token = set_request_context(ctx)
    try:
        with collect_signals() as pending:
            async with db.transaction() as txn:
                if prepare is not None:
                    await prepare(ctx)  # authentication/authorization; may raise to abort
                actor = ctx.principal
                sig_ctx = SignalContext(
                    actor_type="user" if actor else "system",
                    actor_id=actor.user_id if actor else None,
                    source=source or ("api" if actor and actor.via == "token" else "web"),
                    correlation_id=ctx.correlation_id,
                )
                with signal_context(sig_ctx):
                    if ctx.org is not None:
                        async with tenant_scope(db.current_connection(), ctx.org.tenant, restore=False):
                            yield uow
                    else:
                        yield uow
                if uow.rollback_only:
                    await txn.rollback()
        if not uow.rollback_only and pending.items:
            services = ctx.services
            uow.published = await publish_committed_signals(
                db.pool(), services.redis, services.streams, pending.items, pending.views
            )
        if not uow.rollback_only:
            for job in ctx.after_commit:
                try:
                    await job()
                except Exception:  # the row is committed; sweeps recover what this fast path missed
                    log.exception("after-commit work failed")
    finally:
        reset_request_context(token)
