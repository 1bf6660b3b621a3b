"""Accounts: registration, password login with attempt limits, Redis sessions, API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from asyncpg import UniqueViolationError
from redis.asyncio import Redis

from backend.context import Principal, RequestContext
from backend.errors import Conflict, RateLimited, Unauthorized
from backend.identity.schemas import LoginIn, MeOut, OrgMembershipOut, RegisterIn, UserOut
from backend.identity.tables import User
from engine import db
from engine.ids import uuid7

# argon2id, OWASP's minimum profile (19 MiB, t=2, p=1): memory-hard, ~20 ms here.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_DUMMY_HASH = _HASHER.hash("timing-equaliser-not-a-password")

SESSION_COOKIE = "forum_session"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
TOKEN_PREFIX = "fpt_"


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def hash_ip(secret_key: str, ip: str) -> str:
    """IPs are never stored in the clear: a keyed hash is enough to count and throttle."""
    return hmac.new(secret_key.encode(), ip.encode(), hashlib.sha256).hexdigest()[:32]


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def user_out(row: dict[str, object]) -> UserOut:
    return UserOut(
        id=str(row["id"]),
        username=str(row["username"]),
        email=str(row["email"]),
        created_at=row["created_at"],  # type: ignore[arg-type]
        is_agent=bool(row.get("is_agent", False)),
    )


# --- fixed-window counters in Redis -------------------------------------------------------------


async def _window_count(redis: Redis, key: str) -> tuple[int, int]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.ttl(key)
        value, ttl = await pipe.execute()
    return int(value or 0), int(ttl if ttl and ttl > 0 else 0)


async def _window_hit(redis: Redis, key: str, window_s: int) -> int:
    # SET NX EX starts the window; EXPIRE NX would need Redis 7 (the embedded server is 6.2).
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=window_s, nx=True)
        pipe.incr(key)
        _, count = await pipe.execute()
    return int(count)


# --- registration and login ---------------------------------------------------------------------


async def register(ctx: RequestContext, data: RegisterIn, *, throttle: bool = True) -> UserOut:
    """Create an account; `throttle=False` only for operator commands (CLI, demo seeding)."""
    settings = ctx.settings
    ip_key = f"register:ip:{ctx.ip_hash}"
    count, ttl = await _window_count(ctx.redis, ip_key)
    if throttle and count >= settings.register_max_per_ip:
        raise RateLimited("too many accounts created from this address", retry_after=ttl or 60)
    taken = await db.fetchrow(
        "SELECT lower(username) = lower($1) AS username_taken, lower(email) = lower($2) AS email_taken"
        " FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($2) LIMIT 1",
        data.username,
        data.email,
    )
    if taken is not None:
        field = "username" if taken["username_taken"] else "email"
        raise Conflict(f"that {field} is already registered")
    password_hash = await hash_password(data.password)
    try:
        rows = await User.insert(
            User(
                id=uuid7(),
                username=data.username,
                email=data.email.lower(),
                password_hash=password_hash,
            )
        ).returning(User.id, User.username, User.email, User.created_at, User.is_agent)
    except UniqueViolationError:  # a concurrent registration won the race
        raise Conflict("that username or email is already registered") from None
    if throttle:
        await _window_hit(ctx.redis, ip_key, settings.register_window_s)
    return user_out(rows[0])


async def check_credentials(ctx: RequestContext, data: LoginIn) -> UserOut:
    """Verify a login, limited per account and per (hashed) IP; failures count, success clears the
    account's counter. Runs in the handler, so it works whatever the middleware order."""
    settings = ctx.settings
    account_key = "login:fail:acct:" + hashlib.sha256(data.login.lower().encode()).hexdigest()[:32]
    ip_key = f"login:fail:ip:{ctx.ip_hash}"
    acct_count, acct_ttl = await _window_count(ctx.redis, account_key)
    ip_count, ip_ttl = await _window_count(ctx.redis, ip_key)
    if acct_count >= settings.login_max_failures_per_account:
        raise RateLimited("too many failed sign-ins for this account", retry_after=acct_ttl or 60)
    if ip_count >= settings.login_max_failures_per_ip:
        raise RateLimited("too many failed sign-ins from this address", retry_after=ip_ttl or 60)
    row = await db.fetchrow(
        "SELECT id, username, email, created_at, is_agent, password_hash FROM users"
        " WHERE (lower(username) = lower($1) OR lower(email) = lower($1)) AND NOT is_agent",
        data.login,
    )
    ok = await verify_password(row["password_hash"] if row else _DUMMY_HASH, data.password)
    if row is None or not ok:
        await _window_hit(ctx.redis, account_key, settings.login_failure_window_s)
        await _window_hit(ctx.redis, ip_key, settings.login_failure_window_s)
        raise Unauthorized("wrong username/email or password")
    await ctx.redis.delete(account_key)
    return user_out(dict(row))


async def me(user_id: str) -> MeOut:
    row = await db.fetchrow(
        "SELECT id, username, email, created_at, is_agent FROM users WHERE id = $1", uuid.UUID(user_id)
    )
    if row is None:
        raise Unauthorized("this account no longer exists")
    orgs = await db.fetch(
        "SELECT o.slug, o.name, o.visibility, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id"
        " WHERE m.user_id = $1 ORDER BY o.slug",
        uuid.UUID(user_id),
    )
    return MeOut(
        user=user_out(dict(row)),
        orgs=[
            OrgMembershipOut(slug=o["slug"], name=o["name"], role=o["role"], visibility=o["visibility"]) for o in orgs
        ],
    )


# --- sessions (server side, in Redis) ------------------------------------------------------------


class SessionData(msgspec.Struct):
    user_id: str
    csrf: str


def _session_key(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


async def create_session(redis: Redis, user_id: str, ttl_s: int) -> tuple[str, SessionData]:
    token = secrets.token_urlsafe(32)
    data = SessionData(user_id=user_id, csrf=secrets.token_urlsafe(24))
    await redis.set(_session_key(token), msgspec.json.encode(data), ex=ttl_s)
    return token, data


async def load_session(redis: Redis, token: str) -> SessionData | None:
    if not token or len(token) > 128:
        return None
    raw = await redis.get(_session_key(token))
    if raw is None:
        return None
    return msgspec.json.decode(raw, type=SessionData)


async def delete_session(redis: Redis, token: str) -> None:
    await redis.delete(_session_key(token))


# --- API tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenPrincipal:
    principal: Principal
    org_id: str


async def principal_for_token(token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    row = await db.fetchrow(
        "SELECT t.id, t.org_id, t.scopes, u.id AS user_id, u.username FROM api_tokens t"
        " JOIN users u ON u.id = t.created_by WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        hash_token(token),
    )
    if row is None:
        return None
    return Principal(
        user_id=str(row["user_id"]),
        username=row["username"],
        via="token",
        token_id=str(row["id"]),
        token_org_id=str(row["org_id"]),
        token_scopes=tuple(row["scopes"]),
    )


def new_api_token() -> tuple[str, bytes]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)
