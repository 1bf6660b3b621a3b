"""The composition root: builds the Litestar app and lists every controller, middleware and hook."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from redis.asyncio import Redis

from backend.agents.routes import AgentsController
from backend.agents.runtime import build_runtime
from backend.context import Services, provide_ctx
from backend.errors import DATABASE_FAILURES, REDIS_FAILURES, service_unavailable, undecodable_input
from backend.forum.routes import ForumController
from backend.forum.thread_page import thread_page
from backend.health import healthz
from backend.idempotency import IdempotencyMiddleware, document_idempotency_key
from backend.identity.routes import AuthController, MeController, SessionController
from backend.media.routes import image_proxy
from backend.media.urls import configure_image_signing
from backend.middleware import RequestContextMiddleware
from backend.moderation.routes import ModerationController
from backend.notifications.routes import NotificationController
from backend.openapi import document_error_responses
from backend.orgs.routes import OrgController
from backend.profiles.routes import ProfileController
from backend.reading.routes import ReadingController
from backend.realtime_routes import org_socket, realtime_lifespan
from backend.routing.routes import RoutingController
from backend.search import embedding
from backend.search.routes import SearchController
from backend.settings import Settings
from engine import db
from engine.agents.queue import DirectiveQueue
from engine.relay import StreamConfig

log = logging.getLogger("forum.web")


def create_app(settings: Settings) -> Litestar:
    database_url, redis_url = settings.require_urls()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.connect(database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        redis = Redis.from_url(redis_url, decode_responses=False, health_check_interval=30)
        queue = DirectiveQueue(
            redis_url,
            timeout_s=settings.agent_job_timeout_s,
            retries=settings.agent_job_retries,
            heartbeat_s=settings.agent_job_heartbeat_s,
        )
        runtime = build_runtime(settings, redis, queue)
        model_loading = embedding.warm_up()  # compose-time suggestions should not wait for the first load
        configure_image_signing(settings.secret_key)
        app.state.services = Services(
            settings=settings,
            redis=redis,
            streams=StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen),
            agents=runtime,
        )
        try:
            yield
        finally:
            model_loading.cancel()
            await runtime.llm.aclose()
            await queue.disconnect()
            await redis.aclose()
            await db.disconnect()

    route_handlers: list[object] = [
        healthz,
        AuthController,
        MeController,
        OrgController,
        ForumController,
        ModerationController,
        SearchController,
        AgentsController,
        RoutingController,
        ReadingController,
        image_proxy,
    ]
    route_handlers += [NotificationController, org_socket]  # issue 4: notifications, websocket
    route_handlers += [SessionController, ProfileController, thread_page]  # issue 10: the web UI's reads, crawlers
    frontend_dist = Path(settings.frontend_dist)
    if (frontend_dist / "index.html").is_file():
        route_handlers.append(
            create_static_files_router(path="/", directories=[frontend_dist], html_mode=True, include_in_schema=False)
        )
    else:
        log.warning("no frontend build at %s: run `make frontend`", settings.frontend_dist)

    return Litestar(
        route_handlers=route_handlers,  # type: ignore[arg-type]
        dependencies={"ctx": Provide(provide_ctx, sync_to_thread=False)},
        middleware=[RequestContextMiddleware, IdempotencyMiddleware],  # the second runs inside the first's transaction
        lifespan=[lifespan, realtime_lifespan],  # realtime starts after the services, stops before
        on_startup=[document_error_responses, document_idempotency_key],
        request_max_body_size=settings.max_body_bytes,
        exception_handlers={
            UnicodeDecodeError: undecodable_input,
            **dict.fromkeys(DATABASE_FAILURES + REDIS_FAILURES, service_unavailable),  # outages: 503
        },
        openapi_config=OpenAPIConfig(title="FleetPrompt Forum", version="1.0.0", path="/schema"),
        logging_config=LoggingConfig(
            log_exceptions="always", disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503}
        ),
        debug=False,
    )
