"""Shapes of the agent admin API (API.md, moderation and agents)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec


class InstallationIn(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class AgentOut(msgspec.Struct):
    package: str
    title: str
    description: str
    version: str
    agent_handle: str
    consumes: list[str]
    directives: list[str]
    permissions: list[str]
    rate_limit_per_hour: int
    daily_cost_cap_usd: float
    default_config: dict[str, Any]
    installed: bool
    enabled: bool
    config: dict[str, Any]
    config_schema: dict[str, Any] = msgspec.field(default_factory=dict)  # JSON Schema of `config` (the UI's form)


class AgentList(msgspec.Struct):
    agents: list[AgentOut]


class ReplayIn(msgspec.Struct, forbid_unknown_fields=True):
    dry_run: bool = True


class FeedbackIn(msgspec.Struct, forbid_unknown_fields=True):
    helpful: bool
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = msgspec.field(default=None)
    # "this solved it": marks the thread solved by this (agent) answer; the thread's author or a moderator
    solved: bool = False


class AskIn(msgspec.Struct, forbid_unknown_fields=True):
    """Ask an agent to answer in a thread (the "Ask the agent" button)."""

    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "faq-agent"
    post_id: Annotated[str, msgspec.Meta(max_length=64)] | None = (
        None  # the post to answer; default: the thread's opening post
    )


class SignalOut(msgspec.Struct):
    id: str
    type: str
    version: int
    actor_type: str
    actor_id: str | None
    source: str
    correlation_id: str
    causation_id: str | None
    dedupe_key: str | None
    occurred_at: datetime
    payload: dict[str, Any]


class Page(msgspec.Struct):
    items: list[Any]
    next_cursor: str | None


DirectiveStatus = Literal[
    "pending", "running", "succeeded", "failed", "awaiting_approval", "approved", "rejected", "refused"
]
