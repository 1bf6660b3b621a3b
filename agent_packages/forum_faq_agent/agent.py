"""The FAQ agent: on a new thread in an enabled category, an `@faq-agent` mention or an explicit request
(`forum.agent.response.requested`), it retrieves the earlier threads the asker may see and either
streams a short answer citing them ([n] with links, and its confidence) or, when not confident, posts
nothing and escalates to humans (`forum.agent.escalate`).

Offline it is extractive: the best-matching accepted answer (or best reply), trimmed, cited and labelled.
With a language model it writes from the retrieved threads only; an answer citing nothing, or citing
something it was not given, is rejected (recorded in the decision, never posted) and escalated.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from agent_packages.forum_contract.directives import AgentEscalate, PostCreate
from agent_packages.forum_contract.reads import (
    CategoryInfoQuery,
    PostQuery,
    RelatedThreadsQuery,
    ThreadPost,
    ThreadQuery,
    ThreadView,
)
from agent_packages.forum_contract.signals import (
    AgentMentioned,
    AgentResponseRequested,
    ThreadCreated,
    payload_of,
)
from agent_packages.forum_faq_agent.grounding import best_answer, citation_problems, confidence, trim
from engine.agents.api import (
    AgentContext,
    Citation,
    Decision,
    DeltaSink,
    DirectiveRequest,
    DirectiveView,
    PackageManifest,
)
from engine.llm import LLMProvider, LLMRequest, Message
from engine.llm.base import word_deltas
from engine.signals import Signal

HANDLE = "faq-agent"
EXTRACTIVE_LABEL = "Extractive answer quoted from earlier threads (no language model)."


class FaqConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The FAQ agent's settings (its JSON schema is served with the package for the admin UI)."""

    # Category slugs where a new thread triggers the agent; ["*"] means every category. Mentions and
    # explicit requests work in every category.
    categories: list[str] = msgspec.field(default_factory=lambda: ["*"])
    # Answer only at or above this confidence (0..1); below it, escalate.
    confidence_threshold: float = msgspec.field(default=0.5)
    # Category slug → usernames to page when not confident (else the category's targets, else moderators).
    escalation_targets: dict[str, list[str]] = msgspec.field(default_factory=dict)
    max_sources: int = 3  # threads cited at most
    max_answer_words: int = 120
    rate_limit_per_hour: int = 60
    daily_cost_cap_usd: float = 2.0


MANIFEST = PackageManifest(
    name="forum_faq_agent",
    version="1.0.0",
    title="FAQ agent",
    description="Answers new questions from the org's own earlier threads with numbered citations, or pages "
    "moderators when it is not confident.",
    agent_handle=HANDLE,
    consumes=("forum.thread.created", "forum.agent.mentioned", "forum.agent.response.requested"),
    directives=("forum.post.create", "forum.agent.escalate"),
    permissions=("read_forum", "post_as_agent", "escalate"),
    rate_limit_per_hour=60,
    daily_cost_cap_usd=2.0,
    max_tokens=500,
    default_config=msgspec.to_builtins(FaqConfig()),
)

SYSTEM_PROMPT = (
    "You are the FAQ agent of an online community forum, clearly labelled as an AI agent. Answer the "
    "member's question in at most {words} words using ONLY the numbered earlier threads below. Cite every "
    "claim with the thread's number in brackets, like [1]. Never cite a number that is not listed and never "
    "link other threads. If the threads do not answer the question, reply exactly: NO_ANSWER"
)


def answer_request(tenant: str, thread_id: str, post_id: str, asker_user_id: str | None) -> DirectiveRequest:
    """One answer per asked post, whatever triggered it (new thread, mention, button, redelivery)."""
    return DirectiveRequest.of(
        PostCreate(purpose="faq_answer", thread_id=thread_id, reply_to_post_id=post_id, user_id=asker_user_id),
        f"forum.post.create:{tenant}:faq:{post_id}",
    )


def thread_url(tenant: str, thread_id: str, post_id: str | None = None) -> str:
    return f"/#/o/{tenant}/t/{thread_id}" + (f"?post={post_id}" if post_id else "")


class Source(msgspec.Struct, frozen=True, kw_only=True):
    thread: ThreadView
    answer: ThreadPost
    confidence: float


