"""Issue 11 item 4: usernames and emails are full-matched, normalised (NFKC), free of control and
invisible characters, and unique case-folded: `alice\\n` can neither register nor sign in as `alice`."""

from __future__ import annotations

from typing import Any

import pytest

from backend.errors import Invalid
from backend.identity.rules import identity_key, normalize_email, normalize_username
from tests.factories import unique
from tests.test_identity import assert_error, login, random_ip, register, user_count


@pytest.mark.parametrize(
    "username",
    ["{n}\n", "{n}\r\n", "{n}\x00", "\n{n}", "{n}\u200b", "{n}\u202e", "{n}\u00ad", "{n}\t", "{n} "],
)
async def test_a_username_with_a_newline_or_invisible_character_cannot_register(
    make_client: Any, pool: Any, username: str
) -> None:
    name = unique("al")
    client = make_client(ip=random_ip())
    assert (await register(client, name)).status_code == 201
    before = await user_count(pool)
    r = await register(client, username.format(n=name), email=f"other-{name}@example.com")
    body = assert_error(r, 400)
    assert [e.get("key") for e in body.get("extra") or []] == ["username"], body
    assert await user_count(pool) == before
    # nor as a brand-new name that only LOOKS free
    fresh = unique("nw")
    r = await register(client, username.format(n=fresh), email=f"{fresh}@example.com")
    assert_error(r, 400)
    assert await user_count(pool) == before


async def test_alice_newline_cannot_sign_in_as_alice(make_client: Any) -> None:
    name = unique("al")
    client = make_client(ip=random_ip())
    assert (await register(client, name)).status_code == 201
    for variant in (f"{name}\n", f"{name}\u200b", f"{name}\x00", f"{name}@example.com\n"):
        r = await login(make_client(ip=random_ip()), variant)
        assert r.status_code in (400, 401), (variant, r.text)
    # the real name, any case, and its fullwidth form (NFKC) still sign in
    assert (await login(make_client(ip=random_ip()), name.upper())).status_code == 200
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)
    assert (await login(make_client(ip=random_ip()), fullwidth)).status_code == 200


@pytest.mark.parametrize(
    "email",
    ["{n}@example.com\n", "{n}@example.com\x00", "{n}\u200b@example.com", "{n}@exa\u202emple.com", "{n}@example.com "],
)
async def test_an_email_with_a_newline_or_invisible_character_cannot_register(
    make_client: Any, pool: Any, email: str
) -> None:
    name = unique("em")
    before = await user_count(pool)
    r = await register(make_client(ip=random_ip()), name, email=email.format(n=name))
    body = assert_error(r, 400)
    assert [e.get("key") for e in body.get("extra") or []] == ["email"], body
    assert await user_count(pool) == before


async def test_emails_are_unique_after_nfkc_and_case_folding(make_client: Any, pool: Any) -> None:
    name = unique("cf")
    client = make_client(ip=random_ip())
    assert (await register(client, name, email=f"{name}@Example.com")).status_code == 201
    before = await user_count(pool)
    fullwidth_at = f"{name.upper()}\uff20example.com"  # FULLWIDTH COMMERCIAL AT: NFKC makes it '@'
    r = await register(make_client(ip=random_ip()), unique("cf"), email=f"{name.upper()}@EXAMPLE.COM")
    assert_error(r, 409)
    r = await register(make_client(ip=random_ip()), unique("cf"), email=fullwidth_at)
    assert r.status_code in (400, 409), r.text
    assert await user_count(pool) == before
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT email FROM users WHERE username = $1", name)
    assert stored == f"{name}@example.com"


def test_rules_full_match_and_normalise() -> None:
    assert normalize_username("alice") == "alice"
    assert normalize_username("\uff41\uff4c\uff49\uff43\uff45") == "alice"
    for bad in ("alice\n", "alice\r", "a", "-alice", "alice-", "ali ce", "alice\u200d", "x" * 31):
        with pytest.raises(Invalid):
            normalize_username(bad)
    assert normalize_email("Alice@Example.COM") == "alice@example.com"
    for bad in ("alice@example.com\n", "alice@example", "alice\u2060@example.com", "a@b@example.com"):
        with pytest.raises(Invalid):
            normalize_email(bad)
    assert identity_key("STRASSE") == identity_key("straße")
