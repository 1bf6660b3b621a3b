from __future__ import annotations

from tests.factories import register_and_login


async def test_register_login_me_logout(client):
    user = await register_and_login(client)
    r = await client.get("/api/v1/me")
    assert r.status_code == 200
    assert r.json()["user"]["username"] == user["username"]
    assert "password_hash" not in r.text
    r = await client.post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert (await client.get("/api/v1/me")).status_code == 401
