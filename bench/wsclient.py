"""A lean websocket client for the fan-out benchmark, run in its own process.

The benchmark measures the server, so the clients must cost as little as possible: with a full websocket
library each received message wakes a task, and 1,000 sockets in one Python process spend more CPU than
the server they measure. Here each socket is a bare `asyncio.Protocol` that parses server frames
(RFC 6455: unmasked from the server, masked from us) and only records (arrival time, payload); JSON is
decoded after the measurement. Arrival times are `time.time()`, the clock the server's signal
`occurred_at` and the parent's write times are taken with (one machine, so one clock).

`ClientPool` (parent side) starts `serve()` in a child process and talks to it over a pipe.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import resource
import struct
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + body


class FrameProtocol(asyncio.Protocol):
    """One client socket: the upgrade handshake, then frames; text payloads go to `on_text`."""

    def __init__(self, host: str, path: str, on_text: Callable[[FrameProtocol, bytes], None]) -> None:
        self.host, self.path, self.on_text = host, path, on_text
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(_masked_frame(_OP_TEXT, text.encode()))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self.upgraded.done():
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buf[: self._buf.find(b"\r\n")])
            del self._buf[: end + 4]
            if b" 101 " not in status + b" ":
                self.upgraded.set_exception(ConnectionError(f"upgrade refused: {status.decode(errors='replace')}"))
                return
            self.upgraded.set_result(None)
        buf = self._buf
        while len(buf) >= 2:
            opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
            start = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, start = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, start = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < start + n:
                return
            payload = bytes(buf[start : start + n])
            del buf[: start + n]
            if opcode in (_OP_TEXT, _OP_BINARY):  # the server never fragments these small messages
                self.on_text(self, payload)
            elif opcode == _OP_PING and self.transport is not None:
                self.transport.write(_masked_frame(_OP_PONG, payload))
            elif opcode == _OP_CLOSE:
                self.closed = True
                if self.transport is not None:
                    self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))


class _Clients:
    """The child process's side: N sockets and every text message they received since `reset`."""

    def __init__(self) -> None:
        self.sockets: list[FrameProtocol] = []
        self.arrivals: list[tuple[float, bytes]] = []
        self.acks: dict[FrameProtocol, asyncio.Future[bytes]] = {}

    def _on_text(self, sock: FrameProtocol, payload: bytes) -> None:
        ack = self.acks.get(sock)
        if ack is not None and not ack.done():
            ack.set_result(payload)
            return
        self.arrivals.append((time.time(), payload))

    async def open(self, url: str, channels: list[str], concurrency: int) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)

        async def one(channel: str) -> None:
            async with gate:
                _, sock = await loop.create_connection(
                    lambda: FrameProtocol(f"{host}:{port}", path, self._on_text), host, port
                )
                await asyncio.wait_for(sock.upgraded, 60)
                ack = self.acks[sock] = loop.create_future()
                sock.send_text(f'{{"op": "subscribe", "channel": "{channel}"}}')
                try:
                    reply = await asyncio.wait_for(ack, 60)
                finally:
                    del self.acks[sock]
                if b'"subscribed"' not in reply:
                    raise RuntimeError(f"subscribe refused: {reply.decode(errors='replace')}")
                self.sockets.append(sock)

        await asyncio.gather(*(one(c) for c in channels))

    async def wait_for(self, expected: int, within_s: float) -> int:
        deadline = time.monotonic() + within_s
        while len(self.arrivals) < expected and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(0.01)
        return len(self.arrivals)

    def close(self) -> None:
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.close()
        self.sockets.clear()


def serve(conn: Connection) -> None:
    """The child process: obey the parent's commands until `exit`."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main() -> None:
        clients = _Clients()
        loop = asyncio.get_running_loop()
        while True:
            cmd: dict[str, Any] = await loop.run_in_executor(None, conn.recv)
            op = cmd["op"]
            try:
                if op == "open":
                    await clients.open(cmd["url"], cmd["channels"], cmd.get("concurrency", 100))
                    reply: Any = len(clients.sockets)
                elif op == "reset":
                    clients.arrivals = []
                    reply = 0
                elif op == "wait":
                    reply = await clients.wait_for(cmd["expected"], cmd["within_s"])
                elif op == "take":
                    reply, clients.arrivals = clients.arrivals, []
                elif op == "close":
                    clients.close()
                    await asyncio.sleep(0.2)
                    reply = 0
                else:  # exit
                    clients.close()
                    conn.send(0)
                    return
                conn.send(reply)
            except Exception as exc:  # reported to the parent, which raises it
                conn.send(exc)

    asyncio.run(main())


class ClientPool:
    """The parent's handle on one client process."""

    def __init__(self) -> None:
        self._conn, child = multiprocessing.get_context("spawn").Pipe()
        self._proc = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
        self._proc.start()
        self._lock = asyncio.Lock()

    async def _call(self, **cmd: Any) -> Any:
        async with self._lock:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._conn.send, cmd)
            reply = await loop.run_in_executor(None, self._conn.recv)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def open(self, url: str, channels: list[str]) -> int:
        return int(await self._call(op="open", url=url, channels=channels))

    async def reset(self) -> None:
        await self._call(op="reset")

    async def wait_for(self, expected: int, within_s: float) -> int:
        return int(await self._call(op="wait", expected=expected, within_s=within_s))

    async def take(self) -> list[tuple[float, bytes]]:
        return list(await self._call(op="take"))

    async def close(self) -> None:
        await self._call(op="close")

    async def exit(self) -> None:
        try:
            await asyncio.wait_for(self._call(op="exit"), 10)
        finally:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
