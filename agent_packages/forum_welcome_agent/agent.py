"""The welcome agent. It reads through the engine's agent API only and never writes itself: it asks
for a `forum.post.create` directive, and the host's handler writes the post."""

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
    name="forum_welcome_agent",
    version="1.0.0",
    title="Welcome agent",
    description="Greets newcomers on their first post, points them to the categories and rules, and asks "
    "for missing context when a first post is very short.",
    agent_handle="welcome-agent",
    consumes=("forum.post.created",),
    directives=("forum.post.create",),
    permissions=("read_forum", "post_as_agent"),
    rate_limit_per_hour=30,
    daily_cost_cap_usd=0.50,
    max_tokens=300,
    default_config={"rules_url": "", "short_post_chars": 80},
)

SYSTEM_PROMPT = (
    "You are the welcome agent of an online community forum, clearly labelled as an AI agent. Greet the "
    "new member by name in two to four friendly sentences, point them to the most relevant categories and "
    "the rules, and if their first post is very short, ask politely for the missing context (what they "
    "tried, versions, goals). Never invent rules or facts about the community."
)


class WelcomeAgent:
    manifest = MANIFEST

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        payload = signal.payload
        user_id = payload.get("author_user_id")
        if signal.type != "forum.post.created" or payload.get("role") != "human" or not user_id:
            return []
        if await ctx.read("forum.user_post_count", user_id=user_id) != 1:
            return []  # not this user's first post in the org
        return [
            DirectiveRequest(
                type="forum.post.create",
                # once per user per org, whatever happens: retries, replays and duplicates collapse here
                idempotency_key=f"forum.post.create:{ctx.tenant}:welcome:{user_id}",
                payload={
                    "purpose": "welcome",
                    "thread_id": payload["thread_id"],
                    "reply_to_post_id": payload["post_id"],
                    "user_id": user_id,
                },
            )
        ]

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        user: dict[str, Any] = await ctx.read("forum.user", user_id=directive.payload["user_id"])
        post: dict[str, Any] = await ctx.read("forum.post", post_id=directive.payload["reply_to_post_id"])
        categories: list[dict[str, Any]] = await ctx.read("forum.categories")
        short_limit = int(ctx.config.get("short_post_chars", 80))
        is_short = len(post["body"].strip()) < short_limit
        rules_url = str(ctx.config.get("rules_url") or "")
        category_names = ", ".join(c["name"] for c in categories[:6])
        request = LLMRequest(
            system=(
                f"{SYSTEM_PROMPT}\n\nNew member: {user['username']}\n"
                f"Categories: {category_names or 'none yet'}\nRules: {rules_url or 'not published'}\n"
                f"Their first post is {'very short' if is_short else 'of normal length'}; it follows."
            ),
            messages=[Message(role="user", content=post["body"])],
            max_tokens=self.manifest.max_tokens,
            metadata={
                "task": "welcome",
                "username": user["username"],
                "categories": category_names,
                "rules_url": rules_url,
            },
        )
        result = await llm.generate(request, on_delta)
        reasons = ["first post by this member in the org"]
        if is_short:
            reasons.append(f"first post is shorter than {short_limit} characters: asked for more context")
        return Decision(action="reply", confidence=0.9, reasons=reasons, output=result.text.strip())
