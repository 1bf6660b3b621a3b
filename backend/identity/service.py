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
from backend.identity.rules import normalize_email, normalize_login, normalize_username
from backend.identity.schemas import LoginIn, MeOut, OrgMembershipOut, RegisterIn, UserOut
from backend.identity.tables import User
from engine import db
from engine.ids import uuid7
from realtime.revocation import publish_revocation

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
    username, email = normalize_username(data.username), normalize_email(data.email)
    taken = await db.fetchrow(
        "SELECT lower(username) = lower($1) AS username_taken, lower(email) = $2 AS email_taken"
        " FROM users WHERE lower(username) = lower($1) OR lower(email) = $2 LIMIT 1",
        username,
        email,
    )
    if taken is not None:
        field = "username" if taken["username_taken"] else "email"
        raise Conflict(f"that {field} is already registered")
    password_hash = await hash_password(data.password)
    try:
        rows = await User.insert(
            User(
                id=uuid7(),
                username=username,
                email=email,
                password_hash=password_hash,
            )
        ).returning(User.id, User.username, User.email, User.created_at, User.is_agent)
    except UniqueViolationError:  # a concurrent registration won the race
        raise Conflict("that username or email is already registered") from None
    if throttle:
        await _window_hit(ctx.redis, ip_key, settings.register_window_s)
    return user_out(rows[0])


# Count a sign-in attempt BEFORE verifying it, atomically: refuse (and count nothing) when any limit is
# reached, else count it against every limit. KEYS: pair, account, ip; ARGV: limit and window of each.
_LOGIN_ATTEMPT_LUA = """
for i = 1, #KEYS do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n >= tonumber(ARGV[2 * i - 1]) then
    return {i, redis.call('TTL', KEYS[i])}
  end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
  end
end
return {0, 0}
"""
# A successful sign-in was not a failure: give back what it counted (the pair's counter is cleared).
_LOGIN_REFUND_LUA = """
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 0
"""
_LOGIN_LIMIT_MESSAGES = {
    1: "too many failed sign-ins for this account from this address",
    2: "too many failed sign-ins for this account",
    3: "too many failed sign-ins from this address",
}


async def check_credentials(ctx: RequestContext, data: LoginIn) -> UserOut:
    """Verify a login. Each attempt is counted atomically before the password is checked, so concurrent
    guesses get at most the limit of real checks: per account-and-address pair (strict: a stranger
    locks out only themselves), per account from all addresses (slower, against distributed guessing)
    and per address. A success gives its count back and clears the pair's."""
    settings = ctx.settings
    login = normalize_login(data.login)
    row = None
    if login is not None:
        row = await db.fetchrow(
            "SELECT id, username, email, created_at, is_agent, password_hash FROM users"
            " WHERE (lower(username) = $1 OR lower(email) = $1) AND NOT is_agent",
            login,
        )
    # The account, however it was named (username or email, any case); an unknown name counts as itself.
    named = str(row["id"]) if row is not None else (login if login is not None else data.login)
    account = hashlib.sha256(named.encode()).hexdigest()[:32]
    keys = [f"login:fail:pair:{account}:{ctx.ip_hash}", f"login:fail:acct:{account}", f"login:fail:ip:{ctx.ip_hash}"]
    limits = [
        settings.login_max_failures_per_pair,
        settings.login_failure_window_s,
        settings.login_max_failures_per_account,
        settings.login_account_window_s,
        settings.login_max_failures_per_ip,
        settings.login_failure_window_s,
    ]
    hit, ttl = await ctx.redis.eval(_LOGIN_ATTEMPT_LUA, len(keys), *keys, *limits)  # type: ignore[misc]
    if int(hit):
        raise RateLimited(_LOGIN_LIMIT_MESSAGES[int(hit)], retry_after=int(ttl) if int(ttl) > 0 else 60)
    ok = await verify_password(row["password_hash"] if row else _DUMMY_HASH, data.password)
    if row is None or not ok:
        raise Unauthorized("wrong username/email or password")
    await ctx.redis.eval(_LOGIN_REFUND_LUA, len(keys), *keys)  # type: ignore[misc]
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


def session_key(token: str) -> str:
    """The Redis key of a session token (a hash of it: safe to hold on to, e.g. per open socket)."""
    return _session_key(token)


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


async def end_session(redis: Redis, token: str) -> None:
    """Log out: delete the session, then tell every web node to re-check that user's open sockets
    (those signed in with this session close with 4401)."""
    session = await load_session(redis, token)
    await delete_session(redis, token)
    if session is not None:
        await publish_revocation(redis, session.user_id, reason="logout")


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
