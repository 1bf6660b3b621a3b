"""Which websocket channels a committed signal is delivered to (the hub's `channels_for`), and what its
event carries there (the hub's `shape`, `event_data`).

- post creation and deletion, thread changes → `org`, `category:<id>` and `thread:<id>` (lists and
  counters change everywhere);
- edits, reactions, hiding and restoring a post → `thread:<id>` only (only that page draws the post);
- moderation signals (flags, actions, spam/toxicity heuristics) → `moderation` only: who flagged what is
  not for every reader;
- agent signals (`forum.agent.*`) and the agent runtime's own (`agent.*`: directives, executions) →
  `agent-activity` only (admins);
- notifications → `user:<id>` only;
- org membership changes → `org`; `forum.thread.viewed` and token creation/revocation → nowhere (who reads what,
  and credentials metadata, are not broadcast).

Event data: the signal's payload, plus what its stream entry's view (`backend.forum.schemas.LiveView`,
viewer-neutral, rendered once by the producer) holds for that channel: `post` (the object
`GET /posts/{id}` returns, without content while hidden or deleted), `thread` and `category` (counters,
latest activity) and `reactions` (the post's counts). `post` goes to the thread channel only, and to
`moderation` with flag and moderation-action signals, whose view holds the post as moderators see it.
"""

from __future__ import annotations

from typing import Any

from agent_packages.forum_contract.signals import channel_keys
from engine.signals import Signal
from realtime.hub import SKIP, View

_MODERATION_PREFIXES = ("forum.moderation.", "forum.spam.", "forum.toxicity.")
_MODERATION_TYPES = frozenset({"forum.post.flagged"})
_AGENT_PREFIXES = ("forum.agent.", "agent.")
_ORG_TYPES = frozenset({"org.created", "org.member.added", "org.member.role_changed", "org.member.removed"})
_SILENT_TYPES = frozenset({"forum.thread.viewed"})
_THREAD_ONLY_TYPES = frozenset({"forum.post.edited", "forum.post.reacted", "forum.post.hidden", "forum.post.restored"})
_THREAD_VIEW_KEYS = ("post", "thread", "category", "reactions")
_LIST_VIEW_KEYS = ("thread", "category")
_MODERATION_VIEW_KEYS = ("post",)


def channels_for(signal: Signal) -> list[str]:
    kind = signal.type
    keys = channel_keys(signal)
    if kind.startswith("forum.notification."):
        return [f"user:{keys.user_id}"] if keys.user_id else []
    if kind in _MODERATION_TYPES or kind.startswith(_MODERATION_PREFIXES):
        return ["moderation"]
    if kind == "forum.agent.escalated":
        return ["agent-activity", "moderation"]  # an agent paging humans is the moderators' business too
    if kind.startswith(_AGENT_PREFIXES):
        return ["agent-activity"]
    if kind in _ORG_TYPES:
        return ["org"]
    if kind in _SILENT_TYPES or not kind.startswith("forum."):
        return []
    if kind in _THREAD_ONLY_TYPES:
        return [f"thread:{keys.thread_id}"] if keys.thread_id else []
    channels = ["org"]
    if keys.category_id:
        channels.append(f"category:{keys.category_id}")
    if keys.thread_id:
        channels.append(f"thread:{keys.thread_id}")
    return channels


_PRIVATE = b"true"
_NAMING_KEYS = ("title", "slug")  # what a payload may say about a thread beyond ids


def event_data(signal: Signal, channel: str, view: View | None) -> Any:
    """The event's `data` on `channel`: the payload plus the parts of the view that channel draws, or
    SKIP (not on this channel). The `org` channel's subscribers are not checked against private
    categories: their events skip it; without a view (a sweeper republish, a replay) nothing says whether
    the category is private, so `org` gets ids only."""
    if channel == "org":
        if not view:
            return {k: v for k, v in signal.payload.items() if k not in _NAMING_KEYS}
        private = view.get("private")
        if private is not None and bytes(private) == _PRIVATE:
            return SKIP
    if not view:
        return signal.payload
    if channel.startswith("thread:"):
        keys = _THREAD_VIEW_KEYS
    elif channel == "moderation":
        keys = _MODERATION_VIEW_KEYS  # moderators only: the view may hold a hidden post's content
    else:
        keys = _LIST_VIEW_KEYS
    data: dict[str, Any] = dict(signal.payload)
    for key in keys:
        part = view.get(key)
        if part is not None:
            data[key] = part
    return data
