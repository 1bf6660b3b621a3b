"""`python -m bench --quick` runs every benchmark end to end (real servers, real HTTP) and prints its
figures. About 30 s: marked slow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[\d,]+\.\d+"


@pytest.mark.slow
def test_quick_benchmarks_print_their_figures():
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-json"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for side in ("ours (forum API)", "baseline (bare INSERT)", "ours / baseline"):
        assert re.search(rf"{re.escape(side)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
    assert re.search(rf"ours \(forum API\)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0\s*$", out, re.M), out
    for side in ("ours (HTTP API)", "raw SQL (asyncpg)", "ours / raw"):
        assert re.search(rf"{re.escape(side)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
