"""The signal router: a consumer group over the stream partitions. For each signal, every enabled
installation whose package consumes its type plans directives; they are committed (deterministic
idempotency keys) before the entry is acknowledged, then enqueued. Entries left by dead consumers are
reclaimed with XAUTOCLAIM."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine import db
from engine.agents.api import AgentPackage, PermissionRefused
from engine.agents.directives import DirectiveRow, count_recent, count_recent_all, decide, request_directive
from engine.agents.registry import AgentRuntime
from engine.agents.signals import DirectiveRefused
from engine.relay import StreamConfig
from engine.signals import Signal, SignalContext, emit, is_imported
from engine.work import tenant_work

log = logging.getLogger("forum.router")
GROUP = "router"
MAX_DELIVERIES = 5


def decode_entry(fields: dict[Any, Any]) -> Signal:
    data = fields.get(b"data") or fields.get("data")
    if data is None:
        raise ValueError("stream entry without a data field")
    return msgspec.json.decode(data, type=Signal)


def merged_config(package: AgentPackage, config: Any) -> dict[str, Any]:
    stored = msgspec.json.decode(config) if isinstance(config, str) else (config or {})
    return {**package.manifest.default_config, **stored}


class SignalRouter:
    def __init__(
        self,
        *,
        redis: Redis,
        streams: StreamConfig,
        runtime: AgentRuntime,
        consumer: str,
        claim_idle_ms: int = 30_000,
        block_ms: int = 1_000,
        batch: int = 50,
    ) -> None:
        self.redis = redis
        self.streams = streams
        self.runtime = runtime
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.batch = batch

    async def ensure_groups(self) -> None:
        for key in self.streams.all_stream_keys():
            try:
                await self.redis.xgroup_create(key, GROUP, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        await self.ensure_groups()
        keys = self.streams.all_stream_keys()
        last_claim = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_claim > self.claim_idle_ms / 2000:
                    last_claim = time.monotonic()
                    await self.reclaim()
                response: Any = await self.redis.xreadgroup(
                    GROUP, self.consumer, dict.fromkeys(keys, ">"), count=self.batch, block=self.block_ms
                )
                for stream, entries in response or []:
                    for entry_id, fields in entries:
                        await self.process(stream, entry_id, fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting, a transient DB error: back off and go on
                if "NOGROUP" in str(exc):
                    await self.ensure_groups()
                log.warning("router: %s: %s; retrying", type(exc).__name__, exc)
                await asyncio.sleep(0.5)

    async def process(self, stream: Any, entry_id: Any, fields: dict[Any, Any] | None) -> None:
        if not fields:
            await self.redis.xack(stream, GROUP, entry_id)
            return
        try:
            signal = decode_entry(fields)
            await self.route(signal)
        except Exception:
            log.exception("router: signal %s failed; it stays pending and will be retried", entry_id)
            return
        await self.redis.xack(stream, GROUP, entry_id)

    async def reclaim(self) -> None:
        """Take over entries another consumer read but never acknowledged (it died)."""
        for key in self.streams.all_stream_keys():
            start: Any = "0-0"
            while True:
                reply = await self.redis.xautoclaim(
                    key,
                    GROUP,
                    self.consumer,
                    min_idle_time=self.claim_idle_ms,
                    start_id=start,
                    count=self.batch,
                )
                next_start, entries = reply[0], reply[1]  # Redis 6.2 replies with 2 items, 7 with 3
                for entry_id, fields in entries:
                    if await self._delivered_too_often(key, entry_id):
                        log.error("router: giving up on %s %s after %d deliveries", key, entry_id, MAX_DELIVERIES)
                        await self.redis.xack(key, GROUP, entry_id)
                        continue
                    await self.process(key, entry_id, fields)
                if next_start in (b"0-0", "0-0") or not entries:
                    break
                start = next_start

    async def _delivered_too_often(self, key: str, entry_id: Any) -> bool:
        pending = await self.redis.xpending_range(key, GROUP, min=entry_id, max=entry_id, count=1)
        return bool(pending) and int(pending[0]["times_delivered"]) > MAX_DELIVERIES

    async def route(self, signal: Signal) -> list[DirectiveRow]:
        """Plan and commit the directives one signal calls for; then enqueue the runnable ones."""
        if not routable(signal):
            return []
        context = SignalContext(
            actor_type="system",
            actor_id="router",
            source="job",
            correlation_id=signal.correlation_id,
            causation_id=signal.id,
        )
        async with tenant_work(self.redis, self.streams, signal.tenant, context):
            created = await plan_signal(self.runtime, signal)
        if self.runtime.enqueue is not None:
            for row in created:
                if row.status in ("pending", "approved"):
                    try:
                        await self.runtime.enqueue(signal.tenant, row.id)
                    except Exception as exc:  # the recovery sweep re-enqueues it from its row
                        log.warning("router: enqueue of %s failed (%s)", row.id, type(exc).__name__)
        return created


def routable(signal: Signal) -> bool:
    """The runtime's own bookkeeping and imported history never trigger agents."""
    return not signal.type.startswith("agent.") and not is_imported(signal)


