"""API errors: each is a Litestar HTTPException with the status API.md assigns to its meaning."""

from __future__ import annotations

from typing import Any

from litestar import status_codes as sc
from litestar.exceptions import HTTPException


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
