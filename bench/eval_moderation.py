"""Spam precision/recall of the moderation agent's own scorer on labelled comments.

    .venv/bin/python -m bench.eval_moderation ../shared/datasets/youtube_spam_dev [--threshold T] [--misses]

PATH is a CSV file or a folder of CSVs with the columns COMMENT_ID, AUTHOR, DATE, CONTENT, CLASS (1 = spam),
e.g. the YouTube Spam Collection. Each row is scored as a post by an established account (30 days old, with
earlier posts), with no cross-post context. The data is read in place and never copied. Next to the agent,
in the same run, the old inline heuristic (`bench.spam_baseline`) is measured at its own default threshold.
The last line is exactly `P=<x> R=<y> F1=<z>` (percent) for the agent at the configured threshold.
"""

from __future__ import annotations

import argparse
import csv
import html
import sys
from collections import Counter
from pathlib import Path

from agent_packages.forum_moderation_agent.agent import MANIFEST
from agent_packages.forum_moderation_agent.scorer import PostFacts, assess
from bench.spam_baseline import BASELINE_THRESHOLD, spam_score

ESTABLISHED_S = 30 * 86_400.0


def load(path: Path) -> list[tuple[str, bool]]:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"no CSV files under {path}")
    rows: list[tuple[str, bool]] = []
    for file in files:
        with file.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                text = html.unescape(row["CONTENT"]).replace("\ufeff", "")
                text = text.replace("<br />", "\n").replace("<br/>", "\n").replace("<br>", "\n")
                rows.append((text, row["CLASS"].strip() == "1"))
    return rows


def prf(predicted: list[bool], gold: list[bool]) -> tuple[float, float, float]:
    tp = sum(p and g for p, g in zip(predicted, gold, strict=True))
    fp = sum(p and not g for p, g in zip(predicted, gold, strict=True))
    fn = sum(g and not p for p, g in zip(predicted, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return 100 * precision, 100 * recall, 100 * f1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--threshold", type=float, default=float(MANIFEST.default_config["spam_threshold"]))
    parser.add_argument("--misses", action="store_true", help="print the false positives and false negatives")
    args = parser.parse_args(argv)
    rows = load(args.path)
    gold = [is_spam for _, is_spam in rows]
    facts = [PostFacts(body=text, account_age_s=ESTABLISHED_S, author_post_count=10) for text, _ in rows]
    assessments = [assess(f) for f in facts]
    agent_scores = [a.score("spam") for a in assessments]
    baseline_scores = [spam_score(text, account_age_s=ESTABLISHED_S, links=0)[0] for text, _ in rows]

    spam = sum(gold)
    print(f"{len(rows)} rows, {spam} spam ({100 * spam / len(rows):.1f}%), scored as posts of a 30-day-old account")
    print(f"{'scorer':<34} {'threshold':>9} {'P':>7} {'R':>7} {'F1':>7}")
    bp, br, bf = prf([s > BASELINE_THRESHOLD for s in baseline_scores], gold)
    print(f"{'baseline: old inline heuristic':<34} {BASELINE_THRESHOLD:>9.2f} {bp:>7.2f} {br:>7.2f} {bf:>7.2f}")
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        p, r, f = prf([s >= t for s in agent_scores], gold)
        print(f"{'agent (sweep)':<34} {t:>9.2f} {p:>7.2f} {r:>7.2f} {f:>7.2f}")
    rules: Counter[str] = Counter()
    for a in assessments:
        rules.update(a.rules("spam"))
    print("spam rules fired:", ", ".join(f"{r}={n}" for r, n in rules.most_common()))
    if args.misses:
        for (text, is_spam), score, a in zip(rows, agent_scores, assessments, strict=True):
            if (score >= args.threshold) != is_spam:
                kind = "FP" if not is_spam else "FN"
                print(f"{kind} {score:.2f} {a.rules('spam')} {' '.join(text.split())[:150]}")
    p, r, f = prf([s >= args.threshold for s in agent_scores], gold)
    print(f"agent at the configured threshold {args.threshold:.2f}; baseline F1 {bf:.2f}")
    print(f"P={p:.2f} R={r:.2f} F1={f:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
