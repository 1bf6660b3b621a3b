"""Signals emitted by org and membership changes (registered once, in the process-wide registry)."""

from __future__ import annotations

from engine.signals import SignalPayload, signal_type


@signal_type("org.created")
class OrgCreated(SignalPayload, frozen=True, kw_only=True):
    org_id: str
    slug: str
    name: str
    visibility: str
    created_by: str


@signal_type("org.member.added")
class MemberAdded(SignalPayload, frozen=True, kw_only=True):
    user_id: str
    username: str
    role: str
    added_by: str


@signal_type("org.member.role_changed")
class MemberRoleChanged(SignalPayload, frozen=True, kw_only=True):
    user_id: str
    username: str
    old_role: str
    new_role: str
    changed_by: str


@signal_type("org.token.created")
class TokenCreated(SignalPayload, frozen=True, kw_only=True):
    token_id: str
    name: str
    scopes: list[str]
    created_by: str


@signal_type("org.token.revoked")
class TokenRevoked(SignalPayload, frozen=True, kw_only=True):
    token_id: str
    name: str
    created_by: str  # the user the token acted as: their sockets authenticated with it are closed
    revoked_by: str


@signal_type("org.member.removed")
class MemberRemoved(SignalPayload, frozen=True, kw_only=True):
    user_id: str
    username: str
    old_role: str
    removed_by: str
