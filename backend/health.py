"""GET /healthz: 200 once PostgreSQL and Redis answer, 503 naming the failing part otherwise."""

from __future__ import annotations

import asyncio

from litestar import Request, Response, get

from backend.errors import UNAVAILABLE_RETRY_AFTER_S
from engine import db


@get("/healthz", tags=["ops"])
async def healthz(request: Request) -> Response[dict[str, object]]:
    services = request.app.state.services
    failing: list[str] = []

    async def check_db() -> None:
        async with db.pool().acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")

    async def check_redis() -> None:
        await services.redis.ping()

    for name, check in (("database", check_db), ("redis", check_redis)):
        try:
            await asyncio.wait_for(check(), timeout=2)
        except Exception:  # any failure means "not healthy"; the reason is not leaked
            failing.append(name)
    if failing:
        return Response(
            {"status": "unavailable", "failing": failing},
            status_code=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        )
    return Response({"status": "ok"}, status_code=200)
