"""Schema per tenant: org routes are authorized from the URL in one place, tenant tables are unreachable
outside a tenant context, and every tenant schema is built (and upgraded) by the same migrations."""

from __future__ import annotations

import re
import uuid

import asyncpg
import pytest

from backend.migrations import all_migrations
from backend.orgs.signals import OrgCreated
from engine import db
from engine.migrator import migrate_all, migrate_schema
from engine.signals import SignalContext, emit, signal_context
from engine.tenancy import InvalidSlug, NoTenantContext, Tenant, current_tenant, tenant_scope, validate_slug
from tests.factories import create_org, register_and_login, unique

CTX = SignalContext(actor_type="system", actor_id=None, source="job", correlation_id=str(uuid.uuid4()))


def org_routes(slug: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("GET", f"/api/v1/orgs/{slug}", None),
        ("POST", f"/api/v1/orgs/{slug}/members", {"username": "someone", "role": "member"}),
        ("POST", f"/api/v1/orgs/{slug}/tokens", {"name": "t"}),
        ("POST", f"/api/v1/orgs/{slug}/join", None),
    ]


async def call(client, method: str, path: str, body: dict | None):
    return await client.request(method, path, json=body) if body is not None else await client.request(method, path)


async def tables_of(conn, schema: str) -> dict[str, list[tuple]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, ordinal_position"
        " FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
        schema,
    )
    out: dict[str, list[tuple]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append(
            (r["column_name"], r["data_type"], r["is_nullable"], r["ordinal_position"])
        )
    return out


def tenant_migration_tables() -> set[str]:
    names: set[str] = set()
    for migration in all_migrations():
        if migration.scope == "tenant":
            names |= set(re.findall(r"CREATE TABLE\s+(?:IF NOT EXISTS\s+)?([a-z_][a-z0-9_]*)", migration.sql, re.I))
    return {n.lower() for n in names}


# --- authorization from the URL ---------------------------------------------------------------------


async def test_private_org_is_404_to_members_of_other_orgs_and_anonymous(make_client, pool):
    alice, bob, carol = make_client(), make_client(), make_client()
    await register_and_login(alice)
    await register_and_login(bob)
    await register_and_login(carol)  # signed in, member of nothing
    org_a = await create_org(alice, "private")
    org_b = await create_org(bob, "private")
    anonymous = make_client()
    tokens_before = await pool.fetchval("SELECT count(*) FROM api_tokens")
    for who in (alice, carol, anonymous):
        for method, path, body in org_routes(org_b["slug"]):
            r = await call(who, method, path, body)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json() == {"status_code": 404, "detail": "org not found"}
    # The same answer as for an org that does not exist: no existence leak.
    r = await alice.get(f"/api/v1/orgs/{unique('nosuch')}")
    assert r.json() == {"status_code": 404, "detail": "org not found"}
    # Nothing was written in B.
    assert await pool.fetchval("SELECT count(*) FROM memberships WHERE org_id = $1", uuid.UUID(org_b["id"])) == 1
    assert await pool.fetchval("SELECT count(*) FROM api_tokens") == tokens_before
    # A's own routes work for alice.
    assert (await alice.get(f"/api/v1/orgs/{org_a['slug']}")).json()["org"]["role"] == "admin"


async def test_public_org_is_readable_anonymously_but_admin_routes_need_auth(make_client, pool):
    owner = make_client()
    await register_and_login(owner)
    org = await create_org(owner, "public")
    anonymous = make_client()
    r = await anonymous.get(f"/api/v1/orgs/{org['slug']}")
    assert r.status_code == 200
    assert r.json()["org"]["slug"] == org["slug"] and r.json()["org"]["role"] is None
    for method, path, body in org_routes(org["slug"])[1:]:
        r = await call(anonymous, method, path, body)
        assert r.status_code == 401, (path, r.text)
    outsider = make_client()
    user = await register_and_login(outsider)
    for method, path, body in org_routes(org["slug"])[1:3]:
        r = await call(outsider, method, path, body)
        assert r.status_code == 403, (path, r.text)
    # Joining a public org is allowed (and idempotent).
    for _ in range(2):
        r = await outsider.post(f"/api/v1/orgs/{org['slug']}/join")
        assert r.status_code == 200 and r.json()["member"]["role"] == "member"
    rows = await pool.fetch(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
        uuid.UUID(org["id"]),
        uuid.UUID(user["id"]),
    )
    assert [r["role"] for r in rows] == ["member"]
    # Joined, still not an admin.
    r = await outsider.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": user["username"]})
    assert r.status_code == 403


async def test_joining_keeps_an_existing_role_and_private_orgs_are_invitation_only(make_client, pool):
    owner = make_client()
    user = await register_and_login(owner)
    public = await create_org(owner, "public")
    r = await owner.post(f"/api/v1/orgs/{public['slug']}/join")
    assert r.status_code == 200 and r.json()["member"]["role"] == "admin"
    org = await create_org(owner, "private")
    r = await owner.post(f"/api/v1/orgs/{org['slug']}/join")
    assert r.status_code == 403 and "invitation" in r.json()["detail"]
    role = await pool.fetchval(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
        uuid.UUID(org["id"]),
        uuid.UUID(user["id"]),
    )
    assert role == "admin"


@pytest.mark.parametrize(
    "slug",
    [
        "Bad-Slug",
        "x;drop",
        "a" * 60,
        "org%27%3B%20drop%20table%20orgs%3B--",
        "_lead",
        "trail_",
        "UPPER",
    ],
)
async def test_invalid_slugs_in_urls_are_404(client, pool, slug):
    await register_and_login(client)
    orgs_before = await pool.fetchval("SELECT count(*) FROM orgs")
    for method, path, body in org_routes(slug):
        r = await call(client, method, path, body)
        # A NUL anywhere in a path parameter is a 400 naming it (issue 11 item 3); other bad slugs are 404.
        expected = 400 if slug == "%00" else 404
        assert r.status_code == expected, (path, r.text)
        assert r.json()["status_code"] == expected
    assert await pool.fetchval("SELECT count(*) FROM orgs") == orgs_before


async def test_a_nul_in_the_org_slug_is_400_and_creates_nothing(client, pool):
    await register_and_login(client)
    orgs_before = await pool.fetchval("SELECT count(*) FROM orgs")
    for method, path, body in org_routes("%00"):
        r = await call(client, method, path, body)
        assert r.status_code == 400, (path, r.text)
        assert "NUL" in r.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM orgs") == orgs_before


@pytest.mark.parametrize(
    "slug",
    [
        "Bad-Slug",
        "x;drop",
        "a" * 51,
        "",
        "_x",
        "x_",
        "a b",
        'org"; DROP SCHEMA public; --',
        "é",
        "x-y",
        "x\n",
    ],
)
def test_validate_slug_rejects_injection(slug):
    with pytest.raises(InvalidSlug):
        validate_slug(slug)


@pytest.mark.parametrize("slug", ["a", "a1", "acme", "a_b", "0rg", "a" * 50])
def test_validate_slug_accepts(slug):
    assert validate_slug(slug) == slug


@pytest.mark.parametrize("slug", ["Bad-Slug", "x;drop", "a" * 51, "", "_x", "x_", "a b", "x-y"])
async def test_create_org_with_invalid_slug_is_400(client, pool, slug):
    await register_and_login(client)
    r = await client.post("/api/v1/orgs", json={"slug": slug, "name": "x"})
    assert r.status_code == 400, r.text
    assert r.json()["extra"][0]["key"] == "slug"
    assert await pool.fetchval("SELECT count(*) FROM orgs WHERE slug = $1", slug) == 0


async def test_create_org_requires_sign_in(make_client, pool):
    slug = unique("anon")
    r = await make_client().post("/api/v1/orgs", json={"slug": slug, "name": "x"})
    assert r.status_code == 401
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", f"org_{slug}") == 0


async def test_duplicate_slug_is_409_and_leaves_the_first_org_alone(make_client, pool):
    first, second = make_client(), make_client()
    await register_and_login(first)
    await register_and_login(second)
    org = await create_org(first, "public")
    schema = f"org_{org['slug']}"
    signals_before = await pool.fetchval(f'SELECT count(*) FROM "{schema}".signal')
    for who in (first, second):
        r = await who.post("/api/v1/orgs", json={"slug": org["slug"], "name": "again", "visibility": "private"})
        assert r.status_code == 409, r.text
    assert await pool.fetchval("SELECT count(*) FROM orgs WHERE slug = $1", org["slug"]) == 1
    assert await pool.fetchval("SELECT name FROM orgs WHERE slug = $1", org["slug"]) == org["name"]
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) == 1
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".signal') == signals_before
    assert await pool.fetchval("SELECT count(*) FROM memberships WHERE org_id = $1", uuid.UUID(org["id"])) == 1


