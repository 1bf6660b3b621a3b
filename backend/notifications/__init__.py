"""Notifications: a user's mentions, replies and agent escalations (table, HTTP API, `user:<id>` feed)."""
