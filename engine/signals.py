"""Signals: immutable, typed, versioned facts appended to the tenant's outbox in the caller's transaction.

Every payload type is a frozen msgspec Struct registered once with `signal_type`; producers cannot
emit an unregistered type and consumers decode with the same registry.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from engine import db
from engine.ids import uuid7
from engine.tenancy import current_tenant

ActorType = Literal["user", "agent", "system"]
Source = Literal["web", "job", "api", "import"]  # "import": history brought in by an importer


class SignalPayload(msgspec.Struct, frozen=True, kw_only=True):
    """Base class of every signal payload. Subclasses get `signal_name`/`signal_version` from
    `@signal_type`."""

    signal_name: ClassVar[str] = ""
    signal_version: ClassVar[int] = 0


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope: what is stored in `signal` and published on the stream."""

    id: str
    type: str
    version: int
    tenant: str
    actor_type: ActorType
    actor_id: str | None
    source: Source
    correlation_id: str
    causation_id: str | None
    dedupe_key: str | None
    occurred_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RegisteredSignal:
    name: str
    version: int
    payload_type: type[SignalPayload]


REGISTRY: dict[str, RegisteredSignal] = {}
P = TypeVar("P", bound=type[SignalPayload])


def signal_type(name: str, version: int = 1) -> Callable[[P], P]:
    """Register a payload Struct under a signal type name (one registry for the whole process)."""

    def register(cls: P) -> P:
        existing = REGISTRY.get(name)
        if existing is not None and existing.payload_type is not cls:
            raise ValueError(f"signal type {name!r} registered twice")
        cls.signal_name = name
        cls.signal_version = version
        REGISTRY[name] = RegisteredSignal(name, version, cls)
        return cls

    return register


def is_imported(signal: Signal) -> bool:
    """Whether the signal records imported history (an importer's write): agents never act on those."""
    return signal.source == "import"


def decode_payload(signal: Signal) -> SignalPayload:
    """The typed payload of a stored or received signal."""
    registered = REGISTRY[signal.type]
    return msgspec.convert(signal.payload, registered.payload_type)


@dataclass(frozen=True, slots=True)
class SignalContext:
    """Who is acting and why: set by the request or job boundary, read by `emit`."""

    actor_type: ActorType
    actor_id: str | None
    source: Source
    correlation_id: str
    causation_id: str | None = None


@dataclass(slots=True)
class PendingSignals:
    """Signals appended in the current transaction, to publish after it commits."""

    items: list[Signal] = field(default_factory=list)
    # signal id → the encoded live view of what it changed (see `attach_view`); stream entry only
    views: dict[str, bytes] = field(default_factory=dict)


_context: contextvars.ContextVar[SignalContext | None] = contextvars.ContextVar("signal_context", default=None)
_pending: contextvars.ContextVar[PendingSignals | None] = contextvars.ContextVar("pending_signals", default=None)


@contextmanager
def signal_context(ctx: SignalContext) -> Iterator[SignalContext]:
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


@contextmanager
def collect_signals() -> Iterator[PendingSignals]:
    """Collect what `emit` appends; the boundary publishes `.items` after commit, drops them on
    rollback."""
    pending = PendingSignals()
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


# The signal and its outbox row in one round trip; nothing is returned when dedupe_key was used.
_INSERT = """
WITH stored AS (
    INSERT INTO signal (id, type, version, actor_type, actor_id, source, correlation_id, causation_id,
                        dedupe_key, occurred_at, payload)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING id
)
INSERT INTO signal_outbox (signal_id) SELECT id FROM stored RETURNING signal_id
"""


async def emit(
    payload: SignalPayload,
    *,
    dedupe_key: str | None = None,
    causation_id: str | None = None,
    context: SignalContext | None = None,
) -> Signal | None:
    """Append a signal and its outbox row in the open transaction of the current tenant.

    Returns the signal, or None when `dedupe_key` was already used (the fact is already recorded).
    """
    name = type(payload).signal_name
    if name not in REGISTRY or REGISTRY[name].payload_type is not type(payload):
        raise ValueError(f"unregistered signal payload {type(payload).__name__}")
    ctx = context or _context.get()
    if ctx is None:
        raise RuntimeError("no signal context: the request or job boundary must set one")
    tenant = current_tenant()
    signal = Signal(
        id=str(uuid7()),
        type=name,
        version=type(payload).signal_version,
        tenant=tenant.slug,
        actor_type=ctx.actor_type,
        actor_id=ctx.actor_id,
        source=ctx.source,
        correlation_id=ctx.correlation_id,
        causation_id=causation_id or ctx.causation_id,
        dedupe_key=dedupe_key,
        occurred_at=datetime.now(UTC),
        payload=msgspec.to_builtins(payload),
    )
    inserted = await db.fetchval(
        _INSERT,
        uuid.UUID(signal.id),
        signal.type,
        signal.version,
        signal.actor_type,
        signal.actor_id,
        signal.source,
        uuid.UUID(signal.correlation_id),
        uuid.UUID(signal.causation_id) if signal.causation_id else None,
        signal.dedupe_key,
        signal.occurred_at,
        msgspec.json.encode(signal.payload).decode(),
    )
    if inserted is None:
        return None
    pending = _pending.get()
    if pending is not None:
        pending.items.append(signal)
    return signal


_VIEW_ENCODER = msgspec.json.Encoder()


def attach_view(signal: Signal, view: msgspec.Struct) -> None:
    """Publish `view` (a typed msgspec Struct: what the changed object now looks like to any reader)
    next to `signal` in its stream entry, so live readers need not fetch it. The signal itself and its
    outbox row stay as they are (immutable, typed); a signal republished by the sweeper has no view.
    Call it after the last change of the transaction so the view is what commits."""
    pending = _pending.get()
    if pending is not None:
        pending.views[signal.id] = _VIEW_ENCODER.encode(view)


def row_to_signal(row: Any, tenant_slug: str) -> Signal:
    """Rebuild the envelope from a `signal` row."""
    payload = row["payload"]
    if isinstance(payload, str):
        payload = msgspec.json.decode(payload)
    return Signal(
        id=str(row["id"]),
        type=row["type"],
        version=row["version"],
        tenant=tenant_slug,
        actor_type=row["actor_type"],
        actor_id=row["actor_id"],
        source=row["source"],
        correlation_id=str(row["correlation_id"]),
        causation_id=str(row["causation_id"]) if row["causation_id"] else None,
        dedupe_key=row["dedupe_key"],
        occurred_at=row["occurred_at"],
        payload=payload,
    )
