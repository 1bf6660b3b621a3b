"""Factories as plain functions (STYLE 10)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def register_and_login(
    client: httpx.AsyncClient, username: str | None = None, password: str = "correct horse battery"
) -> dict[str, Any]:
    username = username or unique("user")
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/auth/login", json={"login": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["user"]


async def create_org(
    client: httpx.AsyncClient, visibility: str = "private", slug: str | None = None
) -> dict[str, Any]:
    slug = slug or unique("org")
    r = await client.post(
        "/api/v1/orgs", json={"slug": slug, "name": f"Org {slug}", "visibility": visibility}
    )
    assert r.status_code == 201, r.text
    return r.json()["org"]
