"""The moderation agent: scores every new or edited human post for spam, toxicity and likely duplicates
(`scorer.assess`, pure and explainable) and, above the org's thresholds, asks for a
`forum.moderation.flag.create` directive carrying its scores and reasons; the flag lands in the
moderation queue. For a near-certain spam or toxic post it also asks for `forum.post.hide`, which waits
for a moderator (`requires_approval`) unless the org turned on "hide pending review" for young accounts.
It never deletes anything, and it never writes: the host's handlers apply its directives.

With an LLM other than the offline one, `decide` asks the model to confirm toxicity and quote the
offending span; offline, the lexicon's evidence is the decision.
"""

from __future__ import annotations

from typing import Any

from agent_packages.forum_moderation_agent.scorer import CATEGORIES, Assessment, PostFacts, RelatedThread, assess
from engine.agents.api import (
    AgentContext,
    Decision,
    DeltaSink,
    DirectiveRequest,
    DirectiveView,
    PackageManifest,
)
from engine.llm import LLMProvider, LLMRequest, Message
from engine.signals import Signal

MANIFEST = PackageManifest(
    name="forum_moderation_agent",
    version="1.0.0",
    title="Moderation agent",
    description="Flags likely spam, toxic posts and duplicates for moderators, with its reasons and scores. "
    "Never deletes; hiding a post waits for a moderator's approval.",
    agent_handle="moderation-agent",
    consumes=("forum.post.created", "forum.post.edited"),
    directives=("forum.moderation.flag.create", "forum.post.hide"),
    permissions=("read_forum", "create_flags", "hide_posts"),
    rate_limit_per_hour=120,
    daily_cost_cap_usd=1.0,
    max_tokens=200,
    requires_approval=("forum.post.hide",),
    default_config={
        "spam_threshold": 0.7,
        "toxicity_threshold": 0.8,
        "duplicate_threshold": 0.6,
        "hide_threshold": 0.95,  # at or above: also ask to hide (waits for approval)
        "disabled_rules": [],
        "hide_pending_review_days": 0,  # > 0: hide at once (pending review) for accounts younger than this
    },
)
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "spam_threshold": {"type": "number", "title": "Spam threshold", "minimum": 0, "maximum": 1},
        "toxicity_threshold": {"type": "number", "title": "Toxicity threshold", "minimum": 0, "maximum": 1},
        "duplicate_threshold": {"type": "number", "title": "Duplicate threshold", "minimum": 0, "maximum": 1},
        "hide_threshold": {"type": "number", "title": "Ask to hide at", "minimum": 0, "maximum": 1},
        "disabled_rules": {"type": "array", "title": "Rules switched off", "items": {"type": "string"}},
        "hide_pending_review_days": {
            "type": "integer",
            "title": "Hide pending review for accounts younger than (days; 0 = off)",
            "minimum": 0,
            "maximum": 365,
        },
    },
}
FLAG_REASON = {"spam": "spam", "toxicity": "harassment", "duplicate": "duplicate"}

TOXICITY_PROMPT = (
    "You review one forum post for toxicity (insults aimed at people, harassment, threats, slurs). Reply with "
    "one line: either NONE, or TOXIC followed by the exact offending words quoted from the post in double quotes."
)


def thresholds(config: dict[str, Any]) -> dict[str, float]:
    return {c: float(config.get(f"{c}_threshold", MANIFEST.default_config[f"{c}_threshold"])) for c in CATEGORIES}


def facts_from_read(data: dict[str, Any]) -> PostFacts:
    return PostFacts(
        body=data["body"],
        title=data.get("title") or "",
        is_first_post=bool(data.get("is_first_post")),
        account_age_s=data.get("account_age_s"),
        author_post_count=data.get("author_post_count"),
        same_text_other_threads=int(data.get("same_text_other_threads") or 0),
        same_text_other_accounts=int(data.get("same_text_other_accounts") or 0),
        related=[RelatedThread(r["thread_id"], r["title"], float(r["score"])) for r in data.get("related") or []],
    )