async def test_new_org_schema_has_exactly_the_tenant_migration_tables(make_client, pool):
    owner = make_client()
    await register_and_login(owner)
    org_a = await create_org(owner, "private")
    org_b = await create_org(owner, "public")
    async with pool.acquire() as conn:
        tables_a = await tables_of(conn, f"org_{org_a['slug']}")
        tables_b = await tables_of(conn, f"org_{org_b['slug']}")
        applied = await conn.fetch(f'SELECT name FROM "org_{org_a["slug"]}".schema_migrations ORDER BY name')
    assert tables_a == tables_b
    assert {"signal", "signal_outbox", "schema_migrations"} <= set(tables_a)
    assert set(tables_a) == tenant_migration_tables() | {"schema_migrations"}
    expected = sorted(m.name for m in all_migrations() if m.scope == "tenant")
    assert [r["name"] for r in applied] == expected


async def test_tenant_tables_are_unreachable_outside_a_tenant_context(client, pool):
    await register_and_login(client)
    org = await create_org(client)
    schema = f"org_{org['slug']}"
    async with pool.acquire() as conn:
        public_tables = set(await tables_of(conn, "public"))
        tenant_tables = set(await tables_of(conn, schema)) - public_tables
        assert "signal" in tenant_tables
        for table in sorted(tenant_tables):
            with pytest.raises(asyncpg.UndefinedTableError):
                await conn.fetch(f"SELECT * FROM {table} LIMIT 1")
    # The engine's own transaction helper fails closed too, before, after and outside tenant_scope.
    tenant = Tenant(org_id=org["id"], slug=org["slug"])
    async with db.transaction():
        with pytest.raises(asyncpg.UndefinedTableError):
            await db.fetch("SELECT * FROM signal")
    async with db.transaction():
        async with tenant_scope(db.current_connection(), tenant):
            assert await db.fetchval("SELECT count(*) FROM signal") >= 2
            assert current_tenant() == tenant
        with pytest.raises(NoTenantContext):
            current_tenant()
        with pytest.raises(asyncpg.UndefinedTableError):
            await db.fetch("SELECT * FROM signal")


