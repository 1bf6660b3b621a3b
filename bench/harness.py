"""What every benchmark shares: throwaway servers and a fresh migrated database, server processes on
free ports, latency statistics, the results table and the JSON file."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.migrations import all_migrations
from engine.migrator import migrate_all

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
FORUM = Path(sys.executable).with_name("forum")


def progress(message: str) -> None:
    print(f"  · {message}", flush=True)


@dataclass(frozen=True)
class Servers:
    database_url: str
    redis_url: str
    workdir: Path


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextmanager
def servers(label: str) -> Iterator[Servers]:
    """Embedded PostgreSQL + Redis in a temporary directory (or the FORUM_* URLs), with a fresh
    database built by the migrations; everything is removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"forum-bench-{label}-"))
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    base_db = os.environ.get("FORUM_DATABASE_URL")
    base_redis = os.environ.get("FORUM_REDIS_URL")
    try:
        if not base_db:
            progress("starting embedded PostgreSQL")
            pg = EmbeddedPostgres(workdir / "pg", keep=False)
            base_db = pg.start()
            started.append(pg)
        if not base_redis:
            progress("starting embedded Redis")
            rd = EmbeddedRedis(workdir / "redis", persist=False)
            base_redis = rd.start()
            started.append(rd)
        name = f"forum_bench_{label}_{secrets.token_hex(3)}"
        admin_url = base_db
        asyncio.run(_create_database(admin_url, name))
        try:
            database_url = _with_database(admin_url, name)
            asyncio.run(_migrate(database_url))
            yield Servers(database_url=database_url, redis_url=base_redis, workdir=workdir)
        finally:
            asyncio.run(_drop_database(admin_url, name))
    finally:
        for server in reversed(started):
            server.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _migrate(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await migrate_all(pool, all_migrations())
    finally:
        await pool.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """An HTTP server subprocess (stdout/stderr to a log file), ready once `health_path` answers 200."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    health_path: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early: see its log:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base_url + self.health_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} was not healthy within {timeout_s}s: see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextmanager
def running(*processes: ServerProcess) -> Iterator[None]:
    try:
        for process in processes:
            progress(f"starting {process.name} on port {process.port}")
            process.start()
        yield
    finally:
        for process in reversed(processes):
            process.stop()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print(
            "  "
            + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(flush=True)


def compare_latencies(
    title: str, measured: dict[str, list[list[float]]], labels: dict[str, str]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Median over rounds of each side's p50, p99 and mean (ms); print them with ours/baseline ratios.

    `measured` maps a side to its rounds' latencies; `labels` names the sides, ours first, the baseline second."""
    summary = {
        side: {
            "p50_ms": median([percentile(r, 50) for r in rs]),
            "p99_ms": median([percentile(r, 99) for r in rs]),
            "mean_ms": median([sum(r) / len(r) for r in rs]),
        }
        for side, rs in measured.items()
    }
    ours, base = labels
    keys = ("p50_ms", "p99_ms", "mean_ms")
    ratios = {k: summary[ours][k] / summary[base][k] for k in keys}
    print_table(
        title,
        ["side", "p50 ms", "p99 ms", "mean ms"],
        [
            *([labels[side], *(summary[side][k] for k in keys)] for side in (ours, base)),
            [f"{ours} / {base}", *(ratios[k] for k in keys)],
        ],
    )
    return summary, ratios


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def write_json(name: str, payload: dict[str, object], enabled: bool = True) -> Path | None:
    if not enabled:
        return None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    meta = {"benchmark": name, "at": stamp, "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    path.write_text(json.dumps({**meta, **payload}, indent=2, default=str) + "\n")
    print(f"  results written to {path.relative_to(ROOT)}", flush=True)
    return path


def forum_env(infra: Servers, **overrides: str) -> dict[str, str]:
    """The environment of a `forum` process on the benchmark's servers (FORUM_* overrides on top)."""
    return {
        "FORUM_DATABASE_URL": infra.database_url,
        "FORUM_REDIS_URL": infra.redis_url,
        "FORUM_SECRET_KEY": secrets.token_hex(16),
        "FORUM_DATA_DIR": str(infra.workdir / "data"),
        "FORUM_LOG_LEVEL": "WARNING",
        **overrides,
    }


def forum_web(infra: Servers, env: dict[str, str] | None = None, log_name: str = "forum-web.log") -> ServerProcess:
    """`forum web` on a free port, ready once /healthz answers."""
    port = free_port()
    return ServerProcess(
        "forum web", [str(FORUM), "web", "--port", str(port)], env or forum_env(infra), port, infra.workdir / log_name
    )
