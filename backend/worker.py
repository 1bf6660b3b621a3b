"""The `worker` process: everything that must not depend on a web request.

- the agent signal router (consumer group over the stream partitions),
- the SAQ directive runner (jobs keyed by directive id),
- the outbox sweeper (committed signals the fast-path relay left behind),
- the requeue sweep (directives whose rows say they should run but whose jobs are gone),
- the draft sweep (drafts a dead attempt left on thread pages),
- the agents' time triggers (unanswered questions, weekly digests: backend/agents/periodic.py),
- the related-thread index upkeep (thread embeddings, term statistics: backend/search/jobs.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from saq import Worker

from backend.agents.jobs import end_orphaned_drafts
from backend.agents.periodic import sweep_digests, sweep_unanswered
from backend.agents.runtime import build_runtime
from backend.idempotency import purge_expired_keys
from backend.media.urls import configure_image_signing
from backend.search import embedding
from backend.search.jobs import maintain_related_index
from backend.settings import Settings
from engine import db
from engine.agents.queue import JOB_NAME, DirectiveQueue, heartbeat_execution, requeue_stranded
from engine.agents.router import SignalRouter
from engine.agents.runner import run_directive
from engine.llm import LLMProvider
from engine.relay import StreamConfig, sweep_outbox

log = logging.getLogger("forum.worker")


async def _every(interval_s: float, stop: asyncio.Event, name: str, work: Callable[[], Awaitable[Any]]) -> None:
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("%s failed; retrying in %.1fs", name, interval_s)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            pass


class AgentActivity:
    """When the directive runner last worked. Background upkeep (embedding threads, recounting term statistics)
    is CPU work on the same cores: it waits while agents answer, for at most `max_deferrals` passes in a row."""

    def __init__(self, quiet_s: float = 2.0, max_deferrals: int = 12) -> None:
        self.running = 0
        self.last_end = 0.0
        self.quiet_s = quiet_s
        self.max_deferrals = max_deferrals
        self.deferred = 0

    def busy(self) -> bool:
        return self.running > 0 or time.monotonic() - self.last_end < self.quiet_s

    def defer_upkeep(self) -> bool:
        """True when the upkeep should skip this pass (agents are at work and it has not waited too long)."""
        if self.busy() and self.deferred < self.max_deferrals:
            self.deferred += 1
            return True
        self.deferred = 0
        return False


async def run_worker(settings: Settings, *, llm: LLMProvider | None = None, concurrency: int = 4) -> None:
    database_url, redis_url = settings.require_urls()
    await db.connect(database_url, min_size=1, max_size=concurrency + 4)
    redis = Redis.from_url(redis_url)
    streams = StreamConfig(partitions=settings.stream_partitions, maxlen=settings.stream_maxlen)
    queue = DirectiveQueue(
        redis_url,
        timeout_s=settings.agent_job_timeout_s,
        retries=settings.agent_job_retries,
        heartbeat_s=settings.agent_job_heartbeat_s,
    )
    runtime = build_runtime(settings, redis, queue, llm=llm)
    model_loading = embedding.warm_up()  # the FAQ agent's first retrieval should not load the model
    configure_image_signing(settings.secret_key)
    router = SignalRouter(
        redis=redis,
        streams=streams,
        runtime=runtime,
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        claim_idle_ms=settings.agent_claim_idle_ms,
    )

    activity = AgentActivity()

    async def related_index_upkeep() -> None:
        if not activity.defer_upkeep():
            await maintain_related_index()

    async def run_directive_job(ctx: dict[str, Any], *, tenant: str, directive_id: str) -> dict[str, Any]:
        job = ctx["job"]

        async def heartbeat() -> None:
            await job.update()
            await heartbeat_execution(tenant, directive_id)

        activity.running += 1
        try:
            outcome = await run_directive(
                runtime,
                redis,
                streams,
                tenant,
                directive_id,
                heartbeat=heartbeat,
                live_attempt_s=settings.agent_job_heartbeat_s,
            )
        finally:
            activity.running -= 1
            activity.last_end = time.monotonic()
        if outcome.status == "retry":
            raise RuntimeError(f"attempt failed, will retry: {outcome.error}")
        return {"status": outcome.status, "execution_id": outcome.execution_id}

    saq_worker = Worker(
        queue.queue,
        functions=[(JOB_NAME, run_directive_job)],
        concurrency=concurrency,
        timers={"sweep": settings.agent_worker_sweep_s},
    )
    stop = asyncio.Event()
    log.info(
        "worker ready: router (%d partitions), directive runner (%s/%s), outbox sweeper every %.1fs",
        streams.partitions,
        runtime.llm.name,
        runtime.llm.model,
        settings.sweeper_interval_s,
    )
    await router.ensure_groups()
    tasks = [
        asyncio.create_task(router.run(stop), name="router"),
        asyncio.create_task(
            _every(
                settings.sweeper_interval_s,
                stop,
                "outbox sweep",
                lambda: sweep_outbox(db.pool(), redis, streams, older_than_s=settings.sweeper_interval_s),
            )
        ),
        asyncio.create_task(
            _every(
                settings.agent_requeue_interval_s,
                stop,
                "requeue sweep",
                lambda: requeue_stranded(queue, pending_after_s=settings.agent_requeue_after_s),
            )
        ),
        asyncio.create_task(_every(600, stop, "idempotency key purge", purge_expired_keys)),
        asyncio.create_task(
            _every(
                settings.agent_requeue_interval_s,
                stop,
                "draft sweep",
                lambda: end_orphaned_drafts(
                    redis, stale_after_s=settings.agent_draft_stale_s, draft_ttl_s=settings.ws_draft_ttl_s
                ),
            )
        ),
        asyncio.create_task(
            _every(
                settings.agent_unanswered_sweep_s,
                stop,
                "unanswered sweep",
                lambda: sweep_unanswered(runtime, redis, streams),
            )
        ),
        asyncio.create_task(
            _every(settings.agent_digest_sweep_s, stop, "digest sweep", lambda: sweep_digests(runtime, redis, streams))
        ),
    ]
    if settings.related_index_interval_s > 0:  # 0 turns the upkeep off (e.g. a worker that only routes)
        tasks.append(
            asyncio.create_task(
                _every(settings.related_index_interval_s, stop, "related index upkeep", related_index_upkeep)
            )
        )
    try:
        await saq_worker.start()  # returns on SIGINT/SIGTERM (SAQ installs the handlers)
    finally:
        log.info("worker stopping")
        stop.set()
        for task in (*tasks, model_loading):
            task.cancel()
        await asyncio.gather(*tasks, model_loading, return_exceptions=True)
        await runtime.llm.aclose()
        await queue.disconnect()
        await redis.aclose()
        await db.disconnect()
