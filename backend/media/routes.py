"""GET /media/image: a remote image of a post, fetched by the forum (signed URLs only)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter

from backend.errors import Forbidden
from backend.media.service import ProxyLimits, fetch_image
from backend.media.urls import MAX_URL_CHARS, PROXY_PATH, current_signer

_ERRORS = {
    400: ResponseSpec(None, description="not an http(s) URL"),
    403: ResponseSpec(None, description="bad signature, or the image's address is not public"),
    502: ResponseSpec(None, description="the host failed, or sent no image / SVG / too large a body"),
    504: ResponseSpec(None, description="the host did not answer in time"),
}


@get(PROXY_PATH, tags=["media"], responses=_ERRORS, media_type="image/*")
async def image_proxy(
    request: Request,
    url: Annotated[str, Parameter(min_length=1, max_length=MAX_URL_CHARS, examples=[Example(value="https://x/a.png")])],
    sig: Annotated[str, Parameter(min_length=1, max_length=64)],
) -> Response[bytes]:
    """The image at `url` (as a post's HTML names it), without the reader's address reaching its host."""
    signer = current_signer()
    if signer is None or not signer.verify(url, sig):
        raise Forbidden("this image URL is not signed by the forum")
    image = await fetch_image(url, ProxyLimits.from_settings(request.app.state.services.settings))
    return Response(
        image.body,
        media_type=image.content_type,
        headers={
            "Cache-Control": "public, max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
