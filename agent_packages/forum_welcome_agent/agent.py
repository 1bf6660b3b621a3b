"""The welcome agent. It reads through the engine's agent API only and never writes itself: it asks
for a `forum.post.create` directive in the member's OWN first thread, or — when their first post is a
reply in someone else's thread — a `forum.user.notify` welcome notification, never a post in other
people's threads. Its greeting is never eligible as a thread's solution."""

from __future__ import annotations

from agent_packages.forum_contract.directives import PostCreate, UserNotify
from agent_packages.forum_contract.reads import CategoriesQuery, PostQuery, UserPostCountQuery, UserQuery
from agent_packages.forum_contract.signals import PostCreated, payload_of
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
    version="1.1.0",
    title="Welcome agent",
    description="Greets newcomers in their own first thread (or by a notification when their first post is a "
    "reply), points them to the categories and rules, and asks for missing context when a first post is very short.",
    agent_handle="welcome-agent",
    consumes=("forum.post.created",),
    directives=("forum.post.create", "forum.user.notify"),
    permissions=("read_forum", "post_as_agent", "notify_users"),
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
        if signal.type != PostCreated.signal_name:
            return []
        post = payload_of(signal, PostCreated)
        if post.role != "human" or not post.author_user_id:
            return []
        if await ctx.query(UserPostCountQuery(user_id=post.author_user_id)) != 1:
            return []  # not this user's first post in the org
        if post.is_first_post:  # they started this thread: greet them in it
            return [
                DirectiveRequest.of(
                    PostCreate(
                        purpose="welcome",
                        thread_id=post.thread_id,
                        reply_to_post_id=post.post_id,
                        user_id=post.author_user_id,
                        solution_eligible=False,
                    ),
                    # once per user per org, whatever happens: retries, replays and duplicates collapse here
                    f"forum.post.create:{ctx.tenant}:welcome:{post.author_user_id}",
                )
            ]
        # their first post is a reply in someone else's thread: welcome them privately
        return [
            DirectiveRequest.of(
                UserNotify(user_id=post.author_user_id, kind="welcome", thread_id=post.thread_id),
                f"forum.user.notify:{ctx.tenant}:welcome:{post.author_user_id}",
            )
        ]

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        if directive.type == UserNotify.directive_type:
            return Decision(action="apply", confidence=1.0, reasons=["first post by this member is a reply"])
        payload = directive.payload_as(PostCreate)
        assert payload.user_id is not None and payload.reply_to_post_id is not None
        user = await ctx.query(UserQuery(user_id=payload.user_id))
        post = await ctx.query(PostQuery(post_id=payload.reply_to_post_id))
        categories = await ctx.query(CategoriesQuery())
        short_limit = int(ctx.config.get("short_post_chars", 80))
        is_short = len(post.body.strip()) < short_limit
        rules_url = str(ctx.config.get("rules_url") or "")
        category_names = ", ".join(c.name for c in categories[:6])
        request = LLMRequest(
            system=(
                f"{SYSTEM_PROMPT}\n\nNew member: {user.username}\n"
                f"Categories: {category_names or 'none yet'}\nRules: {rules_url or 'not published'}\n"
                f"Their first post is {'very short' if is_short else 'of normal length'}; it follows."
            ),
            messages=[Message(role="user", content=post.body)],
            max_tokens=self.manifest.max_tokens,
            metadata={
                "task": "welcome",
                "username": user.username,
                "categories": category_names,
                "rules_url": rules_url,
            },
        )
        result = await llm.generate(request, on_delta)
        reasons = ["first post by this member in the org, in their own thread"]
        if is_short:
            reasons.append(f"first post is shorter than {short_limit} characters: asked for more context")
        return Decision(action="reply", confidence=0.9, reasons=reasons, output=result.text.strip())
