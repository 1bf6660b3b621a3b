"""The fan-out benchmark's baseline: a minimal Litestar websocket broadcast fed by Redis pub/sub.

No auth, tenancy, persistence, resume or limits: one PSUBSCRIBE listener, channel → sockets, a queue and
a sender task per socket. It speaks the same subscribe/event JSON as ours so the clients are identical.

`python -m bench.fanout_baseline --port P` with BENCH_REDIS_URL set; same uvicorn settings as `forum web`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from litestar import Litestar, WebSocket, get, websocket
from redis.asyncio import Redis

CHANNELS: dict[str, set[asyncio.Queue[str]]] = {}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@websocket("/ws")
async def broadcast_socket(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    queue: asyncio.Queue[str] = asyncio.Queue()
    joined: list[str] = []

    async def sender() -> None:
        while True:
            await socket.send_text(await queue.get())

    task = asyncio.create_task(sender())
    try:
        while True:
            op = json.loads(await socket.receive_text())
            if op.get("op") == "subscribe":
                CHANNELS.setdefault(op["channel"], set()).add(queue)
                joined.append(op["channel"])
                queue.put_nowait(json.dumps({"op": "subscribed", "channel": op["channel"]}))
    except Exception:
        pass
    finally:
        task.cancel()
        for channel in joined:
            CHANNELS.get(channel, set()).discard(queue)


async def listen(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.psubscribe("thread:*")
    async for message in pubsub.listen():
        if message["type"] != "pmessage":
            continue
        channel = message["channel"].decode()
        text = json.dumps({"op": "event", "channel": channel, "data": json.loads(message["data"])})
        for queue in tuple(CHANNELS.get(channel, ())):
            queue.put_nowait(text)


def create_app(redis_url: str) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis = Redis.from_url(redis_url)
        task = asyncio.create_task(listen(redis))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await redis.aclose()

    return Litestar(route_handlers=[healthz, broadcast_socket], lifespan=[lifespan])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_baseline")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(os.environ["BENCH_REDIS_URL"]),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        access_log=False,
    )


if __name__ == "__main__":
    main()
