"""`python -m bench --quick` runs every benchmark end to end (real servers, real HTTP) and prints its
figures. A few minutes on a loaded machine: marked slow."""

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
        timeout=480,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    for side in ("ours (forum API)", "baseline (bare INSERT)", "ours / baseline"):
        assert re.search(rf"{re.escape(side)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
    assert re.search(rf"ours \(forum API\)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0\s*$", out, re.M), out
    for side in ("ours (HTTP API)", "raw SQL (asyncpg)", "ours / raw"):
        assert re.search(rf"{re.escape(side)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
    # fanout: both sides measured, every delivery received, memory per socket for both
    for impl in ("ours", "baseline"):
        for case in ("100 busy @20/s", "100 quiet @20/s"):
            row = re.search(
                rf"^\s*{re.escape(case)}\s+{impl}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}.*\s(\d+)/(\d+)\s*$", out, re.M
            )
            assert row and row.group(1) == row.group(2) != "0", out
        assert re.search(rf"^\s*{impl}\s+{NUMBER}\s+{NUMBER}\s*$", out, re.M), out
    assert "goals (issue 4)" in out
    # faq: the answer's first streamed token after the question's signal, next to the baseline
    for side in ("ours: signal → first token", "baseline: XADD → job start"):
        assert re.search(rf"{re.escape(side)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
    # related: both sides measured, every draft got suggestions
    for side in ("ours (POST /related, HTTP)", "raw search SQL, title (asyncpg)", "ours / raw"):
        assert re.search(rf"{re.escape(side)}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", out), out
    assert re.search(r"threads returned per draft: ours \[(5, )+5\]", out), out  # the raw title search may find none
