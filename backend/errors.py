"""API errors: each is a Litestar HTTPException with the status API.md assigns to its meaning."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import status_codes as sc
from litestar.exceptions import HTTPException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("forum.errors")
UNAVAILABLE_RETRY_AFTER_S = 5
OUTAGE_SCOPE_KEY = "forum.outage"  # set on the ASGI scope when a request met an outage
# Raised while a request runs: the server went away under an open connection, or refused a new one.
DATABASE_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
)
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)


class ApiError(HTTPException):
    status_code = sc.HTTP_400_BAD_REQUEST


class Invalid(ApiError):
    status_code = sc.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        extra: list[dict[str, Any]] | None = [{"key": field, "message": detail}] if field is not None else None
        super().__init__(detail=detail, extra=extra)


class Unauthorized(ApiError):
    status_code = sc.HTTP_401_UNAUTHORIZED


class Forbidden(ApiError):
    status_code = sc.HTTP_403_FORBIDDEN


class NotFound(ApiError):
    status_code = sc.HTTP_404_NOT_FOUND


class Conflict(ApiError):
    status_code = sc.HTTP_409_CONFLICT


class Unprocessable(ApiError):
    status_code = sc.HTTP_422_UNPROCESSABLE_ENTITY


class RateLimited(ApiError):
    status_code = sc.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, detail: str, *, retry_after: int) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(detail=detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def undecodable_input(_request: Any, exc: UnicodeDecodeError) -> Any:
    """msgspec raises UnicodeDecodeError (not a DecodeError) for invalid UTF-8 inside a JSON string,
    which Litestar would answer with a 500: it is bad input, so 400."""
    from litestar import Response

    body = {
        "status_code": sc.HTTP_400_BAD_REQUEST,
        "detail": "the request is not valid UTF-8",
        "extra": [{"key": "body", "message": f"invalid UTF-8 at byte {exc.start}"}],
    }
    return Response(body, status_code=sc.HTTP_400_BAD_REQUEST)


def unavailable_part(exc: BaseException, *, at_boundary: bool = False) -> str | None:
    """`database` or `redis` when `exc` means that server is unreachable (an outage: 503), else None.
    `at_boundary`: raised while the boundary opened its transaction, where a plain OSError (refused,
    no socket file) can only come from connecting to PostgreSQL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, REDIS_FAILURES):
            return "redis"
        if isinstance(current, asyncpg.InterfaceError):
            if "closed" in str(current) or "closing" in str(current):
                return "database"
        elif isinstance(current, DATABASE_FAILURES):
            return "database"
        elif at_boundary and isinstance(current, OSError):
            return "database"
        current = current.__cause__ or current.__context__
    return None


def unavailable_body(part: str) -> dict[str, Any]:
    return {"status_code": sc.HTTP_503_SERVICE_UNAVAILABLE, "detail": f"the {part} is unavailable; try again shortly"}


def service_unavailable(request: Any, exc: Exception) -> Any:
    """Litestar exception handler for outages met inside a route: 503 with Retry-After, not a 500."""
    from litestar import Response

    part = unavailable_part(exc)
    if part is None:  # e.g. an asyncpg InterfaceError that is a programming error: a real 500
        log.error("unhandled error", exc_info=exc)
        return Response(
            {"status_code": sc.HTTP_500_INTERNAL_SERVER_ERROR, "detail": "Internal Server Error"},
            status_code=sc.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    request.scope[OUTAGE_SCOPE_KEY] = part
    log.warning("outage: %s unavailable (%s)", part, type(exc).__name__)
    return Response(
        unavailable_body(part),
        status_code=sc.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )
