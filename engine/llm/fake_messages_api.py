"""A local fake of Anthropic's Messages API: a real HTTP/1.1 server on 127.0.0.1 for tests and benchmarks.

It runs its own asyncio loop in a background thread, so the official SDK talks to it over a real socket
from any event loop (or from synchronous code). `POST /v1/messages` answers with SSE when the body has
`"stream": true` (message_start, content_block_start, ping, content_block_delta text_delta…,
content_block_stop, message_delta with stop_reason and usage, message_stop) and with a JSON message
otherwise. The key is accepted from `x-api-key` or `Authorization: Bearer`; anything else is a 401.

Behaviour is scripted with `Script` (normal reply, per-token delay, a mid-stream `error` event, a hang,
an HTTP error status before streaming). Every request received is recorded as a `ReceivedRequest`.

    with FakeMessagesAPI(api_key="test-key") as server:
        server.script = Script(text="Hello there.", fail_after_deltas=1)
        client = AsyncAnthropic(api_key=…, base_url=server.base_url, max_retries=0)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from engine.llm.base import count_tokens, word_deltas

KeyHeader = Literal["x-api-key", "authorization"]

MAX_BODY_BYTES = 1 << 20
MAX_HEADER_BYTES = 64 << 10

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    529: "Overloaded",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Script:
    """How the fake answers the next requests."""

    text: str = "The fake Messages API streams this reply one word at a time."
    # Seconds to wait before each text delta.
    token_delay_s: float = 0.0
    # Send an `error` event (overloaded_error) after this many text deltas.
    fail_after_deltas: int | None = None
    # Never finish: stop sending after this many text deltas (0 = right after message_start).
    hang_after_deltas: int | None = None
    # Never send response headers at all.
    hang_before_headers: bool = False
    # Answer with this HTTP error status before any streaming (e.g. 400, 429, 500, 529).
    status: int | None = None
    # Echo the received key in 401 messages (a hostile server: proves clients redact it).
    echo_key_on_401: bool = True


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    key_header: KeyHeader | None
    key_matched: bool
    body: dict[str, Any]
    headers: dict[str, str] = field(repr=False)

    @property
    def model(self) -> Any:
        return self.body.get("model")

    @property
    def max_tokens(self) -> Any:
        return self.body.get("max_tokens")

    @property
    def messages(self) -> Any:
        return self.body.get("messages")

    @property
    def system(self) -> Any:
        return self.body.get("system")

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeMessagesAPI:
    """The fake server. Start with `start()` or `with`/`async with`; `base_url` is then set."""

    def __init__(self, api_key: str | None = None, script: Script | None = None) -> None:
        self.api_key = api_key
        self._script = script or Script()
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __repr__(self) -> str:
        return f"FakeMessagesAPI(base_url={self.base_url!r})"

    # -- control (any thread) ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def script(self) -> Script:
        with self._lock:
            return self._script

    @script.setter
    def script(self, script: Script) -> None:
        with self._lock:
            self._script = script

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self, script: Script | None = None) -> None:
        """Forget recorded requests and go back to `script` (default: a normal reply)."""
        with self._lock:
            self._requests.clear()
            self._script = script or Script()

    def start(self) -> FakeMessagesAPI:
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle_connection, "127.0.0.1", 0, limit=MAX_HEADER_BYTES)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-messages-api", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        if not self.port:
            raise RuntimeError("fake Messages API did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeMessagesAPI:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- server (its own loop) --------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Every other task on this private loop is a connection handler (some may not have started yet).
        current = asyncio.current_task()
        while pending := [t for t in asyncio.all_tasks() if t is not current and not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._handle_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            # Only `stop()` cancels connections; ending quietly keeps asyncio from logging each one.
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True to keep the connection for the next one."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY_BYTES:
            await self._send_error(writer, 413, "request body too large")
            return False
        raw = await reader.readexactly(length) if length else b""
        keep_alive = headers.get("connection", "").lower() != "close"

        if path.split("?", 1)[0] != "/v1/messages":
            await self._send_error(writer, 404, f"no route {path}")
            return keep_alive
        if method != "POST":
            await self._send_error(writer, 405, f"method {method} not allowed")
            return keep_alive

        key_header, key, matched = self._authenticate(headers)
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError:
            body = {}
        with self._lock:
            script = self._script
            self._requests.append(ReceivedRequest(method, path, key_header, matched, body, headers))

        if not matched:
            shown = key if (key and script.echo_key_on_401) else "missing"
            await self._send_error(writer, 401, f"invalid x-api-key: {shown}")
            return keep_alive
        try:
            self._validate(body)
        except _BadRequest as bad:
            await self._send_error(writer, bad.status, str(bad))
            return keep_alive
        if script.hang_before_headers:
            await self._hang(reader)
            return False
        if script.status is not None:
            await self._send_error(writer, script.status, f"scripted {script.status}")
            return keep_alive
        if body.get("stream"):
            return await self._stream(reader, writer, body, script) and keep_alive
        await self._send_message(writer, body, script)
        return keep_alive

    def _authenticate(self, headers: dict[str, str]) -> tuple[KeyHeader | None, str | None, bool]:
        key_header: KeyHeader | None = None
        key: str | None = None
        if "x-api-key" in headers:
            key_header, key = "x-api-key", headers["x-api-key"]
        elif headers.get("authorization", "").lower().startswith("bearer "):
            key_header, key = "authorization", headers["authorization"][7:].strip()
        matched = key is not None and (self.api_key is None or key == self.api_key)
        return key_header, key, matched

    @staticmethod
    def _validate(body: dict[str, Any]) -> None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _BadRequest(400, "model: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise _BadRequest(400, "max_tokens: must be greater than or equal to 1")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest(400, "messages: at least one message is required")

    @staticmethod
    def _input_tokens(body: dict[str, Any]) -> int:
        def text_of(content: Any) -> str:
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return ""

        total = count_tokens(text_of(body.get("system", "")))
        for message in body.get("messages", []):
            if isinstance(message, dict):
                total += count_tokens(text_of(message.get("content", "")))
        return max(total, 1)

    @staticmethod
    def _reply(body: dict[str, Any], script: Script) -> tuple[list[str], str]:
        deltas = word_deltas(script.text)
        max_tokens = int(body["max_tokens"])
        if len(deltas) > max_tokens:
            return deltas[:max_tokens], "max_tokens"
        return deltas, "end_turn"

    def _message_id(self) -> str:
        return f"msg_fake_{next(self._ids):06d}"

    async def _send_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        error_type = _ERROR_TYPES.get(status, "api_error")
        payload = {"type": "error", "error": {"type": error_type, "message": message}}
        await self._send_json(writer, status, payload)

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        reason = _REASONS.get(status, "Error")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nrequest-id: req_fake_{next(self._ids):06d}\r\n\r\n".encode()
            + data
        )
        await writer.drain()

    async def _send_message(self, writer: asyncio.StreamWriter, body: dict[str, Any], script: Script) -> None:
        deltas, stop_reason = self._reply(body, script)
        await self._send_json(
            writer,
            200,
            {
                "id": self._message_id(),
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "".join(deltas)}],
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": self._input_tokens(body), "output_tokens": len(deltas)},
            },
        )

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: dict[str, Any], script: Script
    ) -> bool:
        """Stream one SSE reply with chunked transfer encoding; False if the connection must close."""
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            + f"request-id: req_fake_{next(self._ids):06d}\r\n".encode()
            + b"transfer-encoding: chunked\r\n\r\n"
        )

        async def event(name: str, data: dict[str, Any]) -> None:
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()

        deltas, stop_reason = self._reply(body, script)
        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self._message_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self._input_tokens(body), "output_tokens": 1},
                },
            },
        )
        if script.hang_after_deltas == 0:
            await self._hang(reader)
            return False
        await event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        await event("ping", {"type": "ping"})
        for sent in range(len(deltas) + 1):
            if script.fail_after_deltas is not None and sent == script.fail_after_deltas:
                await event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            if script.hang_after_deltas is not None and sent == script.hang_after_deltas:
                await self._hang(reader)
                return False
            if sent == len(deltas):
                break
            if script.token_delay_s:
                await asyncio.sleep(script.token_delay_s)
            await event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": deltas[sent]},
                },
            )
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": len(deltas)},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    async def _hang(reader: asyncio.StreamReader) -> None:
        """Send nothing more until the client gives up (EOF) or the server stops."""
        while await reader.read(65536):
            pass
