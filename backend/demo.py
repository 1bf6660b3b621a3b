"""The demo tenant `make dev` creates on first run, so a new user lands in a living forum."""

from __future__ import annotations

import secrets
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import msgspec

from backend import demo_content as content
from backend.abuse.service import load_forum_settings, save_forum_settings
from backend.console import as_operator, principal_named
from backend.context import OrgRef, Principal, RequestContext, Role, Services
from backend.forum import service as forum
from backend.forum.schemas import CategoryIn, ThreadIn
from backend.identity import service as identity
from backend.identity.schemas import RegisterIn
from backend.orgs import service as orgs
from backend.orgs.schemas import MemberIn, OrgIn
from engine import db

DEMO_ORG = "demo"
ADMIN_USERNAME = "admin"


class DemoCredentials(msgspec.Struct):
    username: str
    password: str
    org: str


async def ensure_demo(services: Services, data_dir: Path) -> DemoCredentials:
    """Create the demo admin and org once; later runs read the saved credentials (a local file, 0600)."""
    creds_file = data_dir / "demo_credentials.json"
    if creds_file.exists():
        creds = msgspec.json.decode(creds_file.read_bytes(), type=DemoCredentials)
    else:
        creds = DemoCredentials(username=ADMIN_USERNAME, password=secrets.token_urlsafe(12), org=DEMO_ORG)
    admin = await principal_named(creds.username)
    if admin is None:
        async with as_operator(services, None) as ctx:
            await identity.register(
                ctx,
                RegisterIn(username=creds.username, email="admin@demo.invalid", password=creds.password),
                throttle=False,
            )
        admin = await principal_named(creds.username)
        assert admin is not None
    creds_file.write_bytes(msgspec.json.encode(creds))
    creds_file.chmod(0o600)
    async with as_operator(services, admin) as ctx:
        if await orgs.find_org(DEMO_ORG) is None:
            await orgs.create_org(ctx, OrgIn(slug=DEMO_ORG, name="Demo Community", visibility="public"))
            print(f"demo | created the public org {DEMO_ORG!r} with admin {creds.username!r}", flush=True)
    await seed_demo_forum(services, admin)
    await enable_demo_agents(services, admin)
    await seed_agent_scenes(services, admin)
    return creds


# The demo shows the FAQ agent at work (new orgs have it off until an admin installs it).
DEMO_AGENTS: dict[str, dict[str, object]] = {
    "forum_faq_agent": {"categories": ["help-questions", "general"], "confidence_threshold": 0.5},
    "forum_moderation_agent": {},
    "forum_routing_agent": {"unanswered_after_minutes": 1, "min_score": 0.1},
    "forum_summary_agent": {"every_replies": 0},
}


async def enable_demo_agents(services: Services, admin: Principal) -> None:
    """Install the demo's agents once; an admin's later changes (disable, reconfigure) are kept."""
    async with as_operator(services, admin):
        org = await orgs.find_org(DEMO_ORG)
    assert org is not None
    async with as_operator(services, admin, org, "admin"):
        for package, config in DEMO_AGENTS.items():
            await db.execute(
                "INSERT INTO installation (package, enabled, config, installed_by) VALUES ($1, true, $2::jsonb, $3)"
                " ON CONFLICT (package) DO NOTHING",
                package,
                msgspec.json.encode(config).decode(),
                admin.user_id,
            )


async def _demo_user(services: Services, username: str) -> Principal:
    """The demo author named `username`, registered (with a throwaway password) when missing."""
    principal = await principal_named(username)
    if principal is None:
        async with as_operator(services, None) as ctx:
            await identity.register(
                ctx,
                RegisterIn(username=username, email=f"{username}@demo.invalid", password=secrets.token_urlsafe(16)),
                throttle=False,
            )
        principal = await principal_named(username)
        assert principal is not None
    return principal


async def seed_demo_forum(services: Services, admin: Principal) -> None:
    """Fill the demo org with categories, a few members and conversations (backend.demo_content), through
    the forum services. Idempotent: categories are looked up by slug and threads by title, so a second
    run adds nothing (and a run that stopped half-way is completed). Posting limits are switched off while
    seeding and restored afterwards."""
    async with as_operator(services, admin):
        org = await orgs.find_org(DEMO_ORG)
    assert org is not None, "create the demo org first"

    async with as_operator(services, admin, org, "admin"):
        existing_categories = {r["slug"] for r in await db.fetch("SELECT slug FROM category")}
        existing_threads = {r["title"] for r in await db.fetch("SELECT title FROM thread")}
    missing_categories = [c for c in content.CATEGORIES if c.slug not in existing_categories]
    missing_threads = [t for t in content.THREADS if t.title not in existing_threads]
    if not missing_categories and not missing_threads:
        return

    people: dict[str, Principal] = {"admin": admin}
    for user in content.USERS:
        people[user.username] = await _demo_user(services, user.username)
    async with as_operator(services, admin, org, "admin") as ctx:
        for user in content.USERS:
            await orgs.add_member(ctx, MemberIn(username=user.username, role=user.role))
        for category in missing_categories:
            await forum.create_category(
                ctx,
                CategoryIn(
                    name=category.name,
                    slug=category.slug,
                    description=category.description,
                    position=category.position,
                    qa_mode=category.qa_mode,
                ),
            )
        saved = await load_forum_settings()
        paused = msgspec.structs.replace(saved, posting=msgspec.structs.replace(saved.posting, enabled=False))
        await save_forum_settings(ctx, paused)
    try:
        for thread in missing_threads:
            await _seed_thread(services, org, people, thread)
    finally:
        async with as_operator(services, admin, org, "admin") as ctx:
            await save_forum_settings(ctx, saved)
    print(
        f"demo | seeded {len(missing_categories)} categories and {len(missing_threads)} threads in {DEMO_ORG!r}",
        flush=True,
    )