async def test_emit_outside_tenant_scope_raises(client, pool):
    await register_and_login(client)
    org = await create_org(client)
    payload = OrgCreated(org_id=org["id"], slug=org["slug"], name="x", visibility="private", created_by="x")
    async with db.transaction():
        with signal_context(CTX), pytest.raises(NoTenantContext):
            await emit(payload)
    with pytest.raises(NoTenantContext):
        current_tenant()
    # tenant_scope itself refuses to run outside a transaction.
    async with pool.acquire() as conn:
        with pytest.raises(NoTenantContext):
            async with tenant_scope(conn, Tenant(org_id=org["id"], slug=org["slug"])):
                pass
    assert await pool.fetchval(f'SELECT count(*) FROM "org_{org["slug"]}".signal') == 2


async def test_tenant_scope_refuses_a_forged_schema():
    async with db.transaction():
        for bad in ("x; DROP TABLE users", "Bad", "a" * 51):
            with pytest.raises(InvalidSlug):
                async with tenant_scope(db.current_connection(), Tenant(org_id=str(uuid.uuid4()), slug=bad)):
                    pass


# --- migrations -------------------------------------------------------------------------------------


async def test_migrate_all_is_idempotent(app, settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        report = await migrate_all(pool, all_migrations())
        assert report["public"] == []
        assert len(report) > 1  # tenant schemas were visited
        assert all(applied == [] for applied in report.values()), report
    finally:
        await pool.close()


async def test_migrate_all_upgrades_a_tenant_schema_left_at_an_older_version(client, settings):
    await register_and_login(client)
    reference = await create_org(client)
    tenant_migrations = [m for m in all_migrations() if m.scope == "tenant"]
    older = tenant_migrations[:-1]
    slug = unique("old")
    schema = f"org_{slug}"
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    progress: list[str] = []
    try:
        async with pool.acquire() as conn:
            async with conn.transaction():
                ran = await migrate_schema(conn, schema, older)
            assert ran == [m.name for m in older]
            assert await tables_of(conn, schema) != await tables_of(conn, f"org_{reference['slug']}")
        report = await migrate_all(pool, all_migrations(), progress.append)
        assert report[schema] == [tenant_migrations[-1].name]
        assert all(applied == [] for name, applied in report.items() if name != schema), report
        assert any(schema in line and "1 migration(s) applied" in line for line in progress), progress
        async with pool.acquire() as conn:
            assert await tables_of(conn, schema) == await tables_of(conn, f"org_{reference['slug']}")
            names = await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations ORDER BY name')
            assert [r["name"] for r in names] == sorted(m.name for m in tenant_migrations)
        assert all(applied == [] for applied in (await migrate_all(pool, all_migrations())).values())
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()


# --- members -----------------------------------------------------------------------------------------


async def test_admin_adds_members_and_changes_roles(make_client, pool):
    admin = make_client()
    admin_user = await register_and_login(admin)
    org = await create_org(admin, "private")
    people = {}
    for role in ("member", "moderator", "admin"):
        c = make_client()
        people[role] = (c, await register_and_login(c))
        r = await admin.post(
            f"/api/v1/orgs/{org['slug']}/members",
            json={"username": people[role][1]["username"].upper(), "role": role},
        )
        assert r.status_code == 201, r.text
        assert r.json()["member"] == {
            "user_id": people[role][1]["id"],
            "username": people[role][1]["username"],
            "role": role,
        }
    member_client, member = people["member"]
    r = await admin.post(
        f"/api/v1/orgs/{org['slug']}/members", json={"username": member["username"], "role": "moderator"}
    )
    assert r.status_code == 200 and r.json()["member"]["role"] == "moderator"
    r = await admin.post(
        f"/api/v1/orgs/{org['slug']}/members", json={"username": member["username"], "role": "moderator"}
    )
    assert r.status_code == 200
    r = await admin.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": unique("ghost")})
    assert r.status_code == 404 and "no user" in r.json()["detail"]
    # A moderator (not admin) may not add anyone.
    outsider = await register_and_login(make_client())
    r = await member_client.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": outsider["username"]})
    assert r.status_code == 403
    # The new member sees the org.
    me = (await member_client.get("/api/v1/me")).json()
    assert [(o["slug"], o["role"]) for o in me["orgs"]] == [(org["slug"], "moderator")]

    rows = await pool.fetch(
        "SELECT u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1",
        uuid.UUID(org["id"]),
    )
    assert {r["username"]: r["role"] for r in rows} == {
        admin_user["username"]: "admin",
        member["username"]: "moderator",
        people["moderator"][1]["username"]: "moderator",
        people["admin"][1]["username"]: "admin",
    }
    signals = await pool.fetch(f'SELECT type, actor_id, payload FROM "org_{org["slug"]}".signal ORDER BY id')
    added = [s for s in signals if s["type"] == "org.member.added"]
    assert len(added) == 4
    added_payloads = [asyncpg_json(s["payload"]) for s in added]
    assert [(p["username"], p["role"]) for p in added_payloads] == [
        (admin_user["username"], "admin"),
        (member["username"], "member"),
        (people["moderator"][1]["username"], "moderator"),
        (people["admin"][1]["username"], "admin"),
    ]
    assert all(s["actor_id"] == admin_user["id"] for s in added)
    changed = [asyncpg_json(s["payload"]) for s in signals if s["type"] == "org.member.role_changed"]
    assert changed == [
        {
            "user_id": member["id"],
            "username": member["username"],
            "old_role": "member",
            "new_role": "moderator",
            "changed_by": admin_user["id"],
        }
    ]


async def test_the_last_admin_cannot_demote_themselves(client, pool):
    user = await register_and_login(client)
    org = await create_org(client)
    r = await client.post(f"/api/v1/orgs/{org['slug']}/members", json={"username": user["username"], "role": "member"})
    assert r.status_code == 409
    role = await pool.fetchval(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
        uuid.UUID(org["id"]),
        uuid.UUID(user["id"]),
    )
    assert role == "admin"


def asyncpg_json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value
