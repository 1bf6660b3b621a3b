"""Re-authorization of open websockets on revocation (the realtime `SocketAuthority` of this app).

Which committed signals take access away (a role changed, a member removed, a token revoked) and, for a
socket, whether its credential and org access still hold: its session still exists in Redis (logout
deletes it), its API token is not revoked, and `authorize_org` still admits its principal. A socket
whose credential is gone closes with 4401, one whose membership is gone (or whose org refuses it now)
with 4403; otherwise realtime re-checks its channels through `OrgChannelAuthorizer`.
"""

from __future__ import annotations

import uuid
from typing import cast

from redis.asyncio import Redis

from backend.context import RequestContext
from backend.middleware import Reject, authorize_org
from engine import db
from engine.signals import Signal
from realtime.revocation import RevocationNotice
from realtime.session import SocketIdentity

CLOSE_AUTH_GONE = 4401
CLOSE_MEMBERSHIP_GONE = 4403
SESSION_CREDENTIAL_PREFIX = "session:"  # identity.credential of a cookie socket: its session's Redis key
TOKEN_CREDENTIAL_PREFIX = "token:"


class OrgSocketAuthority:
    revocation_types = frozenset({"org.member.role_changed", "org.member.removed", "org.token.revoked"})

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def revocation_of(self, signal: Signal) -> RevocationNotice | None:
        payload = signal.payload
        user_id = payload.get("created_by") if signal.type == "org.token.revoked" else payload.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            return None
        return RevocationNotice(user_id=user_id, tenant=signal.tenant, reason=signal.type)

    async def recheck(self, identity: SocketIdentity) -> tuple[int, str] | None:
        base = cast(RequestContext, identity.context)
        principal = base.principal
        if principal is None:
            return None
        credential = identity.credential or ""
        if principal.via == "session" and credential.startswith(SESSION_CREDENTIAL_PREFIX):
            if not await self.redis.exists(credential):
                return CLOSE_AUTH_GONE, "signed out: the session has ended"
        async with db.transaction():
            if principal.via == "token":
                alive = await db.fetchval(
                    "SELECT revoked_at IS NULL FROM api_tokens WHERE id = $1", uuid.UUID(principal.token_id or "")
                )
                if not alive:
                    return CLOSE_AUTH_GONE, "the API token was revoked"
            ctx = RequestContext(
                services=base.services,
                principal=principal,
                ip_hash=base.ip_hash,
                correlation_id=base.correlation_id,
            )
            try:
                await authorize_org(ctx, identity.tenant)
            except Reject as rejection:
                return CLOSE_MEMBERSHIP_GONE, f"access to this org was revoked ({rejection.detail})"
            if base.role is not None and ctx.role is None:
                return CLOSE_MEMBERSHIP_GONE, "no longer a member of this org"
        return None


def socket_credential(via: str, session_key: str | None, token_id: str | None) -> str | None:
    """The handle `recheck` uses: a cookie socket's session key, a bearer socket's token id."""
    if via == "session" and session_key:
        return session_key
    if via == "token" and token_id:
        return TOKEN_CREDENTIAL_PREFIX + token_id
    return None
