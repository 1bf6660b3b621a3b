"""A terminal progress bar with counts and rate (redrawn in place on a terminal, a line every few
seconds otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 28


class ProgressBar:
    def __init__(self, total: int, label: str, stream: TextIO | None = None, interval_s: float = 0.1) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if self.tty else 5.0
        self.started = time.monotonic()
        self.last_drawn = 0.0
        self.done = 0
        self.extra = ""
        self.drawn_done = -1

    def update(self, done: int, extra: str = "") -> None:
        self.done, self.extra = done, extra
        now = time.monotonic()
        if now - self.last_drawn >= self.interval_s or done >= self.total:
            self.last_drawn = now
            self.draw()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        share = self.done / self.total if self.total else 1.0
        filled = int(WIDTH * share)
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done:,}/{self.total:,}"
            f" {share:4.0%} {rate:,.1f}/s {elapsed:,.1f}s eta {left:,.0f}s{('  ' + self.extra) if self.extra else ''}"
        )

    def draw(self) -> None:
        self.drawn_done = self.done
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn_done != self.done:
            self.draw()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
