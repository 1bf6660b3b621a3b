"""The summary agent: TL;DRs of threads (on request, or each time a thread grows by `every_replies`
replies) and a thread's decisions and open questions, written as agent posts through directives.

Offline it writes the TL;DR itself with `summarizer.summarize` (extractive, complete sentences, markdown
turned into readable text, each point attributed and linked to its post); with a model it sends the
posts as readable numbered text and turns the model's `[n]` references into links to the posts.
Reads through the engine's agent API only.
"""

from __future__ import annotations

import re
from typing import Any

from agent_packages.forum_contract.directives import DigestPost, ThreadExtractDecisions, ThreadSummarize
from agent_packages.forum_contract.reads import DigestDataQuery, ThreadQuery, ThreadReplyCountQuery
from agent_packages.forum_contract.signals import AgentResponseRequested, DigestDue, PostCreated, payload_of
from agent_packages.forum_summary_agent.summarizer import (
    Point,
    PostText,
    decisions_and_open_questions,
    plain_blocks,
    summarize,
)
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
    version="2.0.0",
    title="Summary agent",
    description="Writes a readable TL;DR of long threads (each point linked to its post), with the thread's "
    "decisions and open questions, when someone asks for one or every N replies; a weekly digest per category.",
    agent_handle="summary-agent",
    consumes=("forum.post.created", "forum.digest.due", "forum.agent.response.requested"),
    directives=("forum.thread.summarize", "forum.thread.extract_decisions", "forum.digest.post"),
    permissions=("read_forum", "post_as_agent"),
    rate_limit_per_hour=20,
    daily_cost_cap_usd=1.0,
    max_tokens=500,
    default_config={"every_replies": 20, "max_words": 120, "digest": True},
)

SYSTEM_PROMPT = (
    "You are the summary agent of an online community forum, clearly labelled as an AI agent. Summarize the "
    "numbered posts of the thread below as 3 to 5 short bullet points of complete sentences in plain prose (no "
    "tables, code or headings): the question, the answers that found agreement, and what is still open. Name "
    "who said what. End every bullet with the number of the post it comes from in brackets, like [2]. Use "
    "only what the posts say; at most {words} words."
)
_REF_RE = re.compile(r"\[(\d{1,3})\]")


def _payload(directive: DirectiveView) -> ThreadSummarize | ThreadExtractDecisions:
    if directive.type == ThreadExtractDecisions.directive_type:
        return directive.payload_as(ThreadExtractDecisions)
    return directive.payload_as(ThreadSummarize)


def summarize_request(tenant: str, thread_id: str, version: int) -> DirectiveRequest:
    """The deterministic directive for one version of a thread's summary (spec §8.4)."""
    return DirectiveRequest.of(
        ThreadSummarize(thread_id=thread_id, summary_version=version),
        f"forum.thread.summarize:{tenant}:{thread_id}:{version}",
    )


def decisions_request(tenant: str, thread_id: str, version: int) -> DirectiveRequest:
    return DirectiveRequest.of(
        ThreadExtractDecisions(thread_id=thread_id, summary_version=version),
        f"forum.thread.extract_decisions:{tenant}:{thread_id}:{version}",
    )


def post_link(tenant: str, thread_id: str, post_id: str) -> str:
    return f"/o/{tenant}/t/{thread_id}#post-{post_id}"


def _bullets(points: list[Point]) -> list[str]:
    return [f"- {p.text()} ([post]({p.ref}))" if p.ref else f"- {p.text()}" for p in points]


def render_tldr(title: str, posts: list[PostText], max_words: int, *, decisions: bool = True) -> str:
    points = summarize(posts, max_words=max_words)
    lines = [f"**TL;DR** of {len(posts)} posts:", "", *_bullets(points)]
    if decisions:
        found, open_questions = decisions_and_open_questions(posts)
        if found:
            lines += ["", "**Decisions**", "", *_bullets(found)]
        if open_questions:
            lines += ["", "**Open questions**", "", *_bullets(open_questions)]
    return "\n".join(lines)


def render_decisions(posts: list[PostText]) -> str:
    found, open_questions = decisions_and_open_questions(posts)
    lines = ["**Decisions**", "", *(_bullets(found) or ["- None recorded yet."])]
    lines += ["", "**Open questions**", "", *(_bullets(open_questions) or ["- None: every question got a reply."])]
    return "\n".join(lines)


