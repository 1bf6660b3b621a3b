"""Orgs, memberships and API tokens. Creating an org builds its tenant schema through the migrations,
in the same transaction as the org row."""

from __future__ import annotations

import uuid

from asyncpg import UniqueViolationError

from backend.context import OrgRef, RequestContext
from backend.errors import Conflict, Forbidden, NotFound
from backend.identity.service import new_api_token
from backend.migrations import all_migrations
from backend.orgs.schemas import MemberIn, MemberOut, OrgIn, OrgOut, TokenIn, TokenOut
from backend.orgs.signals import MemberAdded, MemberRoleChanged, OrgCreated, TokenCreated
from backend.orgs.tables import Org
from engine import db
from engine.ids import uuid7
from engine.migrator import migrate_schema
from engine.signals import emit
from engine.tenancy import Tenant, schema_for, tenant_scope


async def find_org(slug: str) -> OrgRef | None:
    row = await db.fetchrow("SELECT id, slug, name, visibility FROM orgs WHERE slug = $1", slug)
    if row is None:
        return None
    return OrgRef(id=str(row["id"]), slug=row["slug"], name=row["name"], visibility=row["visibility"])


async def role_of(user_id: str, org_id: str) -> str | None:
    role: str | None = await db.fetchval(
        "SELECT role FROM memberships WHERE user_id = $1 AND org_id = $2",
        uuid.UUID(user_id),
        uuid.UUID(org_id),
    )
    return role


async def create_org(ctx: RequestContext, data: OrgIn) -> OrgOut:
    principal = ctx.require_session_user()
    if await db.fetchval("SELECT 1 FROM orgs WHERE slug = $1", data.slug):
        raise Conflict("that org slug is taken")
    org_id = uuid7()
    try:
        rows = await Org.insert(
            Org(
                id=org_id,
                slug=data.slug,
                name=data.name,
                visibility=data.visibility,
                created_by=uuid.UUID(principal.user_id),
            )
        ).returning(Org.created_at)
    except UniqueViolationError:
        raise Conflict("that org slug is taken") from None
    await db.execute(
        "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')",
        org_id,
        uuid.UUID(principal.user_id),
    )
    conn = db.current_connection()
    await migrate_schema(conn, schema_for(data.slug), all_migrations())
    async with tenant_scope(conn, Tenant(org_id=str(org_id), slug=data.slug)):
        await emit(
            OrgCreated(
                org_id=str(org_id),
                slug=data.slug,
                name=data.name,
                visibility=data.visibility,
                created_by=principal.user_id,
            )
        )
        await emit(
            MemberAdded(
                user_id=principal.user_id,
                username=principal.username,
                role="admin",
                added_by=principal.user_id,
            )
        )
    return OrgOut(
        id=str(org_id),
        slug=data.slug,
        name=data.name,
        visibility=data.visibility,
        created_at=rows[0]["created_at"],
        role="admin",
    )


async def get_org(ctx: RequestContext) -> OrgOut:
    org = ctx.require_org()
    created_at = await db.fetchval("SELECT created_at FROM orgs WHERE id = $1", uuid.UUID(org.id))
    return OrgOut(
        id=org.id,
        slug=org.slug,
        name=org.name,
        visibility=org.visibility,
        created_at=created_at,
        role=ctx.role,
    )


async def add_member(ctx: RequestContext, data: MemberIn) -> tuple[MemberOut, bool]:
    """Add a member or change a member's role. Returns (member, created)."""
    ctx.require_role("admin")
    org = ctx.require_org()
    actor = ctx.require_user()
    user = await db.fetchrow("SELECT id, username FROM users WHERE lower(username) = lower($1)", data.username)
    if user is None:
        raise NotFound(f"no user named {data.username!r}")
    user_id = str(user["id"])
    current = await role_of(user_id, org.id)
    if current == data.role:
        return MemberOut(user_id=user_id, username=user["username"], role=current), False
    if current is None:
        await db.execute(
            "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)",
            uuid.UUID(org.id),
            user["id"],
            data.role,
        )
        await emit(MemberAdded(user_id=user_id, username=user["username"], role=data.role, added_by=actor.user_id))
        return MemberOut(user_id=user_id, username=user["username"], role=data.role), True
    if current == "admin" and user_id == actor.user_id:
        admins = await db.fetchval(
            "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'admin'", uuid.UUID(org.id)
        )
        if admins <= 1:
            raise Conflict("an org needs at least one admin: promote someone else first")
    await db.execute(
        "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2",
        uuid.UUID(org.id),
        user["id"],
        data.role,
    )
    await emit(
        MemberRoleChanged(
            user_id=user_id,
            username=user["username"],
            old_role=current,
            new_role=data.role,
            changed_by=actor.user_id,
        )
    )
    return MemberOut(user_id=user_id, username=user["username"], role=data.role), False


async def join_org(ctx: RequestContext) -> MemberOut:
    """A signed-in user joins a public org as a member (idempotent)."""
    principal = ctx.require_session_user()
    org = ctx.require_org()
    if org.visibility != "public":
        raise Forbidden("private orgs are joined by invitation of an admin")
    if ctx.role is not None:
        return MemberOut(user_id=principal.user_id, username=principal.username, role=ctx.role)
    await db.execute(
        "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'member') ON CONFLICT DO NOTHING",
        uuid.UUID(org.id),
        uuid.UUID(principal.user_id),
    )
    await emit(
        MemberAdded(user_id=principal.user_id, username=principal.username, role="member", added_by=principal.user_id)
    )
    return MemberOut(user_id=principal.user_id, username=principal.username, role="member")


async def create_token(ctx: RequestContext, data: TokenIn) -> TokenOut:
    ctx.require_role("admin")
    principal = ctx.require_session_user()  # a token cannot mint tokens
    org = ctx.require_org()
    token, token_hash = new_api_token()
    token_id = uuid7()
    scopes = sorted(set(data.scopes))
    await db.execute(
        "INSERT INTO api_tokens (id, org_id, name, token_hash, scopes, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        token_id,
        uuid.UUID(org.id),
        data.name,
        token_hash,
        scopes,
        uuid.UUID(principal.user_id),
    )
    await emit(TokenCreated(token_id=str(token_id), name=data.name, scopes=scopes, created_by=principal.user_id))
    return TokenOut(id=str(token_id), name=data.name, scopes=scopes, org=org.slug, token=token)