class FaqAgent:
    manifest = MANIFEST
    config_type: ClassVar[type[FaqConfig]] = FaqConfig

    @staticmethod
    def config(ctx: AgentContext) -> FaqConfig:
        return msgspec.convert(ctx.config, FaqConfig, strict=False)

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        if signal.actor_type == "agent":
            return []
        if signal.type == ThreadCreated.signal_name:
            created = payload_of(signal, ThreadCreated)
            enabled = self.config(ctx).categories
            if "*" not in enabled:
                category = await ctx.query(CategoryInfoQuery(category_id=created.category_id))
                if category.slug not in enabled:
                    return []
            return [answer_request(ctx.tenant, created.thread_id, created.first_post_id, created.author_user_id)]
        if signal.type == AgentMentioned.signal_name:
            mentioned = payload_of(signal, AgentMentioned)
            if mentioned.agent != HANDLE:
                return []
            post = await ctx.query(PostQuery(post_id=mentioned.post_id))
            return [answer_request(ctx.tenant, mentioned.thread_id, mentioned.post_id, post.author_user_id)]
        if signal.type == AgentResponseRequested.signal_name:
            requested = payload_of(signal, AgentResponseRequested)
            if requested.agent != HANDLE:
                return []
            return [answer_request(ctx.tenant, requested.thread_id, requested.post_id, requested.requested_by_user_id)]
        return []

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        if directive.type == AgentEscalate.directive_type:  # the follow-up of a decision not to answer
            escalation = directive.payload_as(AgentEscalate)
            return Decision(action="escalate", confidence=0.0, reasons=escalation.reasons)
        config = self.config(ctx)
        payload = directive.payload_as(PostCreate)
        assert payload.reply_to_post_id is not None
        asked = await ctx.query(PostQuery(post_id=payload.reply_to_post_id))
        question = f"{asked.thread_title}\n{asked.body}".replace(f"@{HANDLE}", "").strip()
        # reads run one after another: a reader may share one database connection (a replay inside a request)
        here = await ctx.query(ThreadQuery(thread_id=payload.thread_id, asker_user_id=payload.user_id, limit=1))
        related = await ctx.query(
            RelatedThreadsQuery(
                text=question, k=8, asker_user_id=payload.user_id, exclude_thread_ids=[payload.thread_id]
            )
        )
        threads = [
            await ctx.query(ThreadQuery(thread_id=candidate.thread_id, asker_user_id=payload.user_id))
            for candidate in related[: config.max_sources + 2]
        ]
        sources: list[Source] = []
        for thread in threads:
            answer = best_answer(thread, question)
            if answer is not None:
                sources.append(Source(thread=thread, answer=answer, confidence=confidence(question, thread, answer)))
        sources.sort(key=lambda s: -s.confidence)
        best = sources[0].confidence if sources else 0.0
        if best < config.confidence_threshold:
            reasons = [
                f"no earlier thread matches well enough"
                f" (best confidence {best:.2f} < {config.confidence_threshold:.2f})"
                if sources
                else "no earlier thread with an answer matches this question"
            ]
            return self._escalate(ctx.tenant, config, payload, here.category_slug, best, reasons)
        cited = [s for s in sources if s.confidence >= config.confidence_threshold][: config.max_sources]
        citations = [
            Citation(
                title=s.thread.title,
                url=thread_url(ctx.tenant, s.thread.id, s.answer.id),
                thread_id=s.thread.id,
                post_id=s.answer.id,
                number=n,
            )
            for n, s in enumerate(cited, start=1)
        ]
        reasons = [
            f"[{c.number}] {c.title}: confidence {s.confidence:.2f}" for c, s in zip(citations, cited, strict=True)
        ]
        if llm.name == "offline":
            text = self._extractive(cited[0], citations, best, config)
            for delta in word_deltas(text):
                await on_delta(delta)
            return Decision(
                action="reply",
                confidence=best,
                reasons=reasons,
                citations=citations,
                output=text,
                label=EXTRACTIVE_LABEL,
            )
        return await self._written(
            ctx.tenant, question, cited, citations, best, config, payload, here, llm, on_delta, reasons
        )

    @staticmethod
    def _footer(citations: list[Citation], confidence_value: float) -> str:
        lines = [f"[{c.number}] [{c.title}]({c.url})" for c in citations]
        return "\n\n" + "\n".join(lines) + f"\n\nConfidence: {confidence_value:.0%}"

    def _extractive(self, source: Source, citations: list[Citation], best: float, config: FaqConfig) -> str:
        quoted = trim(source.answer.body, config.max_answer_words)
        kind = "accepted answer" if source.answer.is_solution else "reply"
        return f"This looks answered before. The {kind} in [1]:\n\n> {quoted} [1]" + self._footer(citations, best)

    async def _written(
        self,
        tenant: str,
        question: str,
        cited: list[Source],
        citations: list[Citation],
        best: float,
        config: FaqConfig,
        payload: PostCreate,
        here: ThreadView,
        llm: LLMProvider,
        on_delta: DeltaSink,
        reasons: list[str],
    ) -> Decision:
        blocks = [
            f"[{n}] {s.thread.title}\nQuestion: {trim(s.thread.posts[0].body, 150)}\nAnswer: {trim(s.answer.body, 250)}"
            for n, s in enumerate(cited, start=1)
        ]
        request = LLMRequest(
            system=SYSTEM_PROMPT.format(words=config.max_answer_words)
            + "\n\nEarlier threads:\n\n"
            + "\n\n".join(blocks),
            messages=[Message(role="user", content=question)],
            max_tokens=self.manifest.max_tokens,
            metadata={"task": "answer"},
        )
        result = await llm.generate(request, on_delta)
        text = result.text.strip()
        if text.startswith("NO_ANSWER") or not text:
            return self._escalate(
                tenant, config, payload, here.category_slug, best, ["the model found no answer in the threads"]
            )
        problems = citation_problems(text, len(cited), {s.thread.id for s in cited})
        if problems:
            escalation = self._escalate(
                tenant, config, payload, here.category_slug, best, ["answer rejected: " + p for p in problems]
            )
            return Decision(
                action="rejected",
                confidence=best,
                reasons=[*reasons, *("rejected: " + p for p in problems)],
                citations=citations,
                output=text,
                followups=escalation.followups,
            )
        body = text + self._footer(citations, best)
        return Decision(action="reply", confidence=best, reasons=reasons, citations=citations, output=body)

    @staticmethod
    def _escalate(
        tenant: str, config: FaqConfig, payload: PostCreate, category_slug: str, best: float, reasons: list[str]
    ) -> Decision:
        targets = config.escalation_targets.get(category_slug, [])
        request = DirectiveRequest.of(
            AgentEscalate(
                thread_id=payload.thread_id, post_id=payload.reply_to_post_id, reasons=reasons, target_usernames=targets
            ),
            f"forum.agent.escalate:{tenant}:faq:{payload.reply_to_post_id}",
        )
        return Decision(action="escalate", confidence=best, reasons=reasons, followups=[request])
