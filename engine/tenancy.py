"""Schema-per-tenant: slug validation, schema names and the one place a tenant context is entered.

Tenant tables are declared without a schema. Inside `tenant_scope` the transaction's search_path is
`"org_<slug>", public`; outside it they do not resolve, so a query that forgot its tenant fails.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_]{0,48}[a-z0-9])?$")
SCHEMA_PREFIX = "org_"


class InvalidSlug(ValueError):
    """A slug that may not become part of a schema name."""


class NoTenantContext(RuntimeError):
    """Tenant-scoped work was attempted outside `tenant_scope`."""


def validate_slug(slug: str) -> str:
    """Return the slug if it is 1-50 chars of [a-z0-9_], starting and ending alphanumeric."""
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise InvalidSlug("slug must be 1-50 characters of a-z, 0-9 and _, starting and ending with a letter or digit")
    return slug


def schema_for(slug: str) -> str:
    return SCHEMA_PREFIX + validate_slug(slug)


def quote_schema(schema: str) -> str:
    """Quote a schema name that came from `schema_for` (re-validated: never trust a caller)."""
    if not schema.startswith(SCHEMA_PREFIX) and schema != "public":
        raise InvalidSlug(f"not a tenant schema: {schema!r}")
    if schema != "public":
        validate_slug(schema[len(SCHEMA_PREFIX) :])
    return f'"{schema}"'


@dataclass(frozen=True, slots=True)
class Tenant:
    """The tenant a unit of work runs in."""

    slug: str
    org_id: str = ""  # the org's id when the caller knows it (the engine works by slug)

    @property
    def schema(self) -> str:
        return schema_for(self.slug)


_current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("current_tenant", default=None)


def current_tenant() -> Tenant:
    tenant = _current_tenant.get()
    if tenant is None:
        raise NoTenantContext("no tenant context: enter engine.tenancy.tenant_scope first")
    return tenant


def maybe_current_tenant() -> Tenant | None:
    return _current_tenant.get()


@asynccontextmanager
async def tenant_scope(conn: asyncpg.Connection, tenant: Tenant, *, restore: bool = True) -> AsyncIterator[Tenant]:
    """Point the open transaction on `conn` at the tenant's schema, then restore the previous one.

    Must be called inside a transaction: `SET LOCAL` lasts until the transaction ends. A boundary whose
    transaction ends with the scope passes `restore=False` and saves a round trip.
    """
    if not conn.is_in_transaction():
        raise NoTenantContext("tenant_scope needs an open transaction")
    path = f"{quote_schema(tenant.schema)}, public"
    previous_path = await conn.fetchval(
        "WITH prev AS MATERIALIZED (SELECT current_setting('search_path') AS p)"
        " SELECT p FROM prev, set_config('search_path', $1, true)",
        path,
    )
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)
    if not restore:
        return
    # Only on success: after an error the transaction is aborted and will be rolled back anyway.
    try:
        await conn.execute("SELECT set_config('search_path', $1, true)", previous_path)
    except asyncpg.InFailedSQLTransactionError:
        pass  # the work inside failed and the boundary will roll back
