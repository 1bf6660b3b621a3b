"""The agent runtime as composed by the host: packages, directive handlers, read queries, LLM, drafts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.agents.api import AgentPackage, Decision, DirectiveView, Reader
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

    def package_for_handle(self, handle: str) -> AgentPackage | None:
        for package in self.packages.values():
            if package.manifest.agent_handle == handle:
                return package
        return None
