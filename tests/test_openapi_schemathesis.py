"""schemathesis against a real `forum web` (uvicorn) process: every operation of /schema/openapi.json,
as a signed-in user (session cookie + CSRF header) and as an org-bound bearer token, bounded in time.
The run fails on any 5xx and on any response the document does not describe (status code, content
type, body schema), and on unknown request fields being accepted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.realtime_helpers import account, bearer_token, make_category, make_org, make_thread, start_node

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
ST = str(Path(sys.executable).parent / "st")
BUDGET_S = int(os.environ.get("FORUM_SCHEMATHESIS_SECONDS", "60"))  # per identity; two identities
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Operations that would end the identity under test mid-run.
EXCLUDED = "^/api/v1/auth/logout$"


def _config(tmp: Path, org: str, thread_id: str, post_id: str, category: str, username: str) -> Path:
    """Real values for the path parameters, so operations reach their handlers (not only 404s)."""
    path = tmp / "schemathesis.toml"
    path.write_text(
        "[parameters]\n"
        f'"path.org" = "{org}"\n'
        f'"path.ref" = "{thread_id}"\n'
        f'"path.thread_id" = "{thread_id}"\n'
        f'"path.post_id" = "{post_id}"\n'
        f'"path.slug" = "{category}"\n'
        '"path.package" = "forum_welcome_agent"\n'
        f'"path.username" = "{username}"\n'
        "[generation]\n"
        "max-examples = 25\n"
    )
    return path


async def _run(config: Path, url: str, headers: dict[str, str], label: str, tmp: Path) -> tuple[int, str]:
    args = [ST, "--config-file", str(config), "run", f"{url}/schema/openapi.json", "--url", url]
    args += ["--checks", CHECKS, "--exclude-path-regex", EXCLUDED, "--max-time", str(BUDGET_S)]
    args += ["--workers", "2", "--request-timeout", "10", "--phases", "examples,coverage,fuzzing"]
    args += ["--no-color", "--suppress-health-check", "all"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = tmp / f"schemathesis-{label}.log"
    # cwd: schemathesis keeps a cache of crashes in ./.schemathesis
    proc = await asyncio.create_subprocess_exec(*args, stdout=out.open("wb"), stderr=subprocess.STDOUT, cwd=tmp)
    try:
        code = await asyncio.wait_for(proc.wait(), BUDGET_S + 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        code = -1
    return code, out.read_text(errors="replace")


async def test_schemathesis_finds_no_5xx_and_no_schema_violation(app: Any, servers: Any, tmp_path: Path) -> None:
    node = await start_node(servers, tmp_path / "web", register_max_per_ip=100000)
    try:
        admin = await account(node)
        org = await make_org(admin)
        slug = org["slug"]
        cat = await make_category(admin, slug)
        created = await make_thread(admin, slug, cat["slug"])
        thread, post = created["thread"], created["post"]
        token = await bearer_token(admin, slug, scopes=("admin",))
        config = _config(tmp_path, slug, thread["id"], post["id"], cat["slug"], admin.user["username"])
        session = {"Cookie": admin.cookie, "x-csrftoken": admin.client.cookies["csrftoken"]}
        results = [
            await _run(config, node.url, session, "session", tmp_path),
            await _run(config, node.url, {"Authorization": f"Bearer {token}"}, "token", tmp_path),
        ]
        failed = [log[-6000:] for code, log in results if code != 0]
        assert not failed, "\n\n".join(failed)
        assert "Traceback" not in node.log() and "Internal Server Error" not in node.log(), node.log()[-4000:]
    finally:
        await asyncio.to_thread(node.stop)
