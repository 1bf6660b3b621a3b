"""Orgs, memberships and API tokens. Creating an org builds its tenant schema through the migrations,
in the same transaction as the org row."""

from __future__ import annotations

import uuid

import asyncpg
from asyncpg import UniqueViolationError

from backend.context import OrgRef, RequestContext
from backend.errors import Conflict, Forbidden, NotFound
from backend.identity.service import new_api_token
from backend.migrations import all_migrations
from backend.orgs.schemas import (
    MemberIn,
    MemberOut,
    MemberRoleIn,
    OrgIn,
    OrgOut,
    TokenIn,
    TokenListOut,
    TokenOut,
    TokenSummaryOut,
)
from backend.orgs.signals import (
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    OrgCreated,
    TokenCreated,
    TokenRevoked,
)
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
    member = await _locked_member(org.id, data.username)
    return await _set_role(org.id, member, data.role, actor.user_id), False


# --- member role changes and removal (each emits its signal; open sockets are re-authorized on it) ---


async def _locked_member(org_id: str, username: str) -> asyncpg.Record:
    """The member named `username`; 404 otherwise. Membership changes of one org are serialized on
    the org's row (locked first, always in this order: no deadlock between two admins changing each
    other), so the last-admin check below cannot be raced."""
    await db.execute("SELECT 1 FROM orgs WHERE id = $1 FOR UPDATE", uuid.UUID(org_id))
    row = await db.fetchrow(
        "SELECT u.id, u.username, m.role FROM users u JOIN memberships m ON m.user_id = u.id AND m.org_id = $1"
        " WHERE lower(u.username) = lower($2) FOR UPDATE OF m",
        uuid.UUID(org_id),
        username,
    )
    if row is None:
        raise NotFound(f"{username!r} is not a member of this org")
    return row


async def _keep_an_admin(org_id: str, member: asyncpg.Record, new_role: str | None) -> None:
    """Refuse to demote or remove the org's last admin (under `_locked_member`'s org lock)."""
    if member["role"] != "admin" or new_role == "admin":
        return
    admins = await db.fetchval(
        "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'admin'", uuid.UUID(org_id)
    )
    if admins <= 1:
        raise Conflict("an org needs at least one admin: promote someone else first")


async def _set_role(org_id: str, member: asyncpg.Record, role: str, actor_id: str) -> MemberOut:
    user_id = str(member["id"])
    if member["role"] == role:
        return MemberOut(user_id=user_id, username=member["username"], role=role)
    await _keep_an_admin(org_id, member, role)
    await db.execute(
        "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2", uuid.UUID(org_id), member["id"], role
    )
    await emit(
        MemberRoleChanged(
            user_id=user_id,
            username=member["username"],
            old_role=member["role"],
            new_role=role,
            changed_by=actor_id,
        )
    )
    return MemberOut(user_id=user_id, username=member["username"], role=role)


async def change_member_role(ctx: RequestContext, username: str, data: MemberRoleIn) -> MemberOut:
    """Admin only. Open sockets of the member lose the channels the new role cannot see."""
    ctx.require_role("admin")
    org = ctx.require_org()
    actor = ctx.require_user()
    member = await _locked_member(org.id, username)
    return await _set_role(org.id, member, data.role, actor.user_id)


async def remove_member(ctx: RequestContext, username: str) -> None:
    """Admin only; never the last admin. The member's tokens in this org are revoked with the
    membership, and their open sockets on this org close (4403)."""
    ctx.require_role("admin")
    org = ctx.require_org()
    actor = ctx.require_user()
    member = await _locked_member(org.id, username)
    await _keep_an_admin(org.id, member, None)
    await db.execute("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2", uuid.UUID(org.id), member["id"])
    await emit(
        MemberRemoved(
            user_id=str(member["id"]), username=member["username"], old_role=member["role"], removed_by=actor.user_id
        )
    )
    tokens = await db.fetch(
        "UPDATE api_tokens SET revoked_at = now() WHERE org_id = $1 AND created_by = $2 AND revoked_at IS NULL"
        " RETURNING id, name",
        uuid.UUID(org.id),
        member["id"],
    )
    for token in tokens:
        await emit(
            TokenRevoked(
                token_id=str(token["id"]), name=token["name"], created_by=str(member["id"]), revoked_by=actor.user_id
            )
        )


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


async def list_tokens(ctx: RequestContext) -> TokenListOut:
    """Admin only: this org's tokens, newest first, without their secret."""
    ctx.require_role("admin")
    org = ctx.require_org()
    rows = await db.fetch(
        "SELECT t.id, t.name, t.scopes, u.username, t.created_at, t.revoked_at FROM api_tokens t"
        " JOIN users u ON u.id = t.created_by WHERE t.org_id = $1 ORDER BY t.created_at DESC, t.id DESC LIMIT 1000",
        uuid.UUID(org.id),
    )
    return TokenListOut(
        tokens=[
            TokenSummaryOut(
                id=str(r["id"]),
                name=r["name"],
                scopes=list(r["scopes"]),
                created_by=r["username"],
                created_at=r["created_at"],
                revoked_at=r["revoked_at"],
            )
            for r in rows
        ]
    )


async def revoke_token(ctx: RequestContext, token_id: str) -> None:
    """Admin only. Revoked at once: requests with it answer 401 and its open sockets close (4401).
    Revoking a revoked token changes nothing (and emits nothing)."""
    ctx.require_role("admin")
    org = ctx.require_org()
    actor = ctx.require_user()
    try:
        ident = uuid.UUID(token_id)
    except ValueError:
        raise NotFound("token not found") from None
    row = await db.fetchrow(
        "SELECT id, name, created_by, revoked_at FROM api_tokens WHERE id = $1 AND org_id = $2 FOR UPDATE",
        ident,
        uuid.UUID(org.id),
    )
    if row is None:
        raise NotFound("token not found")
    if row["revoked_at"] is not None:
        return
    await db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", ident)
    await emit(
        TokenRevoked(token_id=str(ident), name=row["name"], created_by=str(row["created_by"]), revoked_by=actor.user_id)
    )