class SummaryAgent:
    manifest = MANIFEST

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        if signal.type == DigestDue.signal_name:
            due = payload_of(signal, DigestDue)
            if not ctx.config.get("digest", True):
                return []
            return [
                DirectiveRequest.of(
                    DigestPost(category_id=due.category_id, week=due.week),
                    f"forum.digest.post:{ctx.tenant}:{due.category_id}:{due.week}",
                )
            ]
        if signal.type == AgentResponseRequested.signal_name:  # "summarize this thread" (POST …/summary)
            asked = payload_of(signal, AgentResponseRequested)
            if asked.agent != self.manifest.agent_handle:
                return []
            replies = await ctx.query(ThreadReplyCountQuery(thread_id=asked.thread_id))
            return [summarize_request(ctx.tenant, asked.thread_id, replies)]
        if signal.type != PostCreated.signal_name:
            return []
        post = payload_of(signal, PostCreated)
        if post.role != "human" or post.is_first_post:
            return []
        every = int(ctx.config.get("every_replies", 20))
        if every <= 0:
            return []
        replies = await ctx.query(ThreadReplyCountQuery(thread_id=post.thread_id))
        if replies == 0 or replies % every:
            return []
        return [summarize_request(ctx.tenant, post.thread_id, replies)]

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        if directive.type == DigestPost.directive_type:
            return await self._digest(directive, ctx, on_delta)
        payload = _payload(directive)
        thread_id = payload.thread_id
        thread = await ctx.query(ThreadQuery(thread_id=thread_id, for_same_thread=True, human_only=True))
        posts = [
            PostText(author=p.author or "someone", body=p.body, ref=post_link(ctx.tenant, thread_id, p.id))
            for p in thread.posts
        ]
        if not posts:
            return Decision(action="noop", confidence=0.0, reasons=["nothing to summarize"])
        max_words = int(ctx.config.get("max_words", 120))
        version = payload.summary_version
        if directive.type == "forum.thread.extract_decisions":
            text = render_decisions(posts)
            await _stream(text, on_delta)
            return Decision(action="reply", confidence=0.6, reasons=[f"decisions of {len(posts)} posts"], output=text)
        if llm.name == "offline":
            text = render_tldr(thread.title, posts, max_words)
            await _stream(text, on_delta)
            reasons = [f"extractive summary of {len(posts)} posts (version {version})"]
            return Decision(action="reply", confidence=0.6, reasons=reasons, output=text)
        numbered = "\n\n".join(
            f"[{i}] {p.author}: " + " ".join(plain_blocks(p.body)) for i, p in enumerate(posts, start=1)
        )
        request = LLMRequest(
            system=SYSTEM_PROMPT.format(words=max_words) + f"\n\nThread: {thread.title}",
            messages=[Message(role="user", content=numbered)],
            max_tokens=self.manifest.max_tokens,
            metadata={"task": "summarize", "max_sentences": "4"},
        )
        result = await llm.generate(request, on_delta)
        body = result.text.strip()
        if not body:
            return Decision(action="noop", confidence=0.0, reasons=["the model wrote nothing"])

        def link(match: re.Match[str]) -> str:
            n = int(match.group(1))
            return f"([post]({posts[n - 1].ref}))" if 1 <= n <= len(posts) and posts[n - 1].ref else ""

        text = f"**TL;DR** of {len(posts)} posts:\n\n" + _REF_RE.sub(link, body)
        return Decision(
            action="reply",
            confidence=0.75,
            reasons=[f"model summary of {len(posts)} posts (version {version})"],
            output=text,
        )

    async def _digest(self, directive: DirectiveView, ctx: AgentContext, on_delta: DeltaSink) -> Decision:
        payload = directive.payload_as(DigestPost)
        data: dict[str, Any] = await ctx.query(DigestDataQuery(category_id=payload.category_id))
        if data.get("skip"):
            return Decision(action="noop", confidence=0.0, reasons=[str(data["skip"])])
        text = render_digest(ctx.tenant, data, payload.week)
        await _stream(text, on_delta)
        reasons = [f"weekly digest of {data['active_threads']} active thread(s) in {data['category']['name']}"]
        return Decision(action="reply", confidence=0.9, reasons=reasons, output=text)


def render_digest(tenant: str, data: dict[str, Any], week: str) -> str:
    def lines(items: list[dict[str, Any]], empty: str) -> list[str]:
        if not items:
            return [f"- {empty}"]
        out = []
        for t in items:
            activity = f"{t['posts']} new post(s)" + (f", {t['reactions']} like(s)" if t["reactions"] else "")
            out.append(f"- [{t['title']}](/o/{tenant}/t/{t['id']}): {activity}.")
        return out

    return "\n".join(
        [
            f"**Weekly digest of {data['category']['name']}** ({week}): {data['active_threads']} active thread(s).",
            "",
            "**Top threads**",
            "",
            *lines(data["top"], "Nothing new this week."),
            "",
            "**Waiting for an answer**",
            "",
            *lines(data["unanswered"], "Every question got a reply."),
            "",
            "**Solved this week**",
            "",
            *lines(data["solved"], "No thread was marked solved."),
        ]
    )


async def _stream(text: str, on_delta: DeltaSink) -> None:
    """Offline text streams word by word through the same draft path as a model's."""
    for word in re.findall(r"\S+\s*", text):
        await on_delta(word)
