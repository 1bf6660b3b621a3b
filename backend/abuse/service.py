"""Posting limits: per-user intervals (stricter for new accounts), a per-IP throttle over hashed IPs,
an identical-content block, a link cap for new accounts and a body size limit. All limits are org
settings. Moderators and admins are exempt from the per-user limits, not from the per-IP throttle."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import msgspec

from backend.abuse.schemas import ForumSettings, PostingLimits
from backend.content import count_links
from backend.context import RequestContext
from backend.errors import ApiError, Conflict, RateLimited, Unprocessable
from backend.moderation.members import ensure_not_silenced
from engine import db
from engine.tenancy import current_tenant

Kind = Literal["thread", "reply"]


class PayloadTooLarge(ApiError):
    status_code = 413


# Read on every post (limits, spam screen): cached per tenant for a few seconds in this process;
# saving invalidates this process's copy, other nodes see a change within the TTL.
_SETTINGS_TTL_S = 5.0
_settings_cache: dict[str, tuple[float, ForumSettings]] = {}


async def load_forum_settings() -> ForumSettings:
    tenant = current_tenant().slug
    cached = _settings_cache.get(tenant)
    if cached is not None and time.monotonic() - cached[0] < _SETTINGS_TTL_S:
        return cached[1]
    raw = await db.fetchval("SELECT settings FROM forum_settings")
    data = (msgspec.json.decode(raw) if isinstance(raw, str) else raw) if raw is not None else {}
    settings = msgspec.convert(data, ForumSettings)
    _settings_cache[tenant] = (time.monotonic(), settings)
    return settings


async def save_forum_settings(ctx: RequestContext, settings: ForumSettings) -> ForumSettings:
    ctx.require_role("admin")
    _settings_cache.pop(current_tenant().slug, None)
    await db.execute(
        "UPDATE forum_settings SET settings = $1::jsonb, updated_at = now()",
        msgspec.json.encode(settings).decode(),
    )
    return settings


def _keys(ctx: RequestContext, kind: Kind, body: str) -> tuple[str, str, str]:
    org = ctx.require_org().slug
    user = ctx.require_user().user_id
    digest = hashlib.sha256(" ".join(body.split()).lower().encode()).hexdigest()[:32]
    return (
        f"abuse:{org}:last:{kind}:{user}",
        f"abuse:{org}:ip:{ctx.ip_hash}",
        f"abuse:{org}:dup:{user}:{digest}",
    )


async def _is_new_account(user_id: str, limits: PostingLimits) -> bool:
    created = await db.fetchval("SELECT created_at FROM users WHERE id = $1", uuid.UUID(user_id))
    return created is None or (datetime.now(UTC) - created).total_seconds() < limits.new_account_age_s


def _interval(limits: PostingLimits, kind: Kind, new: bool) -> int:
    if kind == "thread":
        return limits.new_thread_interval_s if new else limits.thread_interval_s
    return limits.new_reply_interval_s if new else limits.reply_interval_s


@dataclass(frozen=True, slots=True)
class PostingCheck:
    """What `check_can_post` learned, handed to `record_post` so nothing is looked up twice."""

    limits: PostingLimits
    kind: Kind
    exempt: bool
    new_account: bool


async def check_can_post(ctx: RequestContext, body: str, *, kind: Kind) -> PostingCheck:
    """Raise 413/422/409/429 (403 for a silenced member) when this post may not be written; writes nothing."""
    await ensure_not_silenced(ctx)
    limits = (await load_forum_settings()).posting
    if len(body) > limits.max_body_chars:
        raise PayloadTooLarge(f"posts are limited to {limits.max_body_chars} characters in this org")
    exempt = ctx.has_role("moderator")
    if not limits.enabled:
        return PostingCheck(limits, kind, exempt, new_account=False)
    last_key, ip_key, dup_key = _keys(ctx, kind, body)
    redis = ctx.redis
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(ip_key)
        pipe.ttl(ip_key)
        pipe.ttl(last_key)
        pipe.exists(dup_key)
        ip_count, ip_ttl, last_ttl, duplicate = await pipe.execute()
    if int(ip_count or 0) >= limits.ip_posts_per_minute:
        raise RateLimited("too many posts from this address: slow down", retry_after=ip_ttl if ip_ttl > 0 else 60)
    if exempt:
        return PostingCheck(limits, kind, exempt, new_account=False)
    if last_ttl and last_ttl > 0:
        raise RateLimited(f"you are posting too fast: wait {last_ttl}s", retry_after=last_ttl)
    if duplicate:
        raise Conflict("you posted this same text a moment ago")
    new_account = await _is_new_account(ctx.require_user().user_id, limits)
    if new_account:
        links = count_links(body)
        if links > limits.new_account_max_links:
            raise Unprocessable(
                f"new accounts may include at most {limits.new_account_max_links} links per post ({links} found)"
            )
    return PostingCheck(limits, kind, exempt, new_account)


async def record_post(ctx: RequestContext, body: str, check: PostingCheck) -> None:
    """Count an accepted post against the limits (called after its rows are written)."""
    limits = check.limits
    if not limits.enabled:
        return
    last_key, ip_key, dup_key = _keys(ctx, check.kind, body)
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.set(ip_key, 0, ex=60, nx=True)
        pipe.incr(ip_key)
        if not check.exempt:
            interval = _interval(limits, check.kind, check.new_account)
            if interval:
                pipe.set(last_key, 1, ex=interval)
            if limits.duplicate_window_s:
                pipe.set(dup_key, 1, ex=limits.duplicate_window_s)
        await pipe.execute()
