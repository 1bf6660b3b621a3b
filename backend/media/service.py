"""The image proxy's fetch: remote images reach readers through the forum, so third parties never see a
reader's IP address. Bounded: http(s) only, public addresses only (the connection goes to the address
that was checked, so DNS cannot rebind it), a few redirects each checked again, `image/*` but never SVG,
a size cap read as it streams, one overall deadline, and a per-process limit on concurrent fetches."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from backend.errors import ApiError, Forbidden, Invalid
from backend.settings import Settings

MAX_REDIRECTS = 3
_CONCURRENT_FETCHES = asyncio.Semaphore(16)
_REFUSED_TYPES = frozenset({"image/svg+xml", "image/svg"})


class UpstreamFailed(ApiError):
    status_code = 502


class UpstreamTimeout(ApiError):
    status_code = 504


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    max_bytes: int
    timeout_s: float
    private_allowed: frozenset[str]  # "host:port" targets allowed despite a private address (tests only)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyLimits:
        allowed = frozenset(a.strip().lower() for a in settings.image_proxy_allow_private.split(",") if a.strip())
        return cls(settings.image_proxy_max_bytes, settings.image_proxy_timeout_s, allowed)


@dataclass(frozen=True, slots=True)
class FetchedImage:
    content_type: str
    body: bytes


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int, limits: ProxyLimits) -> str:
    """One address of `host` to connect to; every address it resolves to must be public (or the target
    explicitly allowed), else the fetch is refused."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise UpstreamFailed("the image's host does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UpstreamFailed("the image's host does not resolve")
    if f"{host.lower()}:{port}" not in limits.private_allowed and not all(_is_public(a) for a in addresses):
        raise Forbidden("the image's address is not public")
    return addresses[0]


def _target(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise Invalid("only http(s) image URLs without credentials are proxied", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Invalid("the image URL's port is invalid", field="url") from None
    return parts.scheme, parts.hostname, port


async def _fetch_once(client: httpx.AsyncClient, url: str, limits: ProxyLimits) -> FetchedImage | str:
    """The image, or the next URL when the answer is a redirect."""
    scheme, host, port = _target(url)
    address = await _resolve(host, port, limits)
    parts = urlsplit(url)
    pinned_host = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{pinned_host}:{port}").geturl()
    headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "image/*", "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    async with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("location")
            if not location:
                raise UpstreamFailed("the image's host answered a redirect without a location")
            return urljoin(url, location)
        if response.status_code != 200:
            raise UpstreamFailed(f"the image's host answered {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/") or content_type in _REFUSED_TYPES:
            raise UpstreamFailed("the URL is not an image the forum shows (image/*, not SVG)")
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            raise UpstreamFailed("the image's host sent an encoded body")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
            raise UpstreamFailed(f"the image is larger than {limits.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limits.max_bytes:
                raise UpstreamFailed(f"the image is larger than {limits.max_bytes} bytes")
        return FetchedImage(content_type, bytes(body))


async def fetch_image(url: str, limits: ProxyLimits) -> FetchedImage:
    timeout = httpx.Timeout(limits.timeout_s)
    async with _CONCURRENT_FETCHES:
        try:
            async with (
                asyncio.timeout(limits.timeout_s),
                httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, verify=True) as client,
            ):
                for _ in range(MAX_REDIRECTS + 1):
                    result = await _fetch_once(client, url, limits)
                    if isinstance(result, FetchedImage):
                        return result
                    url = result
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamTimeout("the image's host did not answer in time") from None
        except httpx.HTTPError:
            raise UpstreamFailed("the image could not be fetched") from None
    raise UpstreamFailed("too many redirects")
