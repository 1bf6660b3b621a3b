"""A small Procfile runner for `forum dev`: starts each process, prefixes its output, and stops them all
cleanly on Ctrl-C or when one of them exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m"]
_RESET = "\033[0m"


def parse_procfile(path: Path) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"bad Procfile line {line!r}: expected 'name: command'")
        entries.append((name.strip(), command.strip()))
    return entries


def _pump(name: str, stream: object, width: int, color: str) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        text = raw.decode("utf-8", "replace").rstrip()
        sys.stdout.write(f"{color}{name:<{width}} |{_RESET if color else ''} {text}\n")
        sys.stdout.flush()


def run_procfile(entries: list[tuple[str, str]], env: dict[str, str], grace_s: float = 10.0) -> int:
    """Run until Ctrl-C/SIGTERM or until a process exits; return the first non-zero exit code."""
    width = max(len(n) for n, _ in entries)
    tty = sys.stdout.isatty()
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index, (name, command) in enumerate(entries):
            # Procfile lines are shell commands by definition (the developer's own file); `exec` makes
            # the shell become the process we signal and wait for.
            proc = subprocess.Popen(  # noqa: S602
                "exec " + command,
                shell=True,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            procs.append((name, proc))
            color = _COLORS[index % len(_COLORS)] if tty else ""
            threading.Thread(target=_pump, args=(name, proc.stdout, width, color), daemon=True).start()
            print(f"{'dev':<{width}} | started {name} (pid {proc.pid}): {command}", flush=True)
        exit_code = 0
        while not stop.is_set():
            for name, proc in procs:
                code = proc.poll()
                if code is not None:
                    print(f"{'dev':<{width}} | {name} exited with code {code}; stopping the others", flush=True)
                    exit_code = code or 1
                    stop.set()
                    break
            stop.wait(0.2)
        print(f"{'dev':<{width}} | stopping {', '.join(n for n, _ in procs)}", flush=True)
        for _, proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{'dev':<{width}} | {name} did not stop in {grace_s:.0f}s: killing it", flush=True)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
