"""Identity routes: register, log in and out, who am I."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.context import Ctx
from backend.identity import service
from backend.identity.schemas import LoginIn, MeOut, RegisterIn, SessionOut, UserEnvelope


def _session_cookies(ctx: Ctx, session_token: str, csrf: str) -> list[Cookie]:
    secure = ctx.settings.cookie_secure
    max_age = ctx.settings.session_ttl_s
    return [
        Cookie(
            key=service.SESSION_COOKIE,
            value=session_token,
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=max_age,
            path="/",
        ),
        Cookie(
            key=service.CSRF_COOKIE,
            value=csrf,
            httponly=False,
            samesite="lax",
            secure=secure,
            max_age=max_age,
            path="/",
        ),
    ]


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["identity"]

    @post("/register", status_code=HTTP_201_CREATED)
    async def register(self, ctx: Ctx, data: JSONBody[RegisterIn]) -> UserEnvelope:
        """Create an account. Duplicated username or email: 409."""
        return UserEnvelope(user=await service.register(ctx, data))

    @post("/login", status_code=HTTP_200_OK)
    async def login(self, ctx: Ctx, data: JSONBody[LoginIn]) -> Response[MeOut]:
        """Sign in with username or email; sets the session and csrftoken cookies."""
        user = await service.check_credentials(ctx, data)
        token, session = await service.create_session(ctx.redis, user.id, ctx.settings.session_ttl_s)
        return Response(await service.me(user.id), cookies=_session_cookies(ctx, token, session.csrf))

    @post("/logout", status_code=HTTP_204_NO_CONTENT)
    async def logout(self, request: Request) -> Response[None]:
        token = request.cookies.get(service.SESSION_COOKIE)
        if token:
            await service.end_session(request.app.state.services.redis, token)
        return Response(
            None,
            status_code=HTTP_204_NO_CONTENT,
            cookies=[
                Cookie(key=service.SESSION_COOKIE, value="", max_age=0, path="/", httponly=True),
                Cookie(key=service.CSRF_COOKIE, value="", max_age=0, path="/"),
            ],
        )


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["identity"]

    @get("/")
    async def me(self, ctx: Ctx) -> MeOut:
        """The signed-in user and their orgs with roles."""
        principal = ctx.require_user()
        return await service.me(principal.user_id)


class SessionController(Controller):
    path = "/api/v1/session"
    tags = ["identity"]

    @get("/")
    async def session(self, ctx: Ctx) -> SessionOut:
        """The signed-in user and their orgs, or `user: null` (200) when signed out."""
        if ctx.principal is None:
            return SessionOut(user=None, orgs=[])
        me = await service.me(ctx.principal.user_id)
        return SessionOut(user=me.user, orgs=me.orgs)
