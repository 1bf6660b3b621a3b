"""The websocket endpoint `/api/v1/o/{org}/ws` and the realtime layer's lifespan.

RequestContextMiddleware wraps HTTP only, so the socket authenticates here (session cookie or bearer
token, through the same `authenticate`/`authorize_org` as HTTP) in its own short transaction, then
hands over to `realtime.session.serve_socket`. Refusals close the socket with 4000+status
(4401, 4403, 4404) and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.cookies import CookieError, SimpleCookie
from typing import Any

from litestar import Litestar, WebSocket, websocket
from litestar.params import FromPath

from backend.context import RequestContext, Services
from backend.errors import unavailable_part
from backend.identity.service import SESSION_COOKIE, hash_ip, session_key
from backend.middleware import (
    Reject,
    authenticate,
    authorize_org,
    check_same_origin,
    correlation_id_from,
    request_headers,
)
from backend.realtime_auth import OrgChannelAuthorizer
from backend.realtime_channels import channels_for, event_data
from backend.realtime_revocation import OrgSocketAuthority, socket_credential
from backend.settings import Settings
from engine import db
from realtime.protocol import close_code_for_status
from realtime.runtime import Realtime, RealtimeConfig
from realtime.session import SocketIdentity, serve_socket

log = logging.getLogger("forum.realtime")
TRY_AGAIN_LATER = 1013  # RFC 6455 close code: the server is temporarily unable to serve


def realtime_config(settings: Settings) -> RealtimeConfig:
    return RealtimeConfig(
        queue_size=settings.ws_queue_size,
        replay_buffer=settings.ws_replay_buffer,
        max_subscriptions=settings.ws_max_subscriptions,
        max_message_bytes=settings.ws_max_message_bytes,
        max_ops_per_s=settings.ws_max_ops_per_s,
        max_connections_per_user=settings.ws_max_connections_per_user,
        max_connections_per_ip=settings.ws_max_connections_per_ip,
        stall_timeout_s=settings.ws_ping_interval_s + settings.ws_ping_timeout_s,
        check_interval_s=max(0.5, min(5.0, settings.ws_ping_interval_s)),
        replay_max_entries=settings.ws_replay_max_entries,
        recheck_interval_s=settings.ws_recheck_interval_s,
    )


@websocket("/api/v1/o/{org:str}/ws", name="org_socket")
async def org_socket(socket: WebSocket[Any, Any, Any], org: FromPath[str]) -> None:
    """Live events of one org: subscribe/unsubscribe/ping, resume with `since` (see API.md)."""
    rt: Realtime = socket.app.state.realtime
    services: Services = socket.app.state.services
    headers = request_headers(socket.scope)
    client = socket.scope.get("client") or ("unknown", 0)
    ctx = RequestContext(
        services=services,
        principal=None,
        ip_hash=hash_ip(services.settings.secret_key, str(client[0])),
        correlation_id=correlation_id_from(headers),
    )
    revocation_seq = rt.sockets.seq  # a revocation arriving from here on re-checks this socket
    try:
        async with db.transaction():
            ctx.principal = await authenticate(services, headers, "GET")
            if ctx.principal is not None and ctx.principal.via == "session":
                # A page from another origin (scheme included) must not ride on the session cookie (CSWSH).
                check_same_origin(socket.scope, headers, services.settings.public_origin)
            await authorize_org(ctx, org)
    except Reject as rejection:
        await socket.accept()
        with contextlib.suppress(Exception):
            await socket.close(code=close_code_for_status(rejection.status), reason=rejection.detail[:120])
        return
    except Exception as exc:
        part = unavailable_part(exc, at_boundary=True)
        if part is None:
            raise
        # An outage is not a refusal: 1013 "try again later", so clients reconnect with backoff.
        log.warning("outage: %s unavailable for a new socket (%s)", part, type(exc).__name__)
        if part == "database":
            await db.expire_connections()
        await socket.accept()
        with contextlib.suppress(Exception):
            await socket.close(code=TRY_AGAIN_LATER, reason=f"the {part} is unavailable; try again shortly")
        return
    identity = SocketIdentity(
        tenant=org,
        user_id=ctx.principal.user_id if ctx.principal else None,
        ip=ctx.ip_hash,
        context=ctx,
        credential=_credential_of(ctx, headers),
        revocation_seq=revocation_seq,
    )
    await serve_socket(rt, socket, identity)


def _credential_of(ctx: RequestContext, headers: dict[str, str]) -> str | None:
    principal = ctx.principal
    if principal is None:
        return None
    jar: SimpleCookie = SimpleCookie()
    with contextlib.suppress(CookieError):
        jar.load(headers.get("cookie", ""))
    morsel = jar.get(SESSION_COOKIE)
    token = morsel.value if morsel is not None else None
    return socket_credential(principal.via, session_key(token) if token else None, principal.token_id)


def _chain_signal_handlers(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` on SIGTERM/SIGINT before the server's own handler, so sockets get 1001 "going
    away" before uvicorn's connection shutdown (1012). Returns a function that restores the handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(callback)
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)
        elif chained == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)

    return restore


@asynccontextmanager
async def realtime_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Start the hub and the partition readers (after the services lifespan); stop them gracefully."""
    services: Services = app.state.services
    settings = services.settings
    _, redis_url = settings.require_urls()
    rt = Realtime(
        redis_url,
        services.streams,
        channels_for,
        OrgChannelAuthorizer(),
        realtime_config(settings),
        authority=OrgSocketAuthority(services.redis),
        shape=event_data,
    )
    app.state.realtime = rt
    await rt.start()
    restore = _chain_signal_handlers(rt.hub.begin_shutdown)
    # Everything imported and built at startup lives for the whole process: keep it out of the cyclic
    # GC's full collections, whose pauses otherwise show up as fan-out tail latency.
    gc.freeze()
    try:
        yield
    finally:
        restore()
        await rt.stop()
