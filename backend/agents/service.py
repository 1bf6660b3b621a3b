"""Agent administration: installations, the signal explorer, the directive queue, executions with
their signal → directive chain, approvals, replays, feedback and metrics."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from backend.agents.config_forms import config_schema
from backend.agents.schemas import AgentOut, InstallationIn, SignalOut
from backend.context import RequestContext
from backend.errors import Conflict, Invalid, NotFound, Unprocessable
from backend.forum.queries import thread_row
from backend.forum.service import solve_thread
from backend.forum.signals import AgentFeedbackRecorded, AgentResponseRequested
from backend.forum.visibility import can_see_category, viewer_for_user
from backend.pagination import decode_cursor, encode_cursor, parse_uuid
from engine import db
from engine.agents import directives as directive_store
from engine.agents.registry import AgentRuntime
from engine.agents.router import merged_config, plan_signal
from engine.agents.runner import replay_execution
from engine.ids import uuid7
from engine.signals import emit

_CONFIG_LIMITS = ("rate_limit_per_hour", "daily_cost_cap_usd")
MAX_FEEDBACK_REASON = 500


def _runtime(ctx: RequestContext) -> AgentRuntime:
    runtime = ctx.services.agents
    if runtime is None:
        raise NotFound("agents are not configured on this server")
    return runtime


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str) else value


async def list_agents(ctx: RequestContext) -> list[AgentOut]:
    ctx.require_role("moderator")
    runtime = _runtime(ctx)
    rows = {r["package"]: r for r in await db.fetch("SELECT package, enabled, config FROM installation")}
    out = []
    for name, package in sorted(runtime.packages.items()):
        m = package.manifest
        row = rows.get(name)
        out.append(
            AgentOut(
                package=name,
                title=m.title,
                description=m.description,
                version=m.version,
                agent_handle=m.agent_handle,
                consumes=list(m.consumes),
                directives=list(m.directives),
                permissions=list(m.permissions),
                rate_limit_per_hour=m.rate_limit_per_hour,
                daily_cost_cap_usd=m.daily_cost_cap_usd,
                default_config=dict(m.default_config),
                installed=row is not None,
                enabled=bool(row and row["enabled"]),
                config=merged_config(package, row["config"] if row else {}),
                config_schema=config_schema(package),
            )
        )
    return out


async def install(ctx: RequestContext, package_name: str, data: InstallationIn) -> AgentOut:
    ctx.require_role("admin")
    runtime = _runtime(ctx)
    package = runtime.packages.get(package_name)
    if package is None:
        raise NotFound(f"no agent package {package_name!r}")
    manifest = package.manifest
    allowed = set(manifest.default_config) | set(_CONFIG_LIMITS)
    unknown = sorted(set(data.config) - allowed)
    if unknown:
        raise Invalid(f"unknown config keys for {package_name}: {', '.join(unknown)}", field="config")
    for key, ceiling in (
        ("rate_limit_per_hour", manifest.rate_limit_per_hour),
        ("daily_cost_cap_usd", manifest.daily_cost_cap_usd),
    ):
        if key in data.config:
            value = data.config[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= ceiling:
                raise Unprocessable(f"{key} must be a number between 0 and the package's {ceiling}")
    config_type = getattr(package, "config_type", None)
    if config_type is not None:
        try:
            msgspec.convert({**manifest.default_config, **data.config}, config_type, strict=False)
        except msgspec.ValidationError as exc:
            raise Unprocessable(f"invalid config for {package_name}: {exc}") from None
    await db.execute(
        "INSERT INTO installation (package, enabled, config, installed_by) VALUES ($1, $2, $3::jsonb, $4)"
        " ON CONFLICT (package) DO UPDATE SET enabled = EXCLUDED.enabled, config = EXCLUDED.config,"
        " updated_at = now()",
        package_name,
        data.enabled,
        msgspec.json.encode(data.config).decode(),
        ctx.require_user().user_id,
    )
    return next(a for a in await list_agents(ctx) if a.package == package_name)


def _page_args(cursor: str | None, limit: int | None) -> tuple[uuid.UUID | None, int]:
    page = limit or 50
    if not 1 <= page <= 200:
        raise Invalid("limit must be between 1 and 200", field="limit")
    before = parse_uuid(decode_cursor(cursor, 1)[0], "cursor") if cursor else None
    return before, page


def signal_out(row: Any) -> SignalOut:
    return SignalOut(
        id=str(row["id"]),
        type=row["type"],
        version=row["version"],
        actor_type=row["actor_type"],
        actor_id=row["actor_id"],
        source=row["source"],
        correlation_id=str(row["correlation_id"]),
        causation_id=str(row["causation_id"]) if row["causation_id"] else None,
        dedupe_key=row["dedupe_key"],
        occurred_at=row["occurred_at"],
        payload=_json(row["payload"]),
    )


async def _newest_first(
    table: str, filters: list[tuple[str, Any]], cursor: str | None, limit: int | None
) -> tuple[list[Any], str | None]:
    """Rows of `table` (a fixed name, never user input) matching `filters` — (SQL condition with `$?`,
    value) pairs — newest first by time-ordered id, with an opaque cursor."""
    before, page = _page_args(cursor, limit)
    if before is not None:
        filters = [*filters, ("id < $?", before)]
    args = [value for _, value in filters]
    where = [condition.replace("$?", f"${n}") for n, (condition, _) in enumerate(filters, start=1)]
    rows = await db.fetch(
        f"SELECT * FROM {table}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY id DESC LIMIT ${len(args) + 1}",
        *args,
        page + 1,
    )
    more = len(rows) > page
    rows = rows[:page]
    return rows, encode_cursor(rows[-1]["id"]) if more else None


async def list_signals(
    ctx: RequestContext, *, type_: str | None, correlation_id: str | None, cursor: str | None, limit: int | None
) -> tuple[list[SignalOut], str | None]:
    ctx.require_role("admin")
    filters: list[tuple[str, Any]] = []
    if type_:
        prefix = type_.endswith("*")
        filters.append(("type LIKE $?" if prefix else "type = $?", type_.rstrip("*") + "%" if prefix else type_))
    if correlation_id:
        filters.append(("correlation_id = $?", parse_uuid(correlation_id, "correlation")))
    rows, next_cursor = await _newest_first("signal", filters, cursor, limit)
    return [signal_out(r) for r in rows], next_cursor


async def list_directives(
    ctx: RequestContext,
    *,
    status: str | None,
    type_: str | None,
    cursor: str | None,
    limit: int | None,
    package: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    ctx.require_role("admin")
    filters: list[tuple[str, Any]] = []
    if status:
        filters.append(("status = $?", status))
    if package:
        filters.append(("package = $?", package))
    if type_:
        filters.append(("type = $?", type_))
    rows, next_cursor = await _newest_first("directive", filters, cursor, limit)
    return [msgspec.to_builtins(directive_store.row_to_directive(r)) for r in rows], next_cursor


# Directive types a moderator (not only an admin) may approve or reject: moderation is their job.
MODERATOR_APPROVES = frozenset({"forum.post.hide"})


async def decide(ctx: RequestContext, directive_id: str, *, approve: bool) -> dict[str, Any]:
    ctx.require_role("moderator")
    principal = ctx.require_user()
    pending = await directive_store.get_directive(str(parse_uuid(directive_id, "directive")))
    if pending is None:
        raise NotFound("directive not found")
    if pending.type not in MODERATOR_APPROVES:
        ctx.require_role("admin")
    try:
        row = await directive_store.decide(directive_id, approve=approve, decided_by=principal.user_id)
    except LookupError:
        raise NotFound("directive not found") from None
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    runtime = _runtime(ctx)
    if approve and runtime.enqueue is not None:
        tenant, enqueue = ctx.require_org().slug, runtime.enqueue

        async def enqueue_after_commit() -> None:
            await enqueue(tenant, row.id)

        ctx.after_commit.append(enqueue_after_commit)
    return msgspec.to_builtins(row)  # type: ignore[no-any-return]


async def get_execution(ctx: RequestContext, execution_id: str) -> dict[str, Any]:
    ctx.require_role("admin")
    row = await db.fetchrow("SELECT * FROM execution WHERE id = $1", parse_uuid(execution_id, "execution"))
    if row is None:
        raise NotFound("execution not found")
    directive = await directive_store.get_directive(str(row["directive_id"]))
    assert directive is not None
    signal = None
    if directive.signal_id:
        signal_row = await db.fetchrow("SELECT * FROM signal WHERE id = $1", uuid.UUID(directive.signal_id))
        signal = signal_out(signal_row) if signal_row else None
    attempts = await db.fetch(
        "SELECT id, attempt, status, dry_run, replay_of, started_at, finished_at, error FROM execution"
        " WHERE directive_id = $1 ORDER BY started_at",
        uuid.UUID(directive.id),
    )
    outcome = await db.fetch("SELECT * FROM signal WHERE causation_id = $1 ORDER BY id", uuid.UUID(directive.id))
    execution = dict(row)
    for key in ("context", "decision"):
        execution[key] = _json(execution[key])
    execution["cost_usd"] = float(execution["cost_usd"])
    return {
        "execution": msgspec.to_builtins(execution),
        "directive": msgspec.to_builtins(directive),
        "signal": msgspec.to_builtins(signal) if signal else None,
        "attempts": [msgspec.to_builtins(dict(a)) for a in attempts],
        "outcome_signals": [msgspec.to_builtins(signal_out(s)) for s in outcome],
    }


async def replay(ctx: RequestContext, execution_id: str, *, dry_run: bool) -> dict[str, Any]:
    ctx.require_role("admin")
    parse_uuid(execution_id, "execution")
    runtime = _runtime(ctx)
    services = ctx.services
    try:
        outcome = await replay_execution(
            runtime,
            services.redis,
            services.streams,
            ctx.require_org().slug,
            execution_id,
            dry_run=dry_run,
            replayed_by=ctx.require_user().user_id,
        )
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    return msgspec.to_builtins(outcome)  # type: ignore[no-any-return]


async def record_feedback(
    ctx: RequestContext, post_id: str, *, helpful: bool, reason: str | None, solved: bool = False
) -> dict[str, Any]:
    """Rate an agent's post (helpful or not, with an optional reason); with `solved`, the thread's author
    (or a moderator) marks the thread solved by this answer."""
    ctx.require_role("member")
    user_id = ctx.require_user().user_id
    if reason is not None and len(reason) > MAX_FEEDBACK_REASON:
        raise Invalid(f"reason is limited to {MAX_FEEDBACK_REASON} characters", field="reason")
    row = await db.fetchrow(
        "SELECT p.id, p.role, p.author_agent_id, p.thread_id, p.solution_eligible, t.category_id FROM post p"
        " JOIN thread t ON t.id = p.thread_id WHERE p.id = $1 AND NOT p.is_deleted AND NOT p.is_hidden",
        parse_uuid(post_id, "post"),
    )
    if row is None or not await can_see_category(await viewer_for_user(user_id), row["category_id"]):
        raise NotFound("post not found")
    if row["role"] != "agent":
        raise Unprocessable("feedback is collected on agent posts only")
    if solved and not helpful:
        raise Invalid("an answer that solved the question is helpful", field="solved")
    if solved and not row["solution_eligible"]:
        raise Unprocessable("an agent's greeting or summary cannot be the solution")
    reason = reason.strip() or None if reason else None
    await db.execute(
        "INSERT INTO agent_feedback (id, post_id, user_id, agent, helpful, reason, solved)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (post_id, user_id) DO UPDATE SET helpful = EXCLUDED.helpful, reason = EXCLUDED.reason,"
        " solved = agent_feedback.solved OR EXCLUDED.solved, updated_at = now()",
        uuid7(),
        row["id"],
        uuid.UUID(user_id),
        row["author_agent_id"],
        helpful,
        reason,
        solved,
    )
    await emit(
        AgentFeedbackRecorded(
            post_id=str(row["id"]),
            thread_id=str(row["thread_id"]),
            agent=row["author_agent_id"],
            user_id=user_id,
            helpful=helpful,
            reason=reason,
        )
    )
    if solved:
        await solve_thread(ctx, str(row["thread_id"]), str(row["id"]))
    return {"post_id": str(row["id"]), "helpful": helpful, "reason": reason, "solved": solved}


async def request_answer(ctx: RequestContext, thread_ref: str, agent: str, post_ref: str | None) -> dict[str, Any]:
    """A member asks an agent to answer in a thread: `forum.agent.response.requested`, planned at once
    (202 with the directive; asking again returns the same one)."""
    ctx.require_role("member")
    user_id = ctx.require_user().user_id
    runtime = _runtime(ctx)
    package = runtime.package_for_handle(agent)
    if package is None:
        raise NotFound(f"no agent {agent!r}")
    if AgentResponseRequested.signal_name not in package.manifest.consumes:
        raise Unprocessable(f"{agent} does not answer on request")
    enabled = await db.fetchval("SELECT enabled FROM installation WHERE package = $1", package.manifest.name)
    if not enabled:
        raise Conflict(f"{agent} is not enabled in this org: an admin can enable it on the agents page")
    thread = await thread_row(thread_ref)
    if not await can_see_category(await viewer_for_user(user_id), thread["category_id"]):
        raise NotFound("thread not found")
    if post_ref is None:
        post_id = await db.fetchval(
            "SELECT id FROM post WHERE thread_id = $1 ORDER BY created_at, id LIMIT 1", thread["id"]
        )
    else:
        post_id = await db.fetchval(
            "SELECT id FROM post WHERE id = $1 AND thread_id = $2 AND NOT is_deleted AND NOT is_hidden",
            parse_uuid(post_ref, "post"),
            thread["id"],
        )
        if post_id is None:
            raise NotFound("post not found in this thread")
    signal = await emit(
        AgentResponseRequested(
            agent=agent,
            thread_id=str(thread["id"]),
            category_id=str(thread["category_id"]),
            post_id=str(post_id),
            requested_by_user_id=user_id,
        )
    )
    assert signal is not None
    rows = await plan_signal(runtime, signal, only_handle=agent, include_existing=True)
    if not rows:
        raise Unprocessable(f"{agent} has nothing to do for this post")
    row = rows[0]
    created = row.signal_id == signal.id
    if created and row.status == "pending" and runtime.enqueue is not None:
        enqueue, tenant = runtime.enqueue, ctx.require_org().slug

        async def enqueue_after_commit() -> None:
            await enqueue(tenant, row.id)

        ctx.after_commit.append(enqueue_after_commit)
    return {"directive_id": row.id, "status": row.status, "created": created}


async def metrics(ctx: RequestContext) -> list[dict[str, Any]]:
    ctx.require_role("moderator")
    runtime = _runtime(ctx)
    out = []
    for name, package in sorted(runtime.packages.items()):
        handle = package.manifest.agent_handle
        stats = await db.fetchrow(
            "SELECT"
            " (SELECT count(*) FROM post WHERE author_agent_id = $1 AND role = 'agent') AS responses,"
            " (SELECT count(*) FROM agent_feedback WHERE agent = $1) AS feedback,"
            " (SELECT count(*) FROM agent_feedback WHERE agent = $1 AND helpful) AS helpful,"
            " (SELECT count(*) FROM signal WHERE type = 'forum.agent.escalated' AND payload->>'package' = $2)"
            "   AS escalations,"
            " (SELECT count(*) FROM directive WHERE package = $2) AS directives,"
            " (SELECT count(*) FROM moderation_flag WHERE flagger_agent_id = $1 AND status = 'action_taken')"
            "   AS flags_confirmed,"
            " (SELECT count(*) FROM moderation_flag WHERE flagger_agent_id = $1"
            "   AND status IN ('action_taken', 'dismissed')) AS flags_resolved,"
            " (SELECT coalesce(sum(cost_usd), 0) FROM agent_usage WHERE package = $2) AS cost_usd,"
            " (SELECT avg(extract(epoch FROM p.created_at - coalesce(a.created_at, t.created_at))) FROM post p"
            "   JOIN thread t ON t.id = p.thread_id LEFT JOIN post a ON a.id = p.answers_post_id"
            "   WHERE p.author_agent_id = $1 AND p.role = 'agent') AS avg_first_response_s",
            handle,
            name,
        )
        directives = stats["directives"] or 0
        out.append(
            {
                "package": name,
                "agent": handle,
                "responses": stats["responses"],
                "helpful_rate": stats["helpful"] / stats["feedback"] if stats["feedback"] else None,
                "feedback_count": stats["feedback"],
                "escalation_rate": stats["escalations"] / directives if directives else None,
                "flag_precision": stats["flags_confirmed"] / stats["flags_resolved"]
                if stats["flags_resolved"]
                else None,
                "cost_usd": float(stats["cost_usd"]),
                "avg_time_to_response_s": float(stats["avg_first_response_s"])
                if stats["avg_first_response_s"]
                else None,
            }
        )
    return out


async def request_summary(ctx: RequestContext, thread_ref: str) -> dict[str, Any]:
    """A member asks the summary agent for a TL;DR of this thread as it is now (202: the directive), through
    `forum.agent.response.requested` like any request to an agent. Asking again before the thread changes
    returns the same directive."""
    return await request_answer(ctx, thread_ref, "summary-agent", None)
