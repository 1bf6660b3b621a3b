"""Composition of the agent runtime: which packages exist, which domains apply which directives and
serve which reads (each domain's `agent_ops.register`), which LLM answers, where drafts stream. Built by
the web app and the worker alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from agent_packages.forum_contract.directives import PostCreate, ThreadExtractDecisions, ThreadSummarize
from agent_packages.forum_faq_agent import package as faq_package
from agent_packages.forum_moderation_agent import package as moderation_package
from agent_packages.forum_routing_agent import package as routing_package
from agent_packages.forum_summary_agent import package as summary_package
from agent_packages.forum_welcome_agent import package as welcome_package
from backend.agents.readers import make_reader_for
from backend.digest import agent_ops as digest_ops
from backend.forum import agent_ops as forum_ops
from backend.identity import agent_ops as identity_ops
from backend.moderation import agent_ops as moderation_ops
from backend.notifications import agent_ops as notification_ops
from backend.routing import agent_ops as routing_ops
from backend.search import agent_ops as search_ops
from backend.settings import Settings
from engine.agents.api import DirectiveView
from engine.agents.queue import DirectiveQueue
from engine.agents.registry import AgentRuntime, DraftStream, OrgAgentLimits
from engine.llm import LLMProvider, OfflineProvider, provider_from_settings
from realtime.drafts import publish_draft_delta, publish_draft_end

# Every package this deployment offers; installations per org choose among them.
PACKAGES = (welcome_package, summary_package, moderation_package, faq_package, routing_package)
# Directive types that end in an agent post in the directive's thread (streamed as a draft first).
POSTING_DIRECTIVES = (
    PostCreate.directive_type,
    ThreadSummarize.directive_type,
    ThreadExtractDecisions.directive_type,
)


def build_llm(settings: Settings) -> LLMProvider:
    if settings.llm_provider == "offline" or (settings.llm_provider == "auto" and not settings.anthropic_api_key):
        return OfflineProvider(max_tokens=settings.llm_max_tokens, delay_s=settings.llm_offline_delay_s)
    return provider_from_settings(
        settings.llm_provider,
        api_key=settings.anthropic_api_key or None,
        model=settings.anthropic_model,
        base_url=settings.anthropic_base_url or None,
        timeout_s=settings.llm_timeout_s,
        max_tokens=settings.llm_max_tokens,
    )


def _unbuilt(tenant: str) -> Any:
    raise RuntimeError("the runtime's reader is set by build_runtime")


class ThreadDraft:
    """Streams one execution's text to `thread:<id>` subscribers, a few tokens per publish."""

    def __init__(self, redis: Redis, tenant: str, thread_id: str, execution_id: str, ttl_s: int) -> None:
        self.redis, self.tenant, self.thread_id, self.execution_id, self.ttl_s = (
            redis,
            tenant,
            thread_id,
            execution_id,
            ttl_s,
        )

    async def delta(self, text: str) -> None:
        await publish_draft_delta(self.redis, self.tenant, self.thread_id, self.execution_id, text, ttl_s=self.ttl_s)

    async def end(self, result: Mapping[str, Any] | None, *, outcome: str | None = None) -> None:
        post_id = str(result["post_id"]) if result and result.get("post_id") else None
        await publish_draft_end(self.redis, self.tenant, self.thread_id, self.execution_id, post_id, outcome=outcome)


def build_runtime(
    settings: Settings, redis: Redis, queue: DirectiveQueue | None, llm: LLMProvider | None = None
) -> AgentRuntime:
    runtime = AgentRuntime(
        llm=llm or build_llm(settings),
        reader_for=lambda tenant: _unbuilt(tenant),
        limits=OrgAgentLimits(
            max_directives_per_hour=settings.agent_max_directives_per_hour,
            daily_cost_cap_usd=settings.agent_daily_cost_cap_usd,
        ),
        enqueue=queue.enqueue if queue is not None else None,
    )
    runtime.reader_for = make_reader_for(runtime)
    for package in PACKAGES:
        runtime.add_package(package)
    for domain in (forum_ops, identity_ops, search_ops, notification_ops, moderation_ops, routing_ops, digest_ops):
        domain.register(runtime)

    def drafts(tenant: str, directive: DirectiveView, execution_id: str) -> DraftStream | None:
        if directive.type == PostCreate.directive_type:
            thread_id = directive.payload_as(PostCreate).thread_id
        elif directive.type == ThreadSummarize.directive_type:
            thread_id = directive.payload_as(ThreadSummarize).thread_id
        elif directive.type == ThreadExtractDecisions.directive_type:
            thread_id = directive.payload_as(ThreadExtractDecisions).thread_id
        else:
            return None
        return ThreadDraft(redis, tenant, thread_id, execution_id, settings.ws_draft_ttl_s)

    runtime.drafts = drafts
    return runtime
