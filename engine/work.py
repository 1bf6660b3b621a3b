"""A unit of work for engine-driven code (router, runner): one transaction in a tenant's schema, a
signal context, and the signals it wrote published after commit (never on rollback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from engine import db
from engine.relay import StreamConfig, publish_committed_signals
from engine.signals import PendingSignals, SignalContext, collect_signals, signal_context
from engine.tenancy import Tenant, maybe_current_tenant, tenant_scope


@asynccontextmanager
async def tenant_work(
    redis: Redis, streams: StreamConfig, tenant_slug: str, context: SignalContext
) -> AsyncIterator[PendingSignals | None]:
    """Inside an open transaction of the same tenant (e.g. an HTTP request that runs a replay) this
    joins it: its signals go to the outer collector and are published when the OUTER work commits."""
    if db.in_transaction():
        current = maybe_current_tenant()
        if current is None or current.slug != tenant_slug:
            raise RuntimeError("tenant work nested in another tenant's (or no tenant's) transaction")
        with signal_context(context):
            yield None
        return
    with collect_signals() as pending:
        async with db.transaction():
            async with tenant_scope(db.current_connection(), Tenant(slug=tenant_slug), restore=False):
                with signal_context(context):
                    yield pending
    if pending.items:
        await publish_committed_signals(db.pool(), redis, streams, pending.items, pending.views)
