"""The agent runtime as composed by the host: packages, directive handlers, read queries, LLM, drafts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from engine.agents.api import (
    AgentContext,
    AgentPackage,
    Decision,
    DirectivePayload,
    DirectiveView,
    PackageManifest,
    Reader,
    ReadQuery,
)
from engine.agents.directives import DirectiveRow
from engine.llm import LLMProvider


class DirectiveHandler(Protocol):
    """Applies a directive's side effect inside the runner's transaction (tenant scope open)."""

    async def __call__(self, directive: DirectiveView, decision: Decision, execution_id: str) -> dict[str, Any]: ...


class DraftStream(Protocol):
    async def delta(self, text: str) -> None: ...

    async def end(self, result: Mapping[str, Any] | None, *, outcome: str | None = None) -> None:
        """The draft is over: `result` of the saved effect, or None with `outcome` "failed" or
        "abandoned" (an attempt whose worker died)."""
        ...


DraftFactory = Callable[[str, DirectiveView, str], DraftStream | None]
# Host policy that may approve a directive awaiting approval at once: returns who/what approved it
# (recorded as `decided_by`, e.g. "policy:hide_pending_review") or None to leave it for a human.
ApprovalWaiver = Callable[[DirectiveRow, dict[str, Any]], Awaitable[str | None]]
ReadHandler = Callable[[Any], Awaitable[Any]]  # the decoded query Struct → a msgspec-encodable result


@dataclass(frozen=True, slots=True)
class RegisteredRead:
    query_type: type[ReadQuery[Any]]
    handler: ReadHandler

    async def run(self, params: Mapping[str, Any]) -> Any:
        """Decode (validate) the params into the query Struct and serve it."""
        return await self.handler(msgspec.convert(dict(params), self.query_type, strict=False))


@dataclass(frozen=True, slots=True)
class OrgAgentLimits:
    max_directives_per_hour: int = 200
    daily_cost_cap_usd: float = 5.0
    max_depth: int = 1  # an agent's output may trigger other agents at most this many hops deep


@dataclass
class AgentRuntime:
    llm: LLMProvider
    reader_for: Callable[[str], Reader]  # tenant slug → named read queries
    packages: dict[str, AgentPackage] = field(default_factory=dict)
    handlers: dict[str, DirectiveHandler] = field(default_factory=dict)
    directive_permissions: dict[str, str] = field(default_factory=dict)  # directive type → permission
    reads: dict[str, RegisteredRead] = field(default_factory=dict)  # read name → its query and handler
    drafts: DraftFactory | None = None
    limits: OrgAgentLimits = field(default_factory=OrgAgentLimits)
    enqueue: Callable[[str, str], Awaitable[None]] | None = None  # (tenant, directive id)
    approval_waivers: list[ApprovalWaiver] = field(default_factory=list)

    def add_package(self, package: AgentPackage) -> None:
        name = package.manifest.name
        if name in self.packages:
            raise ValueError(f"package {name} registered twice")
        self.packages[name] = package

    def add_handler(self, directive_type: str, handler: DirectiveHandler) -> None:
        if directive_type in self.handlers:
            raise ValueError(f"directive type {directive_type} has a handler already")
        self.handlers[directive_type] = handler

    def add_directive(self, payload_type: type[DirectivePayload], handler: DirectiveHandler) -> None:
        """A domain registers a directive type it applies (and the permission a package needs for it)."""
        self.add_handler(payload_type.directive_type, handler)
        self.directive_permissions[payload_type.directive_type] = payload_type.permission

    def add_read(self, query_type: type[ReadQuery[Any]], handler: ReadHandler) -> None:
        """A domain registers a read query it serves."""
        name = query_type.read_name
        if not name or name in self.reads:
            raise ValueError(f"read {name!r} is unnamed or registered twice")
        self.reads[name] = RegisteredRead(query_type, handler)

    @property
    def read_permissions(self) -> dict[str, str]:
        return {name: read.query_type.permission for name, read in self.reads.items()}

    def context(
        self, tenant: str, manifest: PackageManifest, config: Mapping[str, Any], reader: Reader | None = None
    ) -> AgentContext:
        """The read-only context of one package in one tenant, refusing reads its manifest does not permit."""
        return AgentContext(
            tenant,
            config,
            reader or self.reader_for(tenant),
            package=manifest.name,
            permissions=manifest.permissions,
            read_permissions=self.read_permissions,
        )

    def directive_refusal(self, manifest: PackageManifest, directive_type: str) -> str | None:
        """Why `manifest`'s package may not request `directive_type`, or None when it may."""
        if directive_type not in manifest.directives:
            return f"package {manifest.name} did not declare directive {directive_type}"
        needed = self.directive_permissions.get(directive_type)
        if needed is not None and needed not in manifest.permissions:
            return f"package {manifest.name} lacks permission {needed!r} for directive {directive_type}"
        return None

    def package_for_handle(self, handle: str) -> AgentPackage | None:
        for package in self.packages.values():
            if package.manifest.agent_handle == handle:
                return package
        return None
