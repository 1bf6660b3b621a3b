"""Directives: idempotent, approvable intent. One row per idempotency key; a second request with the
same key returns the first. All functions run inside the caller's tenant transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from engine import db
from engine.agents.api import DirectiveRequest, DirectiveView, PackageManifest
from engine.agents.signals import DirectiveCreated, DirectiveDecided, DirectiveRefused
from engine.ids import uuid7
from engine.signals import Signal, emit
from engine.tenancy import current_tenant

TERMINAL = frozenset({"succeeded", "failed", "rejected", "refused"})
RUNNABLE = frozenset({"pending", "approved", "running"})


class DirectiveRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    idempotency_key: str
    status: str
    package: str | None
    signal_id: str | None
    correlation_id: str
    depth: int
    payload: dict[str, Any]
    requires_approval: bool
    attempts: int
    max_attempts: int
    result: dict[str, Any] | None
    error: str | None
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    def view(self, attempt: int | None = None) -> DirectiveView:
        return DirectiveView(
            id=self.id,
            type=self.type,
            idempotency_key=self.idempotency_key,
            tenant=current_tenant().slug,
            package=self.package,
            payload=self.payload,
            attempt=self.attempts if attempt is None else attempt,
        )


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str) else value


def row_to_directive(row: Any) -> DirectiveRow:
    return DirectiveRow(
        id=str(row["id"]),
        type=row["type"],
        idempotency_key=row["idempotency_key"],
        status=row["status"],
        package=row["package"],
        signal_id=str(row["signal_id"]) if row["signal_id"] else None,
        correlation_id=str(row["correlation_id"]),
        depth=row["depth"],
        payload=_json(row["payload"]),
        requires_approval=row["requires_approval"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        result=_json(row["result"]),
        error=row["error"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


async def get_directive(directive_id: str, *, lock: bool = False) -> DirectiveRow | None:
    try:
        key = uuid.UUID(directive_id)
    except ValueError:
        return None
    row = await db.fetchrow("SELECT * FROM directive WHERE id = $1" + (" FOR UPDATE" if lock else ""), key)
    return row_to_directive(row) if row else None


async def count_recent(package: str, within: timedelta) -> int:
    since = datetime.now(UTC) - within
    n: int = await db.fetchval(
        "SELECT count(*) FROM directive WHERE package = $1 AND created_at > $2 AND status <> 'refused'",
        package,
        since,
    )
    return n


async def count_recent_all(within: timedelta) -> int:
    since = datetime.now(UTC) - within
    n: int = await db.fetchval(
        "SELECT count(*) FROM directive WHERE package IS NOT NULL AND created_at > $1 AND status <> 'refused'",
        since,
    )
    return n


async def _insert(
    request: DirectiveRequest,
    *,
    status: str,
    package: str | None,
    signal: Signal | None,
    correlation_id: str,
    depth: int,
    requires_approval: bool,
    error: str | None = None,
) -> tuple[DirectiveRow, bool]:
    row = await db.fetchrow(
        "INSERT INTO directive (id, type, idempotency_key, status, package, signal_id, correlation_id, depth,"
        " payload, requires_approval, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
        uuid7(),
        request.type,
        request.idempotency_key,
        status,
        package,
        uuid.UUID(signal.id) if signal else None,
        uuid.UUID(correlation_id),
        depth,
        msgspec.json.encode(request.payload).decode(),
        requires_approval,
        error,
    )
    if row is not None:
        return row_to_directive(row), True
    existing = await db.fetchrow("SELECT * FROM directive WHERE idempotency_key = $1", request.idempotency_key)
    assert existing is not None
    return row_to_directive(existing), False


async def request_directive(
    request: DirectiveRequest,
    *,
    manifest: PackageManifest | None,
    signal: Signal | None,
    correlation_id: str,
    depth: int = 0,
    refusal: str | None = None,
) -> tuple[DirectiveRow, bool]:
    """Create the directive for `request` once (by idempotency key). A package asking for a directive
    type it did not declare (or, with `refusal`, one it lacks the permission for) is refused, and the
    refusal is recorded as a `refused` directive."""
    package = manifest.name if manifest else None
    if manifest is not None and refusal is None and request.type not in manifest.directives:
        refusal = f"package {manifest.name} did not declare directive {request.type}"
    if manifest is not None and refusal is not None:
        reason = refusal
        row, created = await _insert(
            request,
            status="refused",
            package=package,
            signal=signal,
            correlation_id=correlation_id,
            depth=depth,
            requires_approval=False,
            error=reason,
        )
        if created:
            await emit(
                DirectiveRefused(directive_id=row.id, type=row.type, package=package, reason=reason),
                causation_id=signal.id if signal else None,
            )
        return row, created
    needs_approval = manifest is not None and request.type in manifest.requires_approval
    row, created = await _insert(
        request,
        status="awaiting_approval" if needs_approval else "pending",
        package=package,
        signal=signal,
        correlation_id=correlation_id,
        depth=depth,
        requires_approval=needs_approval,
    )
    if created:
        await emit(
            DirectiveCreated(
                directive_id=row.id,
                type=row.type,
                package=package,
                status=row.status,
                signal_id=signal.id if signal else None,
            ),
            causation_id=signal.id if signal else None,
        )
    return row, created


async def decide(directive_id: str, *, approve: bool, decided_by: str) -> DirectiveRow:
    """Approve or reject a directive awaiting approval. Raises LookupError / ValueError."""
    row = await get_directive(directive_id, lock=True)
    if row is None:
        raise LookupError("directive not found")
    if row.status != "awaiting_approval":
        raise ValueError(f"directive is {row.status}, not awaiting approval")
    status = "approved" if approve else "rejected"
    updated = await db.fetchrow(
        "UPDATE directive SET status = $2, decided_by = $3, decided_at = now(), updated_at = now(),"
        " finished_at = CASE WHEN $2 = 'rejected' THEN now() ELSE NULL END WHERE id = $1 RETURNING *",
        uuid.UUID(row.id),
        status,
        decided_by,
    )
    await emit(DirectiveDecided(directive_id=row.id, type=row.type, decision=status, decided_by=decided_by))
    return row_to_directive(updated)
