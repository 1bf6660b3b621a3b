"""The forum's signal types (spec §7.1-§7.3): frozen, versioned payloads in the one registry.

This is the contract between producers (backend services emit these Structs) and consumers (agent
packages, channel routing) that decode them with `payload_of(signal, Type)`; neither side reads payloads as
untyped dicts. Ids are strings (UUIDs). Payloads carry what consumers need to route an event (thread,
category, post, actor) and never secrets; content itself is read through agent reads by id.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from engine.signals import Signal, SignalPayload, signal_type

P = TypeVar("P", bound=SignalPayload)


class SignalMismatch(ValueError):
    """A signal is not of the type its consumer expected, or its payload does not fit the contract."""


def payload_of(signal: Signal, payload_type: type[P]) -> P:
    """The typed payload of `signal`, which must be of `payload_type`'s signal type."""
    if signal.type != payload_type.signal_name:
        raise SignalMismatch(f"signal {signal.type} is not {payload_type.signal_name}")
    try:
        return msgspec.convert(signal.payload, payload_type)
    except msgspec.ValidationError as exc:
        raise SignalMismatch(f"{signal.type} payload does not fit the contract: {exc}") from None


class ChannelKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The routing view every forum payload shares (channel routing decodes this, never raw keys)."""

    user_id: str | None = None
    category_id: str | None = None
    thread_id: str | None = None


def channel_keys(signal: Signal) -> ChannelKeys:
    return msgspec.convert(signal.payload, ChannelKeys)


@signal_type("forum.category.created")
class CategoryCreated(SignalPayload, frozen=True, kw_only=True):
    category_id: str
    slug: str
    name: str
    qa_mode: bool


@signal_type("forum.thread.created")
class ThreadCreated(SignalPayload, frozen=True, kw_only=True):
    thread_id: str
    category_id: str
    first_post_id: str
    author_user_id: str | None
    title: str
    slug: str


@signal_type("forum.thread.viewed")
class ThreadViewed(SignalPayload, frozen=True, kw_only=True):
    thread_id: str
    category_id: str
    viewer: str  # user id, or "anon:<hashed ip>"


@signal_type("forum.thread.updated")
class ThreadUpdated(SignalPayload, frozen=True, kw_only=True):
    thread_id: str
    category_id: str
    changes: list[str]


@signal_type("forum.thread.solved")
class ThreadSolved(SignalPayload, frozen=True, kw_only=True):
    thread_id: str
    category_id: str
    post_id: str
    solved_by: str


@signal_type("forum.thread.closed")
class ThreadClosed(SignalPayload, frozen=True, kw_only=True):
    thread_id: str
    category_id: str
    closed_by: str | None


@signal_type("forum.post.created")
class PostCreated(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    category_id: str
    author_user_id: str | None
    author_agent_id: str | None
    role: str
    reply_to_post_id: str | None
    is_first_post: bool
    mentioned_user_ids: list[str]
    mentioned_agents: list[str]


@signal_type("forum.post.edited")
class PostEdited(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    category_id: str
    revision: int
    edited_by: str
    edit_reason: str | None


@signal_type("forum.post.deleted")
class PostDeleted(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    category_id: str
    deleted_by: str


@signal_type("forum.post.reacted")
class PostReacted(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    category_id: str
    user_id: str
    reaction: str
    added: bool  # False when the reaction was removed


@signal_type("forum.post.flagged")
class PostFlagged(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    category_id: str
    flag_id: str
    reason: str


@signal_type("forum.agent.mentioned")
class AgentMentioned(SignalPayload, frozen=True, kw_only=True):
    agent: str
    post_id: str
    thread_id: str
    category_id: str


@signal_type("forum.moderation.flag.created")
class FlagCreated(SignalPayload, frozen=True, kw_only=True):
    flag_id: str
    post_id: str
    thread_id: str
    category_id: str
    reason: str
    flagger_user_id: str | None
    flagger_agent_id: str | None


@signal_type("forum.moderation.action.taken")
class ModerationActionTaken(SignalPayload, frozen=True, kw_only=True):
    flag_id: str
    post_id: str
    thread_id: str
    category_id: str
    action: str
    moderator_id: str


@signal_type("forum.moderation.member.silenced")
class MemberSilenced(SignalPayload, frozen=True, kw_only=True):
    user_id: str
    username: str
    until: str | None  # ISO time; None lifts the silence
    reason: str | None
    moderator_id: str


@signal_type("forum.spam.detected")
class SpamDetected(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    score: float
    reasons: list[str]


@signal_type("forum.agent.responded")
class AgentResponded(SignalPayload, frozen=True, kw_only=True):
    agent: str
    package: str
    post_id: str
    thread_id: str
    category_id: str
    directive_id: str
    execution_id: str
    confidence: float | None


@signal_type("forum.agent.response.requested")
class AgentResponseRequested(SignalPayload, frozen=True, kw_only=True):
    """Someone asked an agent to answer in a thread (e.g. the "Ask the agent" button)."""

    agent: str  # handle, e.g. "faq-agent"
    thread_id: str
    category_id: str
    post_id: str  # the post to answer (the thread's first post by default)
    requested_by_user_id: str


@signal_type("forum.agent.escalated")
class AgentEscalated(SignalPayload, frozen=True, kw_only=True):
    agent: str
    package: str
    thread_id: str
    category_id: str
    post_id: str | None
    directive_id: str
    reason: str  # the reasons, joined
    reasons: list[str]
    notified_user_ids: list[str]


@signal_type("forum.agent.feedback.recorded")
class AgentFeedbackRecorded(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    agent: str
    user_id: str
    helpful: bool
    reason: str | None = None


@signal_type("forum.notification.created")
class NotificationCreated(SignalPayload, frozen=True, kw_only=True):
    """`user_id` routes it to the `user:<id>` websocket channel only."""

    notification_id: str
    user_id: str
    kind: str  # mention | reply | agent_escalation | welcome
    post_id: str | None
    thread_id: str | None
    actor_user_id: str | None
    actor_agent_id: str | None


@signal_type("forum.notification.read")
class NotificationsRead(SignalPayload, frozen=True, kw_only=True):
    user_id: str
    notification_ids: list[str]  # empty with all=True
    all: bool


@signal_type("forum.agent.summary.generated")
class AgentSummaryGenerated(SignalPayload, frozen=True, kw_only=True):
    agent: str
    package: str
    post_id: str
    thread_id: str
    category_id: str
    directive_id: str
    summary_version: int


@signal_type("forum.toxicity.detected")
class ToxicityDetected(SignalPayload, frozen=True, kw_only=True):
    post_id: str
    thread_id: str
    score: float
    reasons: list[str]


@signal_type("forum.post.hidden")
class PostHidden(SignalPayload, frozen=True, kw_only=True):
    """The post is hidden: by an agent's approved `forum.post.hide` (`hidden_by_agent`, `directive_id`),
    or by a moderator resolving a flag (both None; who moderated is in `forum.moderation.action.taken`,
    which only moderators receive). Goes to the thread's readers, who stop seeing its content."""

    post_id: str
    thread_id: str
    category_id: str
    hidden_by_agent: str | None = None
    directive_id: str | None = None


@signal_type("forum.post.restored")
class PostRestored(SignalPayload, frozen=True, kw_only=True):
    """A moderator restored a hidden post: its readers see its content again."""

    post_id: str
    thread_id: str
    category_id: str


@signal_type("forum.thread.unanswered")
class ThreadUnanswered(SignalPayload, frozen=True, kw_only=True):
    """A question still without a reply after the routing agent's delay (emitted once per thread by the
    worker's sweep)."""

    thread_id: str
    category_id: str
    waited_s: float


@signal_type("forum.digest.due")
class DigestDue(SignalPayload, frozen=True, kw_only=True):
    """A category's weekly digest is due (emitted once per category and ISO week by the worker's sweep)."""

    category_id: str
    week: str  # e.g. 2026-W49
