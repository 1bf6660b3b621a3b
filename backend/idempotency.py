"""Idempotent writes: the `Idempotency-Key` header (Stripe semantics), implemented once for every route
that opts in with `opt={"idempotent": True}` (creating threads, posts, reactions, flags).

- same user, same key, same request (method, path and JSON body) → the first response is replayed, with
  its status and body (and `Idempotent-Replayed: true`); nothing is written again;
- same key, different request → 422; the same key while its first request is still running → 409;
- keys are per user (the signed-in user, or a token's user) and kept 24 hours.

The key row lives in PostgreSQL (`public.idempotency_keys`) and is written in the request's own
transaction, after the handler and only for a successful response: a write that rolls back leaves no key,
a committed write always leaves its key (STYLE.md #8). A transaction-scoped advisory lock on (user, key)
tells a retry that the first attempt is still in flight.

This ASGI middleware runs inside `RequestContextMiddleware` (listed after it in backend/app.py), i.e.
inside the request's transaction, after authentication.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.spec import Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.context import RequestContext, provide_ctx
from engine import db

IDEMPOTENT: dict[str, object] = {"idempotent": True}  # a route's `opt` that turns the header on
HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotent-replayed"
MAX_KEY_LENGTH = 255
RETENTION_HOURS = 24


class _BadKey(Exception):
    pass


def _key_from(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == HEADER:
            try:
                key = value.decode("ascii")
            except UnicodeDecodeError:
                raise _BadKey from None
            if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
                raise _BadKey
            return key
    return None


def lock_id(user_id: str, key: str) -> int:
    """The advisory lock (a signed 64-bit integer) of one user's key."""
    digest = hashlib.sha256(f"idempotency\0{user_id}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What "the same request" means: method, path and the JSON body with its keys sorted (so a client
    that re-serializes its body still matches); a body that is not JSON counts byte for byte."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except (msgspec.DecodeError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(method.encode() + b"\0" + path.encode() + b"\0" + canonical).digest()


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, *, replayed: bool = False) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((REPLAYED_HEADER, b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, detail: str) -> None:
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    await _respond(send, status, body, b"application/json")


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole request body, unless it passes `limit` (then what was read, and False)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler: Any = scope.get("route_handler")
        if scope["type"] != "http" or handler is None or not handler.opt.get("idempotent"):
            await self.app(scope, receive, send)
            return
        try:
            key = _key_from(scope)
        except _BadKey:
            await _error(send, 400, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters")
            return
        ctx: RequestContext = provide_ctx()
        if key is None or ctx.principal is None:  # anonymous writes are refused by the handler anyway
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive, ctx.settings.max_body_bytes)
        receive = _replaying(body, complete, receive)
        if not complete:  # too large (the app answers 413) or the client went away
            await self.app(scope, receive, send)
            return
        user_id = ctx.principal.user_id
        if not await db.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_id(user_id, key)):
            await _error(send, 409, "a request with this Idempotency-Key is still in progress; retry later")
            return
        print_ = fingerprint(scope["method"], scope["path"], body)
        row = await db.fetchrow(
            "SELECT fingerprint, status, content_type, body,"
            f" created_at > now() - interval '{RETENTION_HOURS} hours' AS fresh"
            " FROM idempotency_keys WHERE user_id = $1::uuid AND key = $2",
            user_id,
            key,
        )
        if row is not None and row["fresh"]:
            if bytes(row["fingerprint"]) != print_:
                await _error(send, 422, "this Idempotency-Key was used for a different request")
                return
            await _respond(send, row["status"], bytes(row["body"]), row["content_type"].encode(), replayed=True)
            return
        if row is not None:  # expired: the key is free again
            await db.execute("DELETE FROM idempotency_keys WHERE user_id = $1::uuid AND key = $2", user_id, key)

        status = 500
        content_type = b"application/json"
        chunks: list[bytes] = []

        async def record(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, record)
        if 200 <= status < 300:  # an error rolls the request back: no key is kept for it
            await db.execute(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, content_type, body)"
                " VALUES ($1::uuid, $2, $3, $4, $5, $6)",
                user_id,
                key,
                print_,
                status,
                content_type.decode("latin-1"),
                b"".join(chunks),
            )


async def purge_expired_keys(limit: int = 10_000) -> int:
    """Delete keys older than the retention (at most `limit` per call); the worker runs it."""
    result = await db.pool().execute(
        "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys"
        f" WHERE created_at < now() - interval '{RETENTION_HOURS} hours' LIMIT $1))",
        limit,
    )
    return int(result.split()[-1])


def document_idempotency_key(app: Litestar) -> None:
    """Startup hook: the OpenAPI document names the header on every route that accepts it."""
    paths = app.openapi_schema.paths or {}
    header = Parameter(
        name="Idempotency-Key",
        param_in="header",
        required=False,
        description="Retry-safe writes: the same key and body replay the first response (24 h, per user); "
        "another body is 422, a request with this key still running is 409.",
        schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH, pattern=r"^[ -~]+$"),
    )
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = paths.get(re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path))
        if item is None:
            continue
        for handler in route.route_handlers:
            if not handler.opt.get("idempotent"):
                continue
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None)
                if operation is None:
                    continue
                parameters = list(operation.parameters or [])
                if not any(getattr(p, "name", None) == header.name for p in parameters):
                    parameters.append(header)
                operation.parameters = parameters
