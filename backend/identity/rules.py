"""What a username, an email and a login may be (issue 11 item 4).

Every rule is a FULL match (`re.fullmatch` / `\\A…\\Z`): `$` also matches before a final newline, which
let `alice\\n` register next to `alice` and show as `alice` on screen. Input is normalised first (NFKC:
fullwidth letters become ASCII ones), control and invisible characters (Unicode categories C*, e.g. NUL,
newline, zero-width space, bidi overrides) are refused, and uniqueness compares case-folded forms.
"""

from __future__ import annotations

import re
import unicodedata

from backend.errors import Invalid

USERNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,28}[A-Za-z0-9_])?")
# Schemas' patterns (OpenAPI, msgspec): anchored with \A and \Z, never ^ and $.
USERNAME_PATTERN = r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]\Z"
EMAIL_PATTERN = r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z"
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_INVISIBLE_EXTRA = frozenset("\u00ad\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")  # fillers that are not C*


def has_hidden_characters(text: str) -> bool:
    """Control, format (zero-width, bidi), private-use, surrogate or unassigned characters, or fillers."""
    return any(unicodedata.category(ch)[0] == "C" or ch in _INVISIBLE_EXTRA for ch in text)


def identity_key(text: str) -> str:
    """The form two usernames or emails are compared in: NFKC, then case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def normalize_username(raw: str) -> str:
    name = unicodedata.normalize("NFKC", raw)
    if has_hidden_characters(name):
        raise Invalid("username must not contain control or invisible characters", field="username")
    if not 2 <= len(name) <= 30 or USERNAME_RE.fullmatch(name) is None:
        raise Invalid(
            "username must be 2-30 characters of letters, digits, _ . and -, starting and ending with a"
            " letter, digit or _",
            field="username",
        )
    return name


def normalize_email(raw: str) -> str:
    """NFKC and case-folded: the stored form, so `lower(email)` uniqueness is case-fold uniqueness."""
    email = identity_key(raw)
    if has_hidden_characters(email):
        raise Invalid("email must not contain control or invisible characters", field="email")
    if not 3 <= len(email) <= 254 or EMAIL_RE.fullmatch(email) is None:
        raise Invalid("email must look like name@example.org", field="email")
    return email


def normalize_login(raw: str) -> str | None:
    """A sign-in name (username or email) in its comparison form; None when it cannot name an account."""
    login = identity_key(raw)
    if has_hidden_characters(login) or not login:
        return None
    return login
