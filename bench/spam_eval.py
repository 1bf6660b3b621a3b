"""Evaluate the spam heuristic (backend.moderation.service.spam_score) on labelled comments.

    .venv/bin/python bench/spam_eval.py ../shared/datasets/youtube_spam_dev [--account-age-s 2592000]

PATH is a CSV file or a folder of them with CONTENT and CLASS (1 = spam) columns, e.g. the YouTube
Spam Collection. The data is read in place and never copied into the repository. Prints precision,
recall and F1 at a few thresholds (the org default is 0.8), and the most frequent reasons.
"""

from __future__ import annotations

import argparse
import csv
import html
import sys
from collections import Counter
from pathlib import Path

from backend.content import count_links
from backend.moderation.service import spam_score

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def load(path: Path) -> list[tuple[str, bool]]:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"no CSV files under {path}")
    rows: list[tuple[str, bool]] = []
    for file in files:
        with file.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                text = html.unescape(row["CONTENT"]).replace("\ufeff", "").replace("<br />", "\n")
                rows.append((text, row["CLASS"].strip() == "1"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--account-age-s", type=float, default=30 * 86_400, help="author age given to the heuristic")
    args = parser.parse_args(argv)
    rows = load(args.path)
    scored = []
    reasons: Counter[str] = Counter()
    for text, is_spam in rows:
        score, why = spam_score(text, account_age_s=args.account_age_s, links=count_links(text))
        scored.append((score, is_spam))
        reasons.update(r.split(":")[0] if not r.startswith("phrase:") else r for r in why)
    spam = sum(s for _, s in scored)
    print(f"{len(rows)} comments, {spam} spam ({spam / len(rows):.1%}); account age {args.account_age_s:.0f}s")
    print(f"{'threshold':>9} {'flagged':>7} {'precision':>9} {'recall':>6} {'F1':>6}")
    for threshold in THRESHOLDS:
        tp = sum(1 for score, s in scored if score > threshold and s)
        fp = sum(1 for score, s in scored if score > threshold and not s)
        fn = spam - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        print(f"{threshold:>9.2f} {tp + fp:>7} {precision:>9.3f} {recall:>6.3f} {f1:>6.3f}")
    print("reasons:", ", ".join(f"{r}={n}" for r, n in reasons.most_common(12)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
