"""Issue 11 item 5: sign-in attempts are counted atomically BEFORE the password is checked, per
account-and-address pair (a stranger locks out only themselves) with a slower limit per account from all
addresses."""

from __future__ import annotations

import asyncio
from typing import Any

from backend.identity.service import SESSION_COOKIE
from tests.factories import unique
from tests.test_identity import assert_error, login, random_ip, register


async def test_40_concurrent_wrong_passwords_get_at_most_the_limit_of_real_checks(
    make_client: Any, settings: Any
) -> None:
    name = unique("race")
    assert (await register(make_client(ip=random_ip()), name)).status_code == 201
    attacker = make_client(ip=random_ip())
    responses = await asyncio.gather(*(login(attacker, name, f"wrong password {i}") for i in range(40)))
    statuses = sorted(r.status_code for r in responses)
    limit = settings.login_max_failures_per_pair
    # 401 = the password was really checked; 429 = refused before checking
    assert statuses.count(401) <= limit, statuses
    assert statuses.count(401) + statuses.count(429) == 40, statuses
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) > 0


async def test_a_stranger_cannot_lock_the_owner_out(make_client: Any, settings: Any) -> None:
    name = unique("own")
    owner = make_client(ip=random_ip())
    assert (await register(owner, name)).status_code == 201
    stranger = make_client(ip=random_ip())
    for _ in range(settings.login_max_failures_per_pair):
        assert (await login(stranger, name, "wrong password")).status_code == 401
    r = await login(stranger, name)  # even the right password: this pair is throttled
    assert_error(r, 429)
    assert SESSION_COOKIE not in stranger.cookies
    assert (await login(owner, name)).status_code == 200  # the owner, from their own address, is not


async def test_the_slower_per_account_limit_stops_guessing_from_many_addresses(make_app: Any, make_client: Any) -> None:
    app = make_app(login_max_failures_per_pair=3, login_max_failures_per_account=7)
    name = unique("dist")
    assert (await register(make_client(ip=random_ip(), application=app), name)).status_code == 201
    statuses = []
    for _ in range(4):  # 4 addresses x 2 guesses: under each pair's limit, over the account's 7
        guesser = make_client(ip=random_ip(), application=app)
        for _ in range(2):
            statuses.append((await login(guesser, name, "wrong password")).status_code)
    assert statuses.count(401) == 7 and statuses[-1] == 429, statuses
    r = await login(make_client(ip=random_ip(), application=app), name, "another guess")
    assert_error(r, 429)
    assert "this account" in r.json()["detail"]


async def test_a_success_gives_back_its_count(make_app: Any, make_client: Any) -> None:
    """Signing in successfully is not a failure: a busy shared address is not throttled by good logins."""
    app = make_app(login_max_failures_per_ip=3)
    office = random_ip()
    names = [unique("ok") for _ in range(5)]
    for n in names:
        assert (await register(make_client(ip=random_ip(), application=app), n)).status_code == 201
    for n in names:
        assert (await login(make_client(ip=office, application=app), n)).status_code == 200
