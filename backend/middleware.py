"""The request boundary: authenticate, check CSRF, resolve and authorize the org from the URL, and own
the transaction.

This is the ONE place a tenant is set. Every /api request runs in one Postgres transaction, in the
org's schema when the URL names an org. The response is held until the transaction has committed (a
4xx/5xx response rolls it back), and the signals it wrote are published to Redis only after commit.
"""

from __future__ import annotations

import logging
import uuid
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.boundary import run_in_fresh_context, unit_of_work
from backend.context import ROLE_RANK, Principal, RequestContext, Role, Services
from backend.errors import OUTAGE_SCOPE_KEY, UNAVAILABLE_RETRY_AFTER_S, unavailable_body, unavailable_part
from backend.identity.service import (
    CSRF_HEADER,
    SESSION_COOKIE,
    hash_ip,
    load_session,
    principal_for_token,
)
from backend.input_checks import Problem, check_json_body, check_path_and_query, is_json_media_type
from backend.orgs.service import find_org, role_of
from engine import db
from engine.tenancy import InvalidSlug, validate_slug

log = logging.getLogger("forum.request")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_SCOPES = frozenset({"write", "moderate", "admin"})
COOKIE_SETTING_PREFIX = "/api/v1/auth/"  # login, register, logout: no CSRF token exists yet
_SCOPE_ROLE: dict[str, Role] = {
    "admin": "admin",
    "moderate": "moderator",
    "write": "member",
    "read": "member",
}


class Reject(Exception):
    """Stop the request at the boundary with an API error (API.md's shape: status_code, detail, extra)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        extra: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra
        self.headers = headers or {}

    @classmethod
    def from_problem(cls, problem: Problem) -> Reject:
        return cls(
            problem.status,
            problem.detail,
            extra=[{"key": problem.key, "message": problem.detail}],  # the shape errors.Invalid uses
        )


async def send_json_error(
    send: Send,
    status: int,
    detail: str,
    *,
    extra: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    content: dict[str, object] = {"status_code": status, "detail": detail}
    if extra:
        content["extra"] = extra
    body = msgspec.json.encode(content)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_rejection(send: Send, rejection: Reject) -> None:
    await send_json_error(send, rejection.status, rejection.detail, extra=rejection.extra, headers=rejection.headers)


async def read_checked_body(scope: Scope, receive: Receive, headers: dict[str, str], max_bytes: int) -> Receive:
    """Read the whole request body (bounded), check it (JSON only, no NUL, bounded depth) and return a
    `receive` that replays it to the app. Raises Reject with 413/415/400."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise Reject(413, f"request body larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    trailing: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            trailing.append(message)  # a disconnect: hand it to the app after the body
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise Reject(413, f"request body larger than {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if body:
        if not is_json_media_type(headers.get("content-type", "")):
            raise Reject(415, "request bodies must be JSON (Content-Type: application/json)")
        problem = check_json_body(body)
        if problem is not None:
            raise Reject.from_problem(problem)
    replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *trailing]

    async def replaying_receive() -> Message:
        if replay:
            return replay.pop(0)
        return await receive()

    return replaying_receive


def request_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def correlation_id_from(headers: dict[str, str]) -> str:
    candidate = headers.get("x-request-id", "")
    try:
        return str(uuid.UUID(candidate))
    except ValueError:
        return str(uuid.uuid4())


async def authenticate(services: Services, headers: dict[str, str], method: str) -> Principal | None:
    authorization = headers.get("authorization", "")
    if authorization:
        kind, _, credential = authorization.partition(" ")
        if kind.lower() != "bearer" or not credential.strip():
            raise Reject(401, "unsupported Authorization header: use 'Bearer <token>'")
        principal = await principal_for_token(credential.strip())
        if principal is None:
            raise Reject(401, "invalid or revoked API token")
        return principal
    session_token = _cookies(headers).get(SESSION_COOKIE)
    if not session_token:
        return None
    session = await load_session(services.redis, session_token)
    if session is None:
        return None
    username = await db.fetchval("SELECT username FROM users WHERE id = $1", uuid.UUID(session.user_id))
    if username is None:
        return None
    if method not in SAFE_METHODS and headers.get(CSRF_HEADER, "") != session.csrf:
        raise Reject(403, f"CSRF check failed: send the csrftoken cookie's value in {CSRF_HEADER}")
    return Principal(user_id=session.user_id, username=username, via="session")


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalized_origin(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower-cased, without the scheme's default port; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = host if port is None or str(port) == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}"


def own_origin(scope: Scope, headers: dict[str, str], public_origin: str) -> str | None:
    if public_origin:
        return normalized_origin(public_origin)
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return normalized_origin(f"{scheme}://{headers.get('host', '')}")


def check_same_origin(scope: Scope, headers: dict[str, str], public_origin: str) -> None:
    """Refuse a browser request sent from another origin (scheme, host and port all compared): the Origin
    header, else the Referer's origin. Requests with neither (non-browser clients) pass."""
    sent = headers.get("origin")
    if sent is None and headers.get("referer"):
        sent = headers["referer"]
    if sent is None:
        return
    expected = own_origin(scope, headers, public_origin)
    if expected is None or normalized_origin(sent) != expected:
        raise Reject(403, "cross-origin request refused: the Origin (or Referer) is not this site")


def unavailable(part: str) -> Reject:
    body = unavailable_body(part)
    return Reject(503, str(body["detail"]), headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})


