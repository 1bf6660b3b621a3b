"""The agent API: everything an agent package may import.

A package turns a signal into directive requests (`plan`) and a directive into a decision (`decide`).
It reads only through `AgentContext.read` (named read queries the host registers, each recorded in the
execution's context so replays see the same input) and never writes to the database itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

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


class DirectiveRequest(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    idempotency_key: str
    payload: dict[str, Any]


class Citation(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    url: str
    thread_id: str | None = None


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The structured decision record of one execution."""

    action: Literal["reply", "escalate", "flag", "noop", "apply"]
    confidence: float
    reasons: list[str]
    citations: list[Citation] = msgspec.field(default_factory=list)
    output: str = ""  # the text the agent wrote, when it wrote one


class DirectiveView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    idempotency_key: str
    tenant: str
    package: str | None
    payload: dict[str, Any]
    attempt: int


Reader = Callable[[str, Mapping[str, Any]], Awaitable[Any]]
DeltaSink = Callable[[str], Awaitable[None]]


class AgentContext:
    """Read-only access for a package, recording every read (name, params, result) in order."""

    def __init__(self, tenant: str, config: Mapping[str, Any], reader: Reader) -> None:
        self.tenant = tenant
        self.config = dict(config)
        self._reader = reader
        self.reads: list[dict[str, Any]] = []

    async def read(self, name: str, **params: Any) -> Any:
        result = await self._reader(name, params)
        self.reads.append({"query": name, "params": params, "result": msgspec.to_builtins(result)})
        return result


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
