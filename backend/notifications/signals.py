"""Notification signals. `user_id` routes them to the `user:<id>` websocket channel only."""

from __future__ import annotations

from engine.signals import SignalPayload, signal_type


@signal_type("forum.notification.created")
class NotificationCreated(SignalPayload, frozen=True, kw_only=True):
    notification_id: str
    user_id: str
    kind: str  # mention | reply | agent_escalation
    post_id: str | None
    thread_id: str | None
    actor_user_id: str | None
    actor_agent_id: str | None


@signal_type("forum.notification.read")
class NotificationsRead(SignalPayload, frozen=True, kw_only=True):
    user_id: str
    notification_ids: list[str]  # empty with all=True
    all: bool
