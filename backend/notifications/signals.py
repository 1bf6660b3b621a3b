"""Notification signals: defined in the typed forum contract, re-exported for the backend."""

from agent_packages.forum_contract.signals import NotificationCreated, NotificationsRead

__all__ = ["NotificationCreated", "NotificationsRead"]