async def plan_signal(
    runtime: AgentRuntime, signal: Signal, *, only_handle: str | None = None, include_existing: bool = False
) -> list[DirectiveRow]:
    """Inside the signal's tenant transaction: every enabled installation consuming the signal plans its
    directives (each checked against its manifest and the rate limits); returns the newly created rows.
    Planning the same signal again creates nothing (deterministic idempotency keys); with
    `include_existing` the rows it would have created are returned too."""
    if not routable(signal):
        return []
    installations = await db.fetch("SELECT package, config FROM installation WHERE enabled")
    candidates = [
        (runtime.packages[row["package"]], row["config"])
        for row in installations
        if row["package"] in runtime.packages
        and signal.type in runtime.packages[row["package"]].manifest.consumes
        and (only_handle is None or runtime.packages[row["package"]].manifest.agent_handle == only_handle)
    ]
    if not candidates:
        return []
    created: list[DirectiveRow] = []
    depth = await _depth(signal)
    for package, config in candidates:
        manifest = package.manifest
        if signal.actor_type == "agent" and signal.actor_id == manifest.name:
            continue  # an agent never triggers itself
        if depth > runtime.limits.max_depth:
            log.info("router: %s not triggered by %s (agent chain depth %d)", manifest.name, signal.id, depth)
            continue
        ctx = runtime.context(signal.tenant, manifest, merged_config(package, config))
        try:
            requests = await package.plan(signal, ctx)
        except PermissionRefused as exc:
            await emit(DirectiveRefused(directive_id="", type="(plan)", package=manifest.name, reason=str(exc)))
            continue
        for request in requests:
            refusal = await _over_limit(runtime, manifest.name, ctx.config, manifest.rate_limit_per_hour)
            if refusal:
                await emit(DirectiveRefused(directive_id="", type=request.type, package=manifest.name, reason=refusal))
                continue
            row, is_new = await request_directive(
                request,
                manifest=manifest,
                signal=signal,
                correlation_id=signal.correlation_id,
                depth=depth,
                refusal=runtime.directive_refusal(manifest, request.type),
            )
            if is_new and row.status == "awaiting_approval":
                row = await _waive_approval(runtime, row, ctx.config)
            if is_new or include_existing:
                created.append(row)
    return created


async def _waive_approval(runtime: AgentRuntime, row: DirectiveRow, config: dict[str, Any]) -> DirectiveRow:
    """The host's approval policies may approve a directive at once (recorded as the decider)."""
    for waiver in runtime.approval_waivers:
        decided_by = await waiver(row, config)
        if decided_by:
            return await decide(row.id, approve=True, decided_by=decided_by)
    return row


async def _depth(signal: Signal) -> int:
    if signal.actor_type != "agent":
        return 0
    parent = None
    if signal.causation_id:
        parent = await db.fetchval("SELECT depth FROM directive WHERE id::text = $1", signal.causation_id)
    return (parent or 0) + 1


async def _over_limit(runtime: AgentRuntime, package: str, config: dict[str, Any], manifest_limit: int) -> str | None:
    per_hour = min(manifest_limit, int(config.get("rate_limit_per_hour", manifest_limit)))
    if await count_recent(package, timedelta(hours=1)) >= per_hour:
        return f"rate limit: {package} may request {per_hour} directives per hour in this org"
    org_limit = runtime.limits.max_directives_per_hour
    if await count_recent_all(timedelta(hours=1)) >= org_limit:
        return f"rate limit: this org allows {org_limit} agent directives per hour"
    return None
