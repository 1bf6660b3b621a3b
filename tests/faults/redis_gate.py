"""A TCP relay between one process and Redis that can stop forwarding a chosen command: the fault of a
process whose Redis write never leaves (to kill it right then). Only the byte stream is inspected."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit


class RedisGate:
    """Runs on an event loop of its own in a daemon thread: nothing it does can block the test's loop."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.upstream = (parts.hostname, parts.port) if parts.scheme == "redis" else None
        self.unix_path = parts.path if parts.scheme == "unix" else None
        self.db = parts.path.lstrip("/") if parts.scheme == "redis" else ""
        self.query = parts.query
        self.hold_commands: tuple[bytes, ...] = ()
        self.held = threading.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        suffix = f"/{self.db}" if self.db else ""
        if self.unix_path and self.query:
            suffix = "?" + self.query  # unix://path?db=N
        return f"redis://127.0.0.1:{self.port}{suffix}"

    def hold(self, *commands: bytes) -> None:
        """From now on, a client chunk naming one of `commands` (and all after it on that connection)
        is held forever."""
        self.hold_commands = tuple(c.upper() for c in commands)

    async def start(self) -> RedisGate:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def listen() -> None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            self._loop.run_until_complete(listen())
            self._loop.run_forever()

        threading.Thread(target=run, daemon=True, name="redis-gate").start()
        await asyncio.to_thread(ready.wait, 10)
        return self

    async def wait_held(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self.held.wait, timeout_s)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path:
            return await asyncio.open_unix_connection(self.unix_path)
        host, port = self.upstream  # type: ignore[misc]
        return await asyncio.open_connection(host, port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._open_upstream()
        holding = False

        async def client_to_server() -> None:
            nonlocal holding
            while data := await reader.read(65536):
                if not holding and self.hold_commands and any(c in data.upper() for c in self.hold_commands):
                    holding = True
                    self.held.set()
                if holding:
                    continue  # swallowed: the command never reaches Redis
                up_writer.write(data)
                await up_writer.drain()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        with contextlib.suppress(Exception):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            w.close()

    async def close(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
