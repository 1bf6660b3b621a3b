"""Request and response shapes of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Username = Annotated[
    str, msgspec.Meta(min_length=2, max_length=30, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]$")
]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
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
