"""Org routes: create, read, join, members, tokens."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.context import Ctx
from backend.orgs import service
from backend.orgs.schemas import (
    MemberEnvelope,
    MemberIn,
    MemberRoleIn,
    OrgEnvelope,
    OrgIn,
    TokenIn,
    TokenListOut,
    TokenOut,
)


class OrgController(Controller):
    path = "/api/v1/orgs"
    tags = ["orgs"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_org(self, ctx: Ctx, data: JSONBody[OrgIn]) -> OrgEnvelope:
        """Create an org (public or private) and its tenant schema; the creator becomes admin."""
        return OrgEnvelope(org=await service.create_org(ctx, data))

    @get("/{org:str}")
    async def get_org(self, ctx: Ctx, org: FromPath[str]) -> OrgEnvelope:
        return OrgEnvelope(org=await service.get_org(ctx))

    @post("/{org:str}/join", status_code=HTTP_200_OK)
    async def join(self, ctx: Ctx, org: FromPath[str]) -> MemberEnvelope:
        """Join a public org as a member."""
        return MemberEnvelope(member=await service.join_org(ctx))

    @post(
        "/{org:str}/members",
        status_code=HTTP_201_CREATED,
        responses={HTTP_200_OK: ResponseSpec(MemberEnvelope, description="An existing member's role was changed")},
    )
    async def add_member(self, ctx: Ctx, org: FromPath[str], data: JSONBody[MemberIn]) -> Response[MemberEnvelope]:
        """Add a member (201) or change a member's role (200). Admin only."""
        member, created = await service.add_member(ctx, data)
        return Response(MemberEnvelope(member=member), status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @post("/{org:str}/tokens", status_code=HTTP_201_CREATED)
    async def create_token(self, ctx: Ctx, org: FromPath[str], data: JSONBody[TokenIn]) -> TokenOut:
        """Create an API token bound to this org. The token is in this response only."""
        return await service.create_token(ctx, data)

    @get("/{org:str}/tokens")
    async def list_tokens(self, ctx: Ctx, org: FromPath[str]) -> TokenListOut:
        """This org's API tokens, without their secret. Admin only."""
        return await service.list_tokens(ctx)

    @delete("/{org:str}/tokens/{token_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def revoke_token(self, ctx: Ctx, org: FromPath[str], token_id: FromPath[str]) -> None:
        """Revoke a token at once: its requests answer 401 and its open websockets close (4401). Admin only."""
        await service.revoke_token(ctx, token_id)

    @patch("/{org:str}/members/{username:str}")
    async def change_member_role(
        self, ctx: Ctx, org: FromPath[str], username: FromPath[str], data: JSONBody[MemberRoleIn]
    ) -> MemberEnvelope:
        """Change a member's role; their open websockets lose the channels the new role cannot see.
        Admin only; the last admin cannot be demoted (409)."""
        return MemberEnvelope(member=await service.change_member_role(ctx, username, data))

    @delete("/{org:str}/members/{username:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove_member(self, ctx: Ctx, org: FromPath[str], username: FromPath[str]) -> None:
        """Remove a member (and revoke their tokens here); their open websockets close (4403).
        Admin only; the last admin cannot be removed (409)."""
        await service.remove_member(ctx, username)
