"""Cursor pagination and id parsing shared by every list route: opaque base64 JSON cursors, bounded
page sizes, malformed ids answered as "not found" (ids in paths) or "invalid" (ids in cursors)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import msgspec

from backend.errors import Invalid, NotFound

MAX_PAGE = 100


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} not found") from None


def encode_cursor(*parts: object) -> str:
    raw = msgspec.json.encode([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = msgspec.json.decode(base64.urlsafe_b64decode(padded.encode()), type=list[str])
    except (ValueError, msgspec.DecodeError):
        raise Invalid("invalid cursor", field="cursor") from None
    if len(parts) != n:
        raise Invalid("invalid cursor", field="cursor")
    return parts


def cursor_time(value: str) -> datetime:
    """A cursor's timestamp: timezone-aware and representable in UTC (`0001-01-01T00:00:00+14:00` is
    not: converting it for the database overflows), else 400."""
    try:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid("invalid cursor", field="cursor") from None


def cursor_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid("invalid cursor", field="cursor") from None


def page_limit(limit: int | None, default: int = 30) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit
