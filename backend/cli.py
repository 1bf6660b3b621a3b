"""The `forum` command. Every subcommand has --help; errors say what to do next."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from backend.settings import Settings, load_settings, redacted

log = logging.getLogger("forum.cli")


class CommandError(Exception):
    """A failure the user can fix; printed without a traceback."""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    for noisy in ("pgserver", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- dev ----------------------------------------------------------------------------------------------


def _ensure_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _ensure_database(admin_url: str, name: str) -> str:
    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    head, _, query = admin_url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from backend.embedded import EmbeddedPostgres, EmbeddedRedis
    from backend.procfile import parse_procfile, run_procfile

    started_at = time.monotonic()
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        if not settings.database_url:
            print(f"dev | starting embedded PostgreSQL in {data_dir / 'pg'} …", flush=True)
            pg = EmbeddedPostgres(data_dir / "pg", keep=True)
            embedded.append(pg)
            env["FORUM_DATABASE_URL"] = _ensure_database(pg.start(), "forum")
        if not settings.redis_url:
            print(f"dev | starting embedded Redis in {data_dir / 'redis'} …", flush=True)
            rd = EmbeddedRedis(data_dir / "redis", persist=True)
            embedded.append(rd)
            env["FORUM_REDIS_URL"] = rd.start()
        env.setdefault("FORUM_SECRET_KEY", settings.secret_key or _ensure_secret(data_dir))
        env["FORUM_DATA_DIR"] = str(data_dir)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        settings = load_settings(env)
        print("dev | applying migrations …", flush=True)
        asyncio.run(_migrate(settings))
        creds = asyncio.run(_seed(settings, data_dir))
        url = f"http://{settings.host}:{settings.port}"
        print(
            f"dev | ready in {time.monotonic() - started_at:.1f}s\n"
            f"dev |   forum:  {url}   (API docs: {url}/schema)\n"
            f"dev |   admin:  {creds.username} / {creds.password}   (org: {creds.org})\n"
            f"dev |   Ctrl-C stops everything; data stays in {data_dir}",
            flush=True,
        )
        procfile = Path(args.procfile)
        if not procfile.exists():
            raise CommandError(f"no Procfile at {procfile}: run from the project root or pass --procfile")
        return run_procfile(parse_procfile(procfile), env)
    finally:
        for server in reversed(embedded):
            print(f"dev | stopping embedded {type(server).__name__.removeprefix('Embedded')}", flush=True)
            server.stop()


async def _migrate(settings: Settings) -> None:
    from backend.console import migrate

    await migrate(settings, lambda msg: print(f"migrate | {msg}", flush=True))


async def _seed(settings: Settings, data_dir: Path):  # type: ignore[no-untyped-def]
    from backend.console import connected
    from backend.demo import ensure_demo

    async with connected(settings) as services:
        return await ensure_demo(services, data_dir)


# --- processes ----------------------------------------------------------------------------------------


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from backend.app import create_app

    settings.require_urls()
    host = args.host or settings.host
    port = args.port or settings.port
    log.info("web: serving on http://%s:%d with %s", host, port, redacted(settings))
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        access_log=args.access_log,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ws_max_size=settings.ws_max_message_bytes,
    )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from backend.worker import run_worker

    asyncio.run(run_worker(settings))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_migrate(settings))
    return 0


# --- users and orgs -----------------------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise CommandError(f"environment variable {args.password_env} is empty")
        return value
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: pass --password-env VAR")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise CommandError("the passwords differ")
    return first


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    import msgspec

    from backend.console import as_operator, connected
    from backend.identity.schemas import RegisterIn
    from backend.identity.service import register

    password = _password(args)
    try:
        data = msgspec.convert({"username": args.username, "email": args.email, "password": password}, RegisterIn)
    except msgspec.ValidationError as exc:
        raise CommandError(f"invalid user: {exc}") from None

    async def run() -> None:
        async with connected(settings) as services, as_operator(services, None) as ctx:
            user = await register(ctx, data, throttle=False)
        print(f"created user {user.username} ({user.id})")

    asyncio.run(run())
    return 0


def cmd_org_create(args: argparse.Namespace, settings: Settings) -> int:
    import msgspec

    from backend.console import as_operator, connected, principal_named
    from backend.orgs.schemas import OrgIn
    from backend.orgs.service import create_org

    try:
        data = msgspec.convert({"slug": args.slug, "name": args.name, "visibility": args.visibility}, OrgIn)
    except msgspec.ValidationError as exc:
        raise CommandError(f"invalid org: {exc}") from None

    async def run() -> None:
        async with connected(settings) as services:
            admin = await principal_named(args.admin)
            if admin is None:
                raise CommandError(f"no user {args.admin!r}: create one with `forum user create`")
            async with as_operator(services, admin) as ctx:
                org = await create_org(ctx, data)
        print(f"created {org.visibility} org {org.slug} (schema org_{org.slug}); {args.admin} is its admin")

    asyncio.run(run())
    return 0


def cmd_org_add_member(args: argparse.Namespace, settings: Settings) -> int:
    import msgspec

    from backend.console import as_operator, connected, principal_named
    from backend.orgs.schemas import MemberIn
    from backend.orgs.service import add_member, find_org

    data = msgspec.convert({"username": args.username, "role": args.role}, MemberIn)

    async def run() -> None:
        async with connected(settings) as services:
            from engine import db

            async with db.transaction():
                org = await find_org(args.org)
                admin_name = await db.fetchval(
                    "SELECT u.username FROM memberships m JOIN users u ON u.id = m.user_id"
                    " JOIN orgs o ON o.id = m.org_id WHERE o.slug = $1 AND m.role = 'admin'"
                    " ORDER BY m.created_at LIMIT 1",
                    args.org,
                )
            if org is None:
                raise CommandError(f"no org {args.org!r}: create one with `forum org create`")
            admin = await principal_named(admin_name) if admin_name else None
            if admin is None:
                raise CommandError(f"org {args.org!r} has no admin to act as")
            async with as_operator(services, admin, org, "admin") as ctx:
                member, created = await add_member(ctx, data)
        print(f"{'added' if created else 'updated'} {member.username} as {member.role} in {args.org}")

    asyncio.run(run())
    return 0


# --- imports ------------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from backend.console import connected
    from backend.importers.jsonl import JsonlError, read_jsonl
    from backend.importers.pipeline import ImportRefused, run_import
    from backend.importers.progress import ProgressBar
    from backend.importers.stackexchange import DumpError, read_dump

    path = Path(args.path)
    try:
        if args.import_command == "stackexchange":
            if not path.is_dir():
                raise CommandError(f"{path} is not a folder (expected a Stack Exchange dump with Posts.xml)")
            source = read_dump(path, args.site)
        else:
            if not path.is_file():
                raise CommandError(f"no file {path}")
            source = read_jsonl(path)
            if args.source_name:
                source.name = f"jsonl:{args.source_name}"
    except (DumpError, JsonlError) as exc:
        raise CommandError(str(exc)) from None
    posts = sum(1 + len(t.replies) for t in source.threads)
    print(
        f"import | {source.name}: {len(source.threads):,} threads, {posts:,} posts, {len(source.users):,} authors,"
        f" {len(source.duplicates):,} duplicate links → org {args.org}",
        flush=True,
    )

    async def run() -> None:
        async with connected(settings) as services:
            try:
                result = await run_import(
                    services,
                    args.org,
                    source,
                    admin_username=args.admin,
                    progress=ProgressBar(len(source.threads), "threads"),
                )
            except ImportRefused as exc:
                raise CommandError(str(exc)) from None
        c = result.counts
        print(
            f"import | done in {result.seconds:.1f}s: {c.threads:,} threads, {c.posts:,} posts, {c.users:,} placeholder"
            f" accounts, {c.solutions:,} solutions, {c.duplicates:,} duplicates imported; {c.skipped:,} threads"
            " were already there",
            flush=True,
        )

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        print("\nimport | interrupted: what was committed stays; run the same command again to resume", flush=True)
        return 130
    return 0


# --- parser -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forum", description="FleetPrompt Forum: run, migrate and administer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "dev",
        help="run everything locally (embedded PostgreSQL/Redis unless URLs are set)",
        description="Start embedded PostgreSQL and Redis under FORUM_DATA_DIR (.forum) unless "
        "FORUM_DATABASE_URL / FORUM_REDIS_URL are set, migrate, create the demo org and admin, "
        "then run the Procfile's processes until Ctrl-C.",
    )
    p.add_argument("--procfile", default="Procfile", help="Procfile to run (default: ./Procfile)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("web", help="serve the HTTP API, websockets and the frontend")
    p.add_argument("--host", help="bind address (default FORUM_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default FORUM_PORT or 8000)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("worker", help="run background work (outbox sweeper)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("migrate", help="bring public and every tenant schema to the latest version")
    p.set_defaults(func=cmd_migrate)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    p = user.add_parser("create", help="create a user account")
    p.add_argument("--username", required=True)
    p.add_argument("--email", required=True)
    p.add_argument(
        "--password-env",
        metavar="VAR",
        help="read the password from this environment variable (otherwise it is asked for on the terminal)",
    )
    p.set_defaults(func=cmd_user_create)

    org = sub.add_parser("org", help="manage orgs").add_subparsers(dest="org_command", required=True)
    p = org.add_parser("create", help="create an org and its tenant schema")
    p.add_argument("--slug", required=True, help="a-z, 0-9 and _, at most 50 characters")
    p.add_argument("--name", required=True)
    p.add_argument("--visibility", choices=["public", "private"], default="public")
    p.add_argument("--admin", required=True, metavar="USERNAME", help="existing user who becomes the admin")
    p.set_defaults(func=cmd_org_create)

    p = org.add_parser("add-member", help="add a member to an org or change their role")
    p.add_argument("--org", required=True, metavar="SLUG")
    p.add_argument("--username", required=True)
    p.add_argument("--role", choices=["member", "moderator", "admin"], default="member")
    p.set_defaults(func=cmd_org_add_member)

    imports = sub.add_parser(
        "import",
        help="import history (Stack Exchange dump, JSONL threads) into an org",
        description="Import threads into an existing org as history: placeholder accounts for the authors "
        "(they cannot sign in until claimed), signals marked as imported (no agent answers or welcomes "
        "them). Idempotent: running it again imports only what is missing, so an interrupted run resumes.",
    ).add_subparsers(dest="import_command", required=True)
    p = imports.add_parser("stackexchange", help="a Stack Exchange data dump folder (Posts.xml, Comments.xml, …)")
    p.add_argument("path", metavar="DIR")
    p.add_argument("--org", required=True, metavar="SLUG")
    p.add_argument("--site", help="the site's name in import records (default: the folder's name)")
    p.add_argument("--admin", metavar="USERNAME", help="admin of the org to act as (default: its first admin)")
    p.set_defaults(func=cmd_import)
    p = imports.add_parser("jsonl", help="a JSONL file of threads (thread_id, title, body, author, created, comments)")
    p.add_argument("path", metavar="FILE")
    p.add_argument("--org", required=True, metavar="SLUG")
    p.add_argument("--source-name", help="the source's name in import records (default: the file's stem)")
    p.add_argument("--admin", metavar="USERNAME", help="admin of the org to act as (default: its first admin)")
    p.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        _setup_logging(settings.log_level)
        return int(args.func(args, settings) or 0)
    except CommandError as exc:
        print(f"forum: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # invalid configuration
        print(f"forum: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"forum: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from backend.errors import ApiError  # a service refused (duplicate, unknown user…): no traceback

        if not isinstance(exc, ApiError):
            raise
        print(f"forum: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
