"""The image proxy (backend/media): remote images in posts reach readers through the forum, bounded.

The machine has no internet: the "remote" host is a local HTTP server on 127.0.0.1 that this test
starts. Loopback is a private address, so the production configuration refuses it (tested below); the
fetching tests allow exactly that server's host:port through `image_proxy_allow_private`, so a redirect
to any other private address is still refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from backend.media.urls import current_signer
from tests.factories import make_forum, make_thread

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


class _Upstream(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    other_port = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Upstream.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        path = self.path.split("?")[0]
        if path == "/a.png":
            self._send(200, "image/png", PNG)
        elif path == "/big.png":
            self._send(200, "image/png", b"\x00" * 5000)
        elif path == "/big-chunked.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"\x00" * 1000)
            self.close_connection = True
        elif path == "/x.svg":
            self._send(200, "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>")
        elif path == "/page":
            self._send(200, "text/html", b"<script>alert(1)</script>")
        elif path == "/to-same":
            self._redirect("/a.png")
        elif path == "/to-private":
            self._redirect(f"http://127.0.0.1:{_Upstream.other_port}/a.png")
        elif path == "/slow.png":
            time.sleep(3)
            self._send(200, "image/png", PNG)
        else:
            self._send(404, "text/plain", b"no")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Upstream) for _ in range(2)]
    _Upstream.other_port = servers[1].server_address[1]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    yield f"127.0.0.1:{servers[0].server_address[1]}"
    for s in servers:
        s.shutdown()
        s.server_close()


def _proxy_srcs(html: str) -> list[str]:
    return [unescape(part.split('"', 1)[0]) for part in html.split('<img src="')[1:]]


async def test_post_images_are_served_by_the_proxy_without_the_readers_headers(
    app: object, make_client: Any, make_app: Any, upstream: str
) -> None:
    forum = await make_forum(make_client)
    created = await make_thread(
        forum.member,
        forum.slug,
        "general",
        body=f"look ![a png](http://{upstream}/a.png) and ![svg](http://{upstream}/x.svg)",
    )
    html = created["post"]["html"]
    assert upstream not in html.replace(f"http%3A%2F%2F{upstream.replace(':', '%3A')}", "")
    png_src, svg_src = _proxy_srcs(html)
    assert urlsplit(png_src).path == "/media/image"
    allowed = make_client(application=make_app(image_proxy_allow_private=upstream))
    allowed.cookies.update(forum.member.cookies)  # a signed-in reader: none of it may reach the image's host
    _Upstream.seen.clear()
    r = await allowed.get(png_src, headers={"Referer": "http://testserver/t/1", "X-Forwarded-For": "198.51.100.9"})
    assert r.status_code == 200, r.text
    assert r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    [request] = _Upstream.seen
    assert "cookie" not in request and "referer" not in request and "x-forwarded-for" not in request
    assert "198.51.100.9" not in str(request) and "203.0.113" not in str(request)
    r = await allowed.get(svg_src)
    assert r.status_code == 502 and "SVG" in r.json()["detail"]


async def test_production_configuration_refuses_private_and_loopback_targets(
    app: object, make_client: Any, upstream: str
) -> None:
    signer = current_signer()
    assert signer is not None
    client = make_client()
    _Upstream.seen.clear()
    for url in (f"http://{upstream}/a.png", "http://localhost:9/a.png", "http://10.0.0.1/a.png", "http://[::1]:80/x"):
        r = await client.get(signer(url))
        assert r.status_code == 403, (url, r.text)
        assert "not public" in r.json()["detail"]
    assert _Upstream.seen == []  # refused before any connection


async def test_unsigned_or_forged_urls_are_refused(app: object, make_client: Any, make_app: Any, upstream: str) -> None:
    client = make_client(application=make_app(image_proxy_allow_private=upstream))
    signer = current_signer()
    assert signer is not None
    url = f"http://{upstream}/a.png"
    forged = signer(f"http://{upstream}/other.png").replace("other.png", "a.png")
    for path in (f"/media/image?url={url}&sig=0000", forged, f"/media/image?url={url}"):
        r = await client.get(path)
        assert r.status_code in (400, 403), (path, r.status_code)
    r = await client.get(signer("file:///etc/passwd"))
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/a.png", 200, ""),
        ("/to-same", 200, ""),  # a redirect on the allowed host is followed
        ("/to-private", 403, "not public"),  # a redirect to another private address is not
        ("/page", 502, "not an image"),
        ("/big.png", 502, "larger than"),  # declared too large
        ("/big-chunked.png", 502, "larger than"),  # no length, cut while streaming
        ("/missing.png", 502, "404"),
        ("/slow.png", 504, "in time"),
    ],
)
async def test_proxy_limits(
    app: object, make_client: Any, make_app: Any, upstream: str, path: str, status: int, detail: str
) -> None:
    client = make_client(
        application=make_app(image_proxy_allow_private=upstream, image_proxy_max_bytes=4096, image_proxy_timeout_s=1.0)
    )
    signer = current_signer()
    assert signer is not None
    started = time.monotonic()
    r = await client.get(signer(f"http://{upstream}{path}"))
    assert r.status_code == status, r.text
    if status == 200:
        assert r.content == PNG
    else:
        assert detail in r.json()["detail"]
    assert time.monotonic() - started < 2.5


async def test_org_setting_link_turns_remote_images_into_links(app: object, make_client: Any) -> None:
    forum = await make_forum(make_client)
    r = await forum.admin.get(f"{forum.base}/settings")
    assert r.json()["images"] == {"remote": "proxy"}  # the default
    r = await forum.admin.put(f"{forum.base}/settings", json={**r.json(), "images": {"remote": "link"}})
    assert r.status_code == 200, r.text
    created = await make_thread(forum.member, forum.slug, "general", body="![cat](https://img.example/cat.png)")
    html = created["post"]["html"]
    assert "<img" not in html and 'href="https://img.example/cat.png"' in html
    r = await forum.member.post(f"{forum.base}/preview", json={"body": "![cat](https://img.example/cat.png)"})
    assert "<img" not in r.json()["html"]
    r = await forum.admin.put(f"{forum.base}/settings", json={"images": {"remote": "nope"}})
    assert r.status_code == 400