def assess_with_config(facts: PostFacts, config: dict[str, Any]) -> Assessment:
    """The scorer with the org's switched-off rules removed."""
    result = assess(facts)
    disabled = set(config.get("disabled_rules") or ())
    if not disabled:
        return result
    from agent_packages.forum_moderation_agent.scorer import _noisy_or

    evidence = [e for e in result.evidence if e.rule not in disabled]
    scores = {c: _noisy_or(e.weight for e in evidence if e.category == c) for c in CATEGORIES}
    return Assessment(scores=scores, evidence=evidence)


def flag_key(tenant: str, post_id: str, revision: int) -> str:
    return f"forum.moderation.flag.create:{tenant}:{post_id}:{revision}"


def plan_for(facts_data: dict[str, Any], config: dict[str, Any], tenant: str) -> list[DirectiveRequest]:
    """The directives one post's facts call for under `config` (used by plan and by the policy dry run)."""
    if facts_data.get("skip"):
        return []
    assessment = assess_with_config(facts_from_read(facts_data), config)
    hits = assessment.above(thresholds(config))
    if not hits:
        return []
    post_id, revision = facts_data["post_id"], int(facts_data.get("revision") or 0)
    category = hits[0]
    payload = {
        "post_id": post_id,
        "thread_id": facts_data["thread_id"],
        "revision": revision,
        "category": category,
        "reason": FLAG_REASON[category],
        "scores": assessment.scores,
        "rules": assessment.rules(category),
        "reasons": assessment.reasons(category),
    }
    requests = [
        DirectiveRequest(
            type="forum.moderation.flag.create", idempotency_key=flag_key(tenant, post_id, revision), payload=payload
        )
    ]
    if category in ("spam", "toxicity") and assessment.score(category) >= float(config.get("hide_threshold", 0.95)):
        requests.append(
            DirectiveRequest(
                type="forum.post.hide",
                idempotency_key=f"forum.post.hide:{tenant}:{post_id}:{revision}",
                payload={**payload, "author_user_id": facts_data.get("author_user_id")},
            )
        )
    return requests


class ModerationAgent:
    manifest = MANIFEST
    config_schema = CONFIG_SCHEMA

    async def plan(self, signal: Signal, ctx: AgentContext) -> list[DirectiveRequest]:
        payload = signal.payload
        if signal.type == "forum.post.created" and (
            payload.get("role") != "human" or not payload.get("author_user_id")
        ):
            return []
        if signal.type not in self.manifest.consumes:
            return []
        facts = await ctx.read(
            "forum.moderation_facts",
            post_id=payload["post_id"],
            revision=int(payload.get("revision") or 0),
            as_of=signal.occurred_at.isoformat(),
        )
        return plan_for(facts, ctx.config, ctx.tenant)

    async def decide(
        self, directive: DirectiveView, ctx: AgentContext, llm: LLMProvider, on_delta: DeltaSink
    ) -> Decision:
        payload = directive.payload
        category = str(payload["category"])
        score = float(payload["scores"][category])
        reasons = list(payload["reasons"])
        if category == "toxicity" and llm.name != "offline":
            post: dict[str, Any] = await ctx.read("forum.post", post_id=payload["post_id"])
            result = await llm.generate(
                LLMRequest(
                    system=TOXICITY_PROMPT,
                    messages=[Message(role="user", content=post["body"][:4000])],
                    max_tokens=120,
                    metadata={"task": "toxicity"},
                )
            )
            verdict = result.text.strip()
            if verdict.upper().startswith("NONE"):
                return Decision(action="noop", confidence=1.0 - score, reasons=[*reasons, "model: not toxic"])
            reasons.append(f"model: {verdict[:300]}")
        action = "flag" if directive.type == "forum.moderation.flag.create" else "apply"
        return Decision(action=action, confidence=score, reasons=reasons, output="")
