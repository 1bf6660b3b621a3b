"""The org's remote-image setting turned into the renderer's ImagePolicy."""

from __future__ import annotations

from backend.abuse.service import load_forum_settings
from backend.content import LINK_IMAGES, ImagePolicy
from backend.media.urls import current_signer


async def image_policy() -> ImagePolicy:
    """For the current tenant: proxied images (the default) or plain links. Proxying needs the
    process's signing key; without one, links (nothing ever loads from a third party)."""
    settings = await load_forum_settings()
    signer = current_signer()
    if settings.images.remote == "proxy" and signer is not None:
        return ImagePolicy(mode="proxy", proxy_url=signer)
    return LINK_IMAGES
