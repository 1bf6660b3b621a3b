"""The summary agent: asks for `forum.thread.summarize` directives (on request, or each time a thread
grows by `every_replies` replies) and writes a short TL;DR as an agent post. Reads through the engine's
agent API only."""

from __future__ import annotations

from typing import Any

from engine.agents.api import (
    AgentContext,
    Decision,
    DeltaSink,
    DirectiveRequest,
    DirectiveView,
    PackageManifest,
)
from engine.llm import LLMProvider, LLMRequest, Message
from engine.signals import Signal

MANIFEST = PackageManifest(
    name="forum_summary_agent",
    version="1.0.0",
    title="Summary agent",
    description="Writes a short TL;DR of long threads, when someone asks for one or every N replies.",
    agent_handle="summary-agent",
    consumes=("forum.post.created",),
    directives=("forum.thread.summarize",),
    permissions=("read_forum", "post_as_agent"),
    rate_limit_per_hour=20,
    daily_cost_cap_usd=1.0,
    max_tokens=400,
    default_config={"every_replies": 20, "max_sentences": 3},
)

SYSTEM_PROMPT = (
    "You are the summary agent of an online community forum, clearly labelled as an AI agent. Summarize "
    "the thread below in at most {n} sentences: the question, the answers that found agreement, and what "
    "is still open. Use only what the posts say."
)


def summarize_request(tenant: str, thread_id: str, version: int) -> DirectiveRequest:
    """The deterministic directive for one version of a thread's summary (spec §8.4)."""
    return DirectiveRequest(
        type="forum.thread.summarize",
        idempotency_key=f"forum.thread.summarize:{tenant}:{thread_id}:{version}",
        payload={"thread_id": thread_id, "summary_version": version},
    )


class SummaryAgent:
    manifest = MANIFEST

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        payload = signal.payload
        if signal.type != "forum.post.created" or payload.get("role") != "human" or payload.get("is_first_post"):
            return []
        every = int(ctx.config.get("every_replies", 20))
        if every <= 0:
            return []
        replies = await ctx.read("forum.thread_reply_count", thread_id=payload["thread_id"])
        if replies == 0 or replies % every:
            return []
        return [summarize_request(ctx.tenant, payload["thread_id"], replies)]

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        thread: dict[str, Any] = await ctx.read("forum.thread_posts", thread_id=directive.payload["thread_id"])
        sentences = int(ctx.config.get("max_sentences", 3))
        transcript = "\n\n".join(f"{p['author']}: {p['body']}" for p in thread["posts"])
        request = LLMRequest(
            system=SYSTEM_PROMPT.format(n=sentences) + f"\n\nThread: {thread['title']}",
            messages=[Message(role="user", content=transcript)],
            max_tokens=self.manifest.max_tokens,
            metadata={"task": "summarize", "max_sentences": str(sentences)},
        )
        result = await llm.generate(request, on_delta)
        text = result.text.strip()
        if not text:
            return Decision(action="noop", confidence=0.0, reasons=["nothing to summarize"])
        return Decision(
            action="reply",
            confidence=0.7,
            reasons=[f"summary of {len(thread['posts'])} posts (version {directive.payload['summary_version']})"],
            output=f"**TL;DR** {text}",
        )
