"""Request and response shapes of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

NotificationKind = Literal["mention", "reply", "agent_escalation", "welcome", "expert_request", "digest"]


class NotificationOut(msgspec.Struct):
    id: str
    kind: NotificationKind
    post_id: str | None
    thread_id: str | None
    thread_title: str | None
    actor_user_id: str | None
    actor_username: str | None
    actor_agent_id: str | None
    read_at: datetime | None
    created_at: datetime


class NotificationPage(msgspec.Struct):
    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class MarkReadIn(msgspec.Struct, forbid_unknown_fields=True):
    ids: Annotated[list[str], msgspec.Meta(max_length=500)] | None = None
    all: bool = False


class MarkReadOut(msgspec.Struct):
    updated: int