def reads_only(scope: Scope, method: str) -> bool:
    """A safe method, or a POST route that only computes an answer (`opt={"reads_only": True}`: a preview, a
    search with a body, a dry run) and so is open to read-only tokens."""
    if method in SAFE_METHODS:
        return True
    handler = scope.get("route_handler")
    return bool(handler is not None and handler.opt.get("reads_only"))


def may_write(principal: Principal) -> bool:
    """Sessions may write (roles decide what); tokens only with a write, moderate or admin scope."""
    return principal.via != "token" or any(s in WRITE_SCOPES for s in principal.token_scopes)


async def authorize_org(ctx: RequestContext, slug: str) -> None:
    """Resolve the org named by the URL and the caller's role in it. Private orgs are 404 to
    non-members; a token is bound to its own org."""
    try:
        validate_slug(slug)
    except InvalidSlug:
        raise Reject(404, "org not found") from None
    org = await find_org(slug)
    if org is None:
        raise Reject(404, "org not found")
    principal = ctx.principal
    role: Role | None = None
    can_write = False
    if principal is not None:
        member_role = await role_of(principal.user_id, org.id)
        if principal.via == "token":
            if principal.token_org_id != org.id:
                raise Reject(
                    404 if org.visibility == "private" else 403,
                    "org not found" if org.visibility == "private" else "this token acts only in its own org",
                )
            if member_role is None:
                raise Reject(403, "the token's creator is no longer a member of this org")
            granted = max((_SCOPE_ROLE[s] for s in principal.token_scopes), key=ROLE_RANK.__getitem__)
            role = min(granted, member_role, key=ROLE_RANK.__getitem__)  # type: ignore[assignment]
            can_write = may_write(principal)
        else:
            role = member_role  # type: ignore[assignment]
            can_write = True
    if org.visibility == "private" and role is None:
        raise Reject(404, "org not found")
    ctx.org, ctx.role, ctx.can_write = org, role, can_write


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            # Every request and socket starts from empty contextvars (issue 11 item 1).
            await run_in_fresh_context(self._dispatch(scope, receive, send))
        else:
            await self.app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        services: Services = scope["litestar_app"].state.services
        headers = request_headers(scope)
        method = scope["method"]
        client = scope.get("client") or ("unknown", 0)
        ctx = RequestContext(
            services=services,
            principal=None,
            ip_hash=hash_ip(services.settings.secret_key, str(client[0])),
            correlation_id=correlation_id_from(headers),
        )
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        async def prepare(c: RequestContext) -> None:
            c.principal = await authenticate(services, headers, method)
            if c.principal is not None and not reads_only(scope, method) and not may_write(c.principal):
                # Scopes are enforced here, for every unsafe route at once (issue 11 item 9).
                raise Reject(403, "this token may only read: its scopes do not include write")
            slug = scope.get("path_params", {}).get("org")
            if slug is not None:
                await authorize_org(c, str(slug))

        try:
            problem = check_path_and_query(scope.get("path_params", {}), scope["path"], scope.get("query_string", b""))
            if problem is not None:
                raise Reject.from_problem(problem)
            if method not in SAFE_METHODS:
                if scope["path"].startswith(COOKIE_SETTING_PREFIX):
                    check_same_origin(scope, headers, services.settings.public_origin)  # login CSRF
                receive = await read_checked_body(scope, receive, headers, services.settings.max_body_bytes)
            async with unit_of_work(ctx, prepare=prepare) as uow:
                await self.app(scope, receive, hold)
                if _status_of(held) >= 400:
                    uow.mark_rollback()
        except Reject as rejection:
            await send_rejection(send, rejection)
            return
        except Exception as exc:
            part = unavailable_part(exc, at_boundary=True)
            if part is None:
                raise
            log.warning("outage: %s unavailable (%s)", part, type(exc).__name__)
            scope[OUTAGE_SCOPE_KEY] = part  # type: ignore[literal-required]
            held.clear()
            await send_rejection(send, unavailable(part))
        finally:
            if scope.get(OUTAGE_SCOPE_KEY) == "database":
                await db.expire_connections()
        for message in held:
            await send(message)


def _status_of(messages: list[Message]) -> int:
    for message in messages:
        if message["type"] == "http.response.start":
            return int(message["status"])
    return 500
