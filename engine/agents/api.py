"""The agent API: everything an agent package may import.

A package turns a signal into directive requests (`plan`) and a directive into a decision (`decide`).
It reads only through `AgentContext.read` (named read queries the host registers, each recorded in the
execution's context so replays see the same input) and never writes to the database itself.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import msgspec

from engine.signals import Signal

if TYPE_CHECKING:
    from engine.llm import LLMProvider


class PackageManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a package declares (spec §12.3); the engine enforces every field."""

    name: str
    version: str
    title: str
    description: str
    agent_handle: str  # how it is mentioned and labelled, e.g. "welcome-agent"
    consumes: tuple[str, ...]  # signal types
    directives: tuple[str, ...]  # directive types it may request
    permissions: tuple[str, ...]  # e.g. "post_as_agent", "create_flags", "read_forum"
    rate_limit_per_hour: int = 60  # directives per org per hour
    daily_cost_cap_usd: float = 1.0
    max_tokens: int = 400
    requires_approval: tuple[str, ...] = ()  # directive types that wait for a human
    default_config: Mapping[str, Any] = msgspec.field(default_factory=dict)


class DirectivePayload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every typed directive payload: subclasses name their directive type and the permission a
    package needs to request it (the forum's live in agent_packages/forum_contract/directives.py)."""

    directive_type: ClassVar[str] = ""
    permission: ClassVar[str] = ""


D = TypeVar("D", bound=DirectivePayload)
R = TypeVar("R")


class ReadQuery(msgspec.Struct, Generic[R], frozen=True, kw_only=True):
    """Base of every typed read query: `read_name` is what the host serves, `permission` what the package
    must declare, `result_type` what the result decodes to (`R`, for type checkers)."""

    read_name: ClassVar[str] = ""
    permission: ClassVar[str] = "read_forum"
    result_type: ClassVar[Any] = Any


class PermissionRefused(Exception):
    """A package asked for a read or directive its manifest does not permit. Never retried."""


class DirectiveRequest(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    idempotency_key: str
    payload: dict[str, Any]

    @classmethod
    def of(cls, payload: DirectivePayload, idempotency_key: str) -> DirectiveRequest:
        """The request for a typed payload (its type comes from the payload's class)."""
        return cls(type=payload.directive_type, idempotency_key=idempotency_key, payload=msgspec.to_builtins(payload))


class Citation(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    url: str
    thread_id: str | None = None
    post_id: str | None = None
    number: int | None = None  # the [n] it is cited with


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The structured decision record of one execution."""

    action: Literal["reply", "escalate", "flag", "noop", "apply", "rejected"]
    confidence: float
    reasons: list[str]
    citations: list[Citation] = msgspec.field(default_factory=list)
    output: str = ""  # the text the agent wrote, when it wrote one
    label: str = ""  # how the text was made, shown with it (e.g. "extractive answer, no language model")
    # Further directives the decision calls for (e.g. an escalation); created with the decision's effect,
    # each checked against the manifest like any other request.
    followups: list[DirectiveRequest] = msgspec.field(default_factory=list)


class DirectiveView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    idempotency_key: str
    tenant: str
    package: str | None
    payload: dict[str, Any]
    attempt: int

    def payload_as(self, payload_type: builtins.type[D]) -> D:
        """The typed payload (raises msgspec.ValidationError when the stored payload does not fit)."""
        if self.type != payload_type.directive_type:
            raise ValueError(f"directive {self.type} is not {payload_type.directive_type}")
        return msgspec.convert(self.payload, payload_type)


Reader = Callable[[str, Mapping[str, Any]], Awaitable[Any]]
DeltaSink = Callable[[str], Awaitable[None]]


class AgentContext:
    """Read-only access for a package, recording every read (name, params, result) in order.

    With `permissions` (the manifest's) and `read_permissions` (read name → the permission it needs, from
    the host), a read the package did not declare is refused with `PermissionRefused` and recorded."""

    def __init__(
        self,
        tenant: str,
        config: Mapping[str, Any],
        reader: Reader,
        *,
        package: str = "",
        permissions: tuple[str, ...] | None = None,
        read_permissions: Mapping[str, str] | None = None,
    ) -> None:
        self.tenant = tenant
        self.config = dict(config)
        self._reader = reader
        self.package = package
        self._permissions = permissions
        self._read_permissions = read_permissions or {}
        self.reads: list[dict[str, Any]] = []
        self.refusals: list[str] = []

    def _check(self, name: str) -> None:
        if self._permissions is None:
            return
        needed = self._read_permissions.get(name)
        if needed is None or needed not in self._permissions:
            reason = f"refused: package {self.package or '?'} may not call read {name}" + (
                f" (needs permission {needed!r})" if needed else " (no such read)"
            )
            self.refusals.append(reason)
            raise PermissionRefused(reason)

    async def read(self, name: str, **params: Any) -> Any:
        self._check(name)
        result = msgspec.to_builtins(await self._reader(name, params))
        self.reads.append({"query": name, "params": params, "result": result})
        return result  # plain JSON-able values, exactly what was recorded (and what a replay serves)

    async def query(self, query: ReadQuery[R]) -> R:
        """A typed read: the query Struct in, its `result_type` out."""
        params = msgspec.to_builtins(query)
        await self.read(type(query).read_name, **params)
        # decode what was recorded, so a replay (which serves recorded reads) decodes the same thing
        converted: R = msgspec.convert(self.reads[-1]["result"], type(query).result_type, strict=False)
        return converted


class AgentPackage(Protocol):
    manifest: PackageManifest

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        """Cheap and deterministic: which directives this signal calls for (usually none)."""
        ...

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        """Do the work of one directive (may call the LLM, streaming through on_delta)."""
        ...
