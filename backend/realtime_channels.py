"""Which websocket channels a committed signal is delivered to (the hub's `channels_for`).

- forum content signals → `org`, plus `category:<id>` / `thread:<id>` when the payload names them;
- moderation signals (flags, actions, spam/toxicity heuristics) → `moderation` only: who flagged what is
  not for every reader;
- agent signals (`forum.agent.*`) and the agent runtime's own (`agent.*`: directives, executions) →
  `agent-activity` only (admins);
- notifications → `user:<id>` only;
- org membership changes → `org`; `forum.thread.viewed` and token creation/revocation → nowhere (who reads what,
  and credentials metadata, are not broadcast).
"""

from __future__ import annotations

from agent_packages.forum_contract.signals import channel_keys
from engine.signals import Signal

_MODERATION_PREFIXES = ("forum.moderation.", "forum.spam.", "forum.toxicity.")
_MODERATION_TYPES = frozenset({"forum.post.flagged"})
_AGENT_PREFIXES = ("forum.agent.", "agent.")
_ORG_TYPES = frozenset({"org.created", "org.member.added", "org.member.role_changed", "org.member.removed"})
_SILENT_TYPES = frozenset({"forum.thread.viewed"})


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
    channels = ["org"]
    if keys.category_id:
        channels.append(f"category:{keys.category_id}")
    if keys.thread_id:
        channels.append(f"thread:{keys.thread_id}")
    return channels
