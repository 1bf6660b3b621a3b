"""Signed same-origin URLs of the image proxy: only URLs the forum itself wrote into a post are fetched
(an HMAC of the remote URL under a key derived from `FORUM_SECRET_KEY`), so the proxy is not an open relay.

The key is configured once per process at startup (web lifespan, worker start); until then remote images
render as plain links, which never leak a reader's address either."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

PROXY_PATH = "/media/image"  # outside /api: no session, no database transaction while it fetches
MAX_URL_CHARS = 2048


@dataclass(frozen=True, slots=True)
class ImageSigner:
    key: bytes

    def signature(self, url: str) -> str:
        return hmac.new(self.key, url.encode(), hashlib.sha256).hexdigest()[:40]

    def verify(self, url: str, sig: str) -> bool:
        return hmac.compare_digest(self.signature(url).encode(), sig.encode())  # bytes: any text compares

    def __call__(self, url: str) -> str:
        """The proxy URL of remote image `url`."""
        return f"{PROXY_PATH}?url={quote(url, safe='')}&sig={self.signature(url)}"


def signer_for(secret_key: str) -> ImageSigner:
    return ImageSigner(hmac.new(secret_key.encode(), b"forum image proxy v1", hashlib.sha256).digest())


class _Configured:
    signer: ImageSigner | None = None


def configure_image_signing(secret_key: str) -> ImageSigner:
    """Called by the process's startup with the settings' secret key."""
    _Configured.signer = signer_for(secret_key)
    return _Configured.signer


def current_signer() -> ImageSigner | None:
    return _Configured.signer
