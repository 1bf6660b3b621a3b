"""The real `forum` console script, run as subprocesses against the test servers."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.factories import unique

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FORUM = str(Path(sys.executable).parent / "forum")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cli_env(servers, tmp_path_factory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORUM_")}
    env.update(
        FORUM_DATABASE_URL=servers.database_url,
        FORUM_REDIS_URL=servers.redis_url,
        FORUM_SECRET_KEY=secrets.token_hex(16),
        FORUM_DATA_DIR=str(tmp_path_factory.mktemp("cli_data")),
        FORUM_REGISTER_MAX_PER_IP="100000",
        FORUM_LOGIN_MAX_FAILURES_PER_IP="100000",
        FORUM_LOG_LEVEL="INFO",
        CLI_TEST_PASSWORD=PASSWORD,
    )
    return env


def forum(env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FORUM, *args],
        env={**env, **(extra_env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def forum_many(env: dict[str, str], *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run independent commands concurrently (each start pays the full import time)."""
    procs = [
        subprocess.Popen(
            [FORUM, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for args in commands
    ]
    results = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=90)
        results.append(subprocess.CompletedProcess([FORUM, *args], proc.returncode, out, err))
    return results


def http_user(web: WebProcess, name: str | None = None) -> str:
    name = name or unique("hu")
    r = httpx.post(
        web.url + "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    return name


def http_org(web: WebProcess, admin: str, slug: str | None = None) -> str:
    slug = slug or unique("ho")
    with httpx.Client(base_url=web.url) as http:
        assert http.post("/api/v1/auth/login", json={"login": admin, "password": PASSWORD}).status_code == 200
        r = http.post(
            "/api/v1/orgs",
            json={"slug": slug, "name": "H"},
            headers={"x-csrftoken": http.cookies["csrftoken"]},
        )
        assert r.status_code == 201, r.text
    return slug


def query(database_url: str, sql: str, *args):
    async def run():
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass
class WebProcess:
    proc: subprocess.Popen
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("forum web did not stop on SIGTERM:\n" + self.output()) from None
        return self.proc.returncode

    def assert_stops_cleanly(self) -> None:
        """SIGTERM: uvicorn shuts the app down gracefully, then re-raises the signal (exit -15)."""
        code = self.stop()
        log = self.output()
        assert code in (0, -signal.SIGTERM), (code, log)
        assert "Application shutdown complete" in log, log
        assert "Traceback" not in log, log


def start_web(env: dict[str, str], log: Path, *, expect_status: int = 200) -> WebProcess:
    port = free_port()
    handle = log.open("w")
    proc = subprocess.Popen(
        [FORUM, "web", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    handle.close()
    web = WebProcess(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"forum web exited with {proc.returncode}:\n{web.output()}")
        try:
            r = httpx.get(web.url + "/healthz", timeout=5)
            if r.status_code == expect_status:
                return web
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    web.stop()
    raise AssertionError("forum web did not become ready:\n" + web.output())


@pytest.fixture(scope="module")
def web(cli_env, tmp_path_factory) -> Iterator[WebProcess]:
    migrated = forum(cli_env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    server = start_web(cli_env, tmp_path_factory.mktemp("web") / "web.log")
    yield server
    server.assert_stops_cleanly()


# --- help and configuration -----------------------------------------------------------------------------

SUBCOMMANDS = [
    [],
    ["dev"],
    ["web"],
    ["worker"],
    ["migrate"],
    ["user"],
    ["user", "create"],
    ["org"],
    ["org", "create"],
    ["org", "add-member"],
]


def test_help_for_every_command(cli_env):
    procs = {
        " ".join(cmd): subprocess.Popen(
            [FORUM, *cmd, "--help"],
            env=cli_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in SUBCOMMANDS
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (name, err)
        assert out.startswith("usage: forum"), (name, out)
        assert "Traceback" not in err
    top = forum(cli_env, "--help").stdout
    for command in ("dev", "web", "worker", "migrate", "user", "org"):
        assert command in top


def test_no_command_and_bad_configuration_say_what_to_do(cli_env):
    r = forum(cli_env)
    assert r.returncode == 2 and "usage: forum" in r.stderr
    r = forum(cli_env, "migrate", extra_env={"FORUM_PORT": "not-a-port"})
    assert r.returncode == 2, r.stderr
    assert "FORUM_" in r.stderr and "Traceback" not in r.stderr


# --- migrate, users, orgs --------------------------------------------------------------------------------


def test_migrate_prints_progress_and_is_idempotent(cli_env, servers, web):
    slug = http_org(web, http_user(web))
    r = forum(cli_env, "migrate")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^migrate \| public: 0 migration\(s\) applied$", r.stdout, re.M), r.stdout
    assert re.search(rf"^migrate \| \[\d+/\d+\] org_{slug}: 0 migration\(s\) applied$", r.stdout, re.M), r.stdout


def test_user_create_from_env_password(cli_env, servers, web):
    name = unique("cli")
    r = forum(
        cli_env,
        "user",
        "create",
        "--username",
        name,
        "--email",
        f"{name}@example.com",
        "--password-env",
        "CLI_TEST_PASSWORD",
    )
    assert r.returncode == 0, r.stderr
    assert f"created user {name}" in r.stdout
    assert PASSWORD not in r.stdout + r.stderr
    [row] = query(servers.database_url, "SELECT password_hash FROM users WHERE username = $1", name)
    assert row["password_hash"].startswith("$argon2id$")
    # The account works over real HTTP.
    with httpx.Client(base_url=web.url) as http:
        assert http.post("/api/v1/auth/login", json={"login": name, "password": PASSWORD}).status_code == 200

    dup, empty, no_tty, invalid = forum_many(
        cli_env,
        [
            "user",
            "create",
            "--username",
            name.upper(),
            "--email",
            f"x{name}@example.com",
            "--password-env",
            "CLI_TEST_PASSWORD",
        ],
        [
            "user",
            "create",
            "--username",
            unique("e"),
            "--email",
            "e@example.com",
            "--password-env",
            "CLI_TEST_EMPTY",
        ],
        ["user", "create", "--username", unique("t"), "--email", "t@example.com"],
        ["user", "create", "--username", "x", "--email", "bad", "--password-env", "CLI_TEST_PASSWORD"],
    )
    assert dup.returncode == 2 and "already registered" in dup.stderr and "Traceback" not in dup.stderr
    assert empty.returncode == 2 and "CLI_TEST_EMPTY" in empty.stderr
    assert no_tty.returncode == 2 and "--password-env" in no_tty.stderr
    assert invalid.returncode == 2 and "invalid user" in invalid.stderr


def test_org_create_and_add_member(cli_env, servers, web):
    admin, member = http_user(web), http_user(web)
    slug = unique("cliorg")
    r = forum(
        cli_env,
        "org",
        "create",
        "--slug",
        slug,
        "--name",
        "CLI Org",
        "--visibility",
        "private",
        "--admin",
        admin,
    )
    assert r.returncode == 0, r.stderr
    assert f"org_{slug}" in r.stdout
    [org] = query(servers.database_url, "SELECT id, visibility FROM orgs WHERE slug = $1", slug)
    assert org["visibility"] == "private"
    assert query(servers.database_url, "SELECT 1 FROM pg_namespace WHERE nspname = $1", f"org_{slug}")
    signals = query(servers.database_url, f'SELECT type, source, actor_type FROM "org_{slug}".signal ORDER BY id')
    assert [(s["type"], s["source"], s["actor_type"]) for s in signals] == [
        ("org.created", "job", "user"),
        ("org.member.added", "job", "user"),
    ]

    r = forum(cli_env, "org", "add-member", "--org", slug, "--username", member, "--role", "moderator")
    assert r.returncode == 0, r.stderr
    assert f"added {member} as moderator in {slug}" in r.stdout
    r = forum(cli_env, "org", "add-member", "--org", slug, "--username", member, "--role", "admin")
    assert r.returncode == 0 and f"updated {member} as admin" in r.stdout
    roles = query(
        servers.database_url,
        "SELECT u.username, m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1",
        org["id"],
    )
    assert {r["username"]: r["role"] for r in roles} == {admin: "admin", member: "admin"}
    # The member sees the org over HTTP.
    with httpx.Client(base_url=web.url) as http:
        assert http.post("/api/v1/auth/login", json={"login": member, "password": PASSWORD}).status_code == 200
        assert http.get(f"/api/v1/orgs/{slug}").json()["org"]["role"] == "admin"


def test_org_command_errors_exit_2_and_say_what_to_do(cli_env, servers, web):
    admin = http_user(web)
    taken = http_org(web, admin)
    slug = unique("err")
    no_admin, bad_slug, no_org, no_user, dup = forum_many(
        cli_env,
        ["org", "create", "--slug", slug, "--name", "x", "--admin", unique("nobody")],
        ["org", "create", "--slug", "Bad-Slug", "--name", "x", "--admin", admin],
        ["org", "add-member", "--org", unique("nope"), "--username", admin],
        ["org", "add-member", "--org", taken, "--username", unique("ghost")],
        ["org", "create", "--slug", taken, "--name", "again", "--admin", admin],
    )
    for r in (no_admin, bad_slug, no_org, no_user, dup):
        assert r.returncode == 2, (r.args, r.stderr)
        assert r.stderr.startswith("forum: ") and "Traceback" not in r.stderr, r.stderr
    assert "forum user create" in no_admin.stderr
    assert "invalid org" in bad_slug.stderr
    assert "forum org create" in no_org.stderr
    assert "no user named" in no_user.stderr
    assert "taken" in dup.stderr
    assert not query(servers.database_url, "SELECT 1 FROM orgs WHERE slug = $1", slug)
    assert not query(servers.database_url, "SELECT 1 FROM pg_namespace WHERE nspname = $1", f"org_{slug}")


# --- forum web over real HTTP ----------------------------------------------------------------------------


def test_web_healthz(web):
    r = httpx.get(web.url + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_web_register_login_and_csrf_over_http(web, servers):
    name = unique("http")
    with httpx.Client(base_url=web.url) as http:
        r = http.post(
            "/api/v1/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        assert r.status_code == 201, r.text
        r = http.post("/api/v1/auth/login", json={"login": f"{name}@example.com", "password": PASSWORD})
        assert r.status_code == 200 and r.json()["user"]["username"] == name
        assert http.get("/api/v1/me").json()["user"]["username"] == name
        slug = unique("web")
        body = {"slug": slug, "name": "Web", "visibility": "public"}
        assert http.post("/api/v1/orgs", json=body).status_code == 403  # no CSRF header
        r = http.post("/api/v1/orgs", json=body, headers={"x-csrftoken": http.cookies["csrftoken"]})
        assert r.status_code == 201, r.text
        assert http.post("/api/v1/auth/logout", headers={"x-csrftoken": http.cookies["csrftoken"]}).status_code == 204
        assert http.get("/api/v1/me").status_code == 401
        r = http.post("/api/v1/auth/register", content=b"{bad", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["status_code"] == 400
    # The real client address was throttled by hash only.
    rows = query(servers.database_url, "SELECT count(*) AS n FROM orgs WHERE slug = $1", slug)
    assert rows[0]["n"] == 1


def test_openapi_document_lists_the_api(web):
    r = httpx.get(web.url + "/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/orgs",
        "/api/v1/orgs/{org}/members",
        "/api/v1/orgs/{org}/tokens",
        "/healthz",
    ):
        assert path in paths, (path, sorted(paths))


def test_healthz_is_503_naming_redis_when_redis_is_down(cli_env, tmp_path):
    env = {**cli_env, "FORUM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    server = start_web(env, tmp_path / "web.log", expect_status=503)
    try:
        r = httpx.get(server.url + "/healthz", timeout=10)
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "failing": ["redis"]}
    finally:
        server.assert_stops_cleanly()
