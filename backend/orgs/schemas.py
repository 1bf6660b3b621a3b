"""Request and response shapes of the org API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[a-z0-9](?:[a-z0-9_]{0,48}[a-z0-9])?$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
RoleName = Literal["member", "moderator", "admin"]
Scope = Literal["read", "write", "moderate", "admin"]


class OrgIn(msgspec.Struct, forbid_unknown_fields=True):
    slug: Slug
    name: Name
    visibility: Literal["public", "private"] = "public"


class OrgOut(msgspec.Struct):
    id: str
    slug: str
    name: str
    visibility: str
    created_at: datetime
    role: str | None = None


class OrgEnvelope(msgspec.Struct):
    org: OrgOut


class MemberIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    role: RoleName = "member"


class MemberOut(msgspec.Struct):
    user_id: str
    username: str
    role: str


class MemberEnvelope(msgspec.Struct):
    member: MemberOut


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: ["read", "write"]
    )


class TokenOut(msgspec.Struct):
    id: str
    name: str
    scopes: list[str]
    org: str
    token: str  # shown once; only its hash is stored


class MemberRoleIn(msgspec.Struct, forbid_unknown_fields=True):
    role: RoleName


class TokenSummaryOut(msgspec.Struct):
    """A token as listed: never its secret (only a hash of it is stored anyway)."""

    id: str
    name: str
    scopes: list[str]
    created_by: str  # username
    created_at: datetime
    revoked_at: datetime | None


class TokenListOut(msgspec.Struct):
    tokens: list[TokenSummaryOut]
