"""The demo tenant `make dev` creates on first run, so a new user lands in a living forum."""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec

from backend.console import as_operator, principal_named
from backend.context import Services
from backend.identity import service as identity
from backend.identity.schemas import RegisterIn
from backend.orgs import service as orgs
from backend.orgs.schemas import OrgIn

DEMO_ORG = "demo"
ADMIN_USERNAME = "admin"


class DemoCredentials(msgspec.Struct):
    username: str
    password: str
    org: str


async def ensure_demo(services: Services, data_dir: Path) -> DemoCredentials:
    """Create the demo admin and org once; later runs read the saved credentials (a local file, 0600)."""
    creds_file = data_dir / "demo_credentials.json"
    if creds_file.exists():
        creds = msgspec.json.decode(creds_file.read_bytes(), type=DemoCredentials)
    else:
        creds = DemoCredentials(username=ADMIN_USERNAME, password=secrets.token_urlsafe(12), org=DEMO_ORG)
    admin = await principal_named(creds.username)
    if admin is None:
        async with as_operator(services, None) as ctx:
            await identity.register(
                ctx, RegisterIn(username=creds.username, email="admin@demo.invalid", password=creds.password),
                throttle=False,
            )
        admin = await principal_named(creds.username)
        assert admin is not None
    creds_file.write_bytes(msgspec.json.encode(creds))
    creds_file.chmod(0o600)
    async with as_operator(services, admin) as ctx:
        if await orgs.find_org(DEMO_ORG) is None:
            await orgs.create_org(ctx, OrgIn(slug=DEMO_ORG, name="Demo Community", visibility="public"))
            print(f"demo | created the public org {DEMO_ORG!r} with admin {creds.username!r}", flush=True)
    return creds
