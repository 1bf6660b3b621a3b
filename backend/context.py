"""The request context: who is calling, in which org, with which role. Built once per request by
`RequestContextMiddleware`; handlers receive it through the `ctx` dependency."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from litestar.di import NamedDependency
from redis.asyncio import Redis

from backend.errors import Forbidden, NotFound, Unauthorized
from backend.settings import Settings
from engine.agents.registry import AgentRuntime
from engine.relay import StreamConfig
from engine.tenancy import Tenant

Role = Literal["member", "moderator", "admin"]
ROLE_RANK: dict[str, int] = {"member": 1, "moderator": 2, "admin": 3}
ROLES: tuple[Role, ...] = ("member", "moderator", "admin")


@dataclass(frozen=True, slots=True)
class Services:
    """Long-lived clients shared by every request of a process."""

    settings: Settings
    redis: Redis
    streams: StreamConfig
    agents: AgentRuntime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    username: str
    via: Literal["session", "token"]
    token_id: str | None = None
    token_org_id: str | None = None
    token_scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OrgRef:
    id: str
    slug: str
    name: str
    visibility: Literal["public", "private"]

    @property
    def tenant(self) -> Tenant:
        return Tenant(org_id=self.id, slug=self.slug)


@dataclass(slots=True)
class RequestContext:
    services: Services
    principal: Principal | None
    ip_hash: str
    correlation_id: str
    org: OrgRef | None = None
    role: Role | None = None  # the principal's role in `org`; None for non-members
    can_write: bool = False
    # Work to do only once the transaction has committed (e.g. enqueue a job for a row it wrote).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def redis(self) -> Redis:
        return self.services.redis

    def require_user(self) -> Principal:
        if self.principal is None:
            raise Unauthorized("sign in first")
        return self.principal

    def require_session_user(self) -> Principal:
        """Global account actions: tokens act only inside their org."""
        principal = self.require_user()
        if principal.via == "token":
            raise Forbidden("API tokens act only inside their org")
        return principal

    def require_org(self) -> OrgRef:
        if self.org is None:
            raise NotFound("org not found")
        return self.org

    def require_role(self, minimum: Role) -> Role:
        self.require_user()
        if self.role is None or ROLE_RANK[self.role] < ROLE_RANK[minimum]:
            raise Forbidden(f"{minimum} role required in this org")
        if not self.can_write:
            raise Forbidden("this token may only read")
        return self.role

    def has_role(self, minimum: Role) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[minimum]


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)


def set_request_context(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(ctx)


def current_request_context() -> RequestContext | None:
    return _current.get()


def reset_request_context(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)


def provide_ctx() -> RequestContext:
    """Litestar dependency (plain, not a generator: see STACK_NOTES)."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("RequestContextMiddleware did not run for this route")
    return ctx


# Handler parameter types (explicit markers: Litestar 3 drops inferred ones).
Ctx = NamedDependency[RequestContext]
