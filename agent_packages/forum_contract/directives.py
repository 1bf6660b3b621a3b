"""Typed payloads of the forum's directives (spec §8). Packages build requests with
`DirectiveRequest.of(Payload(...), key)`; the domain that applies a directive decodes it with
`directive.payload_as(Payload)`. `permission` is what a package's manifest must declare to request it."""

from __future__ import annotations

from typing import ClassVar

from engine.agents.api import DirectivePayload


class PostCreate(DirectivePayload, frozen=True, kw_only=True):
    """An agent post in a thread (the decision's text), e.g. a welcome or an answer."""

    directive_type: ClassVar[str] = "forum.post.create"
    permission: ClassVar[str] = "post_as_agent"
    purpose: str  # welcome | faq_answer | ...
    thread_id: str
    reply_to_post_id: str | None = None
    user_id: str | None = None  # whom the post is for (the welcomed member, the asker)
    # a post that must never be marked as a thread's solution (a greeting)
    solution_eligible: bool = True


class ThreadSummarize(DirectivePayload, frozen=True, kw_only=True):
    directive_type: ClassVar[str] = "forum.thread.summarize"
    permission: ClassVar[str] = "post_as_agent"
    thread_id: str
    summary_version: int


class ThreadExtractDecisions(DirectivePayload, frozen=True, kw_only=True):
    directive_type: ClassVar[str] = "forum.thread.extract_decisions"
    permission: ClassVar[str] = "post_as_agent"
    thread_id: str
    summary_version: int


class FlagCreate(DirectivePayload, frozen=True, kw_only=True):
    """A moderation flag with the agent's category, scores, rules and reasons (applied by moderation)."""

    directive_type: ClassVar[str] = "forum.moderation.flag.create"
    permission: ClassVar[str] = "create_flags"


class PostHide(DirectivePayload, frozen=True, kw_only=True):
    """Hide a post (never delete); waits for a moderator unless the org's policy waives it."""

    directive_type: ClassVar[str] = "forum.post.hide"
    permission: ClassVar[str] = "hide_posts"


class AgentEscalate(DirectivePayload, frozen=True, kw_only=True):
    """An agent is not confident: page humans (the category's escalation targets, else the moderators)."""

    directive_type: ClassVar[str] = "forum.agent.escalate"
    permission: ClassVar[str] = "escalate"
    thread_id: str
    post_id: str | None
    reasons: list[str]
    target_usernames: list[str] = []


class UserNotify(DirectivePayload, frozen=True, kw_only=True):
    """A notification to one member (e.g. a welcome when the agent may not post in the thread)."""

    directive_type: ClassVar[str] = "forum.user.notify"
    permission: ClassVar[str] = "notify_users"
    user_id: str
    kind: str
    thread_id: str | None = None
    post_id: str | None = None


class ExpertNotify(DirectivePayload, frozen=True, kw_only=True):
    """Ask one member to look at an unanswered or escalated thread (caps re-checked when applied)."""

    directive_type: ClassVar[str] = "forum.expert.notify"
    permission: ClassVar[str] = "notify_members"
    thread_id: str
    user_id: str
    username: str
    reason: str  # unanswered | escalated
    score: float
    evidence: dict[str, int]  # replies, accepted, helpful
    per_thread: int
    per_user_daily: int


class DigestPost(DirectivePayload, frozen=True, kw_only=True):
    """A category's weekly digest as an agent post in its digest thread, once per category and week."""

    directive_type: ClassVar[str] = "forum.digest.post"
    permission: ClassVar[str] = "post_as_agent"
    category_id: str
    week: str


ALL_DIRECTIVES: tuple[type[DirectivePayload], ...] = (
    PostCreate,
    ThreadSummarize,
    ThreadExtractDecisions,
    FlagCreate,
    PostHide,
    AgentEscalate,
    UserNotify,
    ExpertNotify,
    DigestPost,
)
