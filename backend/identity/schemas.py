"""Request and response shapes of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from backend.identity.rules import EMAIL_PATTERN, USERNAME_PATTERN

# Anchored with \A and \Z (`$` would let "alice\n" through); the service normalises and re-checks.
Username = Annotated[str, msgspec.Meta(min_length=2, max_length=30, pattern=USERNAME_PATTERN)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=EMAIL_PATTERN)]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    email: Email
    password: Password


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    login: Annotated[str, msgspec.Meta(min_length=1, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class UserOut(msgspec.Struct):
    id: str
    username: str
    email: str
    created_at: datetime
    is_agent: bool = False


class OrgMembershipOut(msgspec.Struct):
    slug: str
    name: str
    role: str
    visibility: str


class UserEnvelope(msgspec.Struct):
    user: UserOut


class MeOut(msgspec.Struct):
    user: UserOut
    orgs: list[OrgMembershipOut]


class SessionOut(msgspec.Struct):
    """Who is signed in, if anyone (200 either way: a signed-out page is not an error)."""

    user: UserOut | None
    orgs: list[OrgMembershipOut]
