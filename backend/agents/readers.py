"""Serving agent reads: each backend domain registers the read queries it serves on the runtime
(`register` in backend/<domain>/agent_ops.py); this runs them in the tenant's schema.

A read runs inside the caller's transaction when one is open for that tenant (the router), otherwise
in a short transaction of its own (the runner, outside its transactions). Params are decoded into the
query's Struct (bad params fail loudly); results are recorded in the execution's context for audit and
replay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine import db
from engine.agents.api import Reader
from engine.agents.registry import AgentRuntime
from engine.tenancy import Tenant, maybe_current_tenant, tenant_scope


def make_reader_for(runtime: AgentRuntime) -> Callable[[str], Reader]:
    def reader_for(tenant_slug: str) -> Reader:
        async def read(name: str, params: Mapping[str, Any]) -> Any:
            registered = runtime.reads.get(name)
            if registered is None:
                raise LookupError(f"unknown read query {name!r}")
            current = maybe_current_tenant()
            if db.in_transaction() and current is not None and current.slug == tenant_slug:
                return await registered.run(params)
            async with db.transaction():
                async with tenant_scope(db.current_connection(), Tenant(slug=tenant_slug)):
                    return await registered.run(params)

        return read

    return reader_for
