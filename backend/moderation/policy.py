"""Policy dry run: how many flags would the moderation agent have raised over the last N days of signals
with another threshold or rule set, and which — without any effect.

It is the replay machinery as a product feature: the recorded `forum.post.created`/`edited` signals are
planned again by the package itself (`plan`, reads only) under the proposed config, next to the org's
current config, inside the request's transaction. Nothing is written: no directive, no flag, no signal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from backend.context import RequestContext
from backend.errors import Invalid, NotFound
from engine import db
from engine.agents.api import AgentContext
from engine.agents.router import merged_config
from engine.signals import row_to_signal

PACKAGE = "forum_moderation_agent"
MAX_SIGNALS = 2000
_THRESHOLDS = ("spam_threshold", "toxicity_threshold", "duplicate_threshold", "hide_threshold")


class PolicyDryRunIn(msgspec.Struct, forbid_unknown_fields=True):
    config: dict[str, Any] = msgspec.field(default_factory=dict)  # overrides of the installed config
    days: int = 7
    limit: int = 200  # how many of the would-be flags to list


class WouldFlag(msgspec.Struct):
    post_id: str
    thread_id: str
    category: str
    score: float
    rules: list[str]
    reasons: list[str]
    would_hide: bool
    flagged_now: bool  # the current config flags it too


class PolicyDryRunOut(msgspec.Struct):
    days: int
    signals_scanned: int
    truncated: bool  # more signals than MAX_SIGNALS in the window: the newest were scanned
    config: dict[str, Any]
    would_flag: int
    flagged_with_current: int
    newly_flagged: int
    no_longer_flagged: int
    flags: list[WouldFlag]


def _validate(overrides: dict[str, Any], defaults: dict[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise Invalid(f"unknown config keys: {', '.join(unknown)}", field="config")
    for key in _THRESHOLDS:
        if key in overrides:
            value = overrides[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise Invalid(f"{key} must be a number between 0 and 1", field=f"config.{key}")
    rules = overrides.get("disabled_rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules) or len(rules) > 100:
        raise Invalid("disabled_rules must be a list of rule names", field="config.disabled_rules")
    days = overrides.get("hide_pending_review_days", 0)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 365:
        raise Invalid("hide_pending_review_days must be a whole number of days (0-365)", field="config")


async def dry_run(ctx: RequestContext, data: PolicyDryRunIn) -> PolicyDryRunOut:
    ctx.require_role("admin")
    if not 1 <= data.days <= 90:
        raise Invalid("days must be between 1 and 90", field="days")
    if not 0 <= data.limit <= 1000:
        raise Invalid("limit must be between 0 and 1000", field="limit")
    runtime = ctx.services.agents
    package = runtime.packages.get(PACKAGE) if runtime is not None else None
    if runtime is None or package is None:
        raise NotFound("the moderation agent is not available on this server")
    _validate(data.config, dict(package.manifest.default_config))
    installed = await db.fetchval("SELECT config FROM installation WHERE package = $1", PACKAGE)
    current = merged_config(package, installed or {})
    proposed = {**current, **data.config}
    slug = ctx.require_org().slug
    since = datetime.now(UTC) - timedelta(days=data.days)
    rows = await db.fetch(
        "SELECT * FROM signal WHERE type IN ('forum.post.created', 'forum.post.edited') AND occurred_at > $1"
        " ORDER BY id DESC LIMIT $2",
        since,
        MAX_SIGNALS + 1,
    )
    truncated = len(rows) > MAX_SIGNALS
    reader = runtime.reader_for(slug)
    flags: dict[str, WouldFlag] = {}
    now_flagged: set[str] = set()
    for row in rows[:MAX_SIGNALS]:
        signal = row_to_signal(row, slug)
        if signal.actor_type == "agent":
            continue
        for config, sink in ((proposed, True), (current, False)):
            requests = await package.plan(signal, AgentContext(slug, config, reader))
            flag = next((r for r in requests if r.type == "forum.moderation.flag.create"), None)
            if flag is None:
                continue
            post_id = str(flag.payload["post_id"])
            if not sink:
                now_flagged.add(post_id)
                continue
            category = str(flag.payload["category"])
            flags.setdefault(
                post_id,
                WouldFlag(
                    post_id=post_id,
                    thread_id=str(flag.payload["thread_id"]),
                    category=category,
                    score=float(flag.payload["scores"][category]),
                    rules=list(flag.payload["rules"]),
                    reasons=list(flag.payload["reasons"]),
                    would_hide=any(r.type == "forum.post.hide" for r in requests),
                    flagged_now=False,
                ),
            )
    items = [msgspec.structs.replace(f, flagged_now=f.post_id in now_flagged) for f in flags.values()]
    return PolicyDryRunOut(
        days=data.days,
        signals_scanned=min(len(rows), MAX_SIGNALS),
        truncated=truncated,
        config=proposed,
        would_flag=len(items),
        flagged_with_current=len(now_flagged),
        newly_flagged=sum(1 for f in items if not f.flagged_now),
        no_longer_flagged=len(now_flagged - set(flags)),
        flags=sorted(items, key=lambda f: -f.score)[: data.limit],
    )