async def _seed_thread(
    services: Services, org: OrgRef, people: dict[str, Principal], thread: content.DemoThread
) -> None:
    def acting(username: str) -> AbstractAsyncContextManager[RequestContext]:
        role: Role = next((u.role for u in content.USERS if u.username == username), "admin")
        return as_operator(services, people[username], org, role)

    async with acting(thread.author) as ctx:
        created, _ = await forum.create_thread(
            ctx, ThreadIn(category=thread.category, title=thread.title, body=thread.body)
        )
    for reply in thread.replies:
        async with acting(reply.author) as ctx:
            post = await forum.create_reply(ctx, created.id, reply.body, None)
        for username, reaction in reply.reactions:
            async with acting(username) as ctx:
                await forum.react(ctx, post.id, reaction, add=True)
        if reply.solution:
            async with acting(thread.author) as ctx:
                await forum.solve_thread(ctx, created.id, post.id)


async def seed_agent_scenes(services: Services, admin: Principal) -> list[str]:
    """Stage the scenes of the moderation, routing and summary agents (installed by `enable_demo_agents`): a spam
    reply from a brand-new account (routed to the moderation agent: flag with reasons, hide waiting for
    approval), a question nobody answers (the worker's sweep hands it to the routing agent after a
    minute), and a long structured thread whose TL;DR is requested. Directives are committed as rows; the
    worker runs them when it starts (its requeue sweep picks up pending directives). Idempotent: a second
    run finds the scene threads and does nothing. Returns the ids of the directives it created."""
    from agent_packages.forum_summary_agent.agent import summarize_request
    from backend.agents.runtime import build_runtime
    from engine.agents import directives as directive_store
    from engine.agents.router import SignalRouter
    from engine.signals import row_to_signal

    async with as_operator(services, admin):
        org = await orgs.find_org(DEMO_ORG)
    assert org is not None
    async with as_operator(services, admin, org, "admin"):
        titles = {r["title"] for r in await db.fetch("SELECT title FROM thread")}
    if content.LONG_THREAD.title in titles:
        return []
    people: dict[str, Principal] = {"admin": admin}
    for user in content.USERS:
        people[user.username] = await _demo_user(services, user.username)
    spammer = await _demo_user(services, content.SPAMMER)
    async with as_operator(services, admin, org, "admin") as ctx:
        await orgs.add_member(ctx, MemberIn(username=content.SPAMMER, role="member"))
        saved = await load_forum_settings()
        await save_forum_settings(
            ctx, msgspec.structs.replace(saved, posting=msgspec.structs.replace(saved.posting, enabled=False))
        )
    try:
        for thread in (content.LONG_THREAD, content.UNANSWERED):
            await _seed_thread(services, org, people, thread)
        async with as_operator(services, spammer, org, "member") as ctx:
            target = await db.fetchval("SELECT id FROM thread WHERE title = $1", content.THREADS[2].title)
            spam = await forum.create_reply(ctx, str(target), content.SPAM_BODY, None)
    finally:
        async with as_operator(services, admin, org, "admin") as ctx:
            await save_forum_settings(ctx, saved)

    runtime = build_runtime(services.settings, services.redis, None)
    router = SignalRouter(redis=services.redis, streams=services.streams, runtime=runtime, consumer="demo-seed")
    async with as_operator(services, admin, org, "admin"):
        row = await db.fetchrow(
            "SELECT * FROM signal WHERE type = 'forum.post.created' AND payload->>'post_id' = $1", spam.id
        )
        long_thread = await db.fetchrow(
            "SELECT id, reply_count FROM thread WHERE title = $1", content.LONG_THREAD.title
        )
    created = [d.id for d in await router.route(row_to_signal(row, DEMO_ORG))]
    async with as_operator(services, admin, org, "admin") as ctx:
        summary, _ = await directive_store.request_directive(
            summarize_request(DEMO_ORG, str(long_thread["id"]), int(long_thread["reply_count"])),
            manifest=runtime.packages["forum_summary_agent"].manifest,
            signal=None,
            correlation_id=ctx.correlation_id,
        )
    created.append(summary.id)
    print(
        "demo | agents installed (moderation, routing, summary): a spam reply by a new account, an unanswered "
        "question and a long thread are waiting for the worker",
        flush=True,
    )
    return created
