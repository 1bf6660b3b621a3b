"""ROUGE of the summary agent's own offline summarizer on threads with reference summaries.

    .venv/bin/python -m bench.eval_summary ../shared/datasets/convosumm_email_val

PATH holds `*.source.txt` files (one thread per line, messages separated by `</s>`, each message opening
with an email header `Name: "..."  Email: ...  Subject: "..."`) and matching `*.target.txt` (one reference
summary per line). Each message becomes one post (author = the sender's name; the quoted original message
a reply carries is cut, as a forum post would quote it); the agent's summarizer (`summarize`, 65 words)
and the LEAD baseline (first sentence of each message, in order, to 65 words) summarize the same posts
in the same run. ROUGE-1/2/L F1 with stemming (`rouge-score`). Last line exactly `R1=<x> R2=<y> RL=<z>`.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

from agent_packages.forum_summary_agent.summarizer import PostText, lead_baseline, summarize

MAX_WORDS = 65
_HEADER_RE = re.compile(r'^\s*Name:\s*"?(?P<name>[^"]*?)"?\s+Email:.*?Subject:\s*"(?P<subject>(?:[^"]|"")*)"\s*', re.S)
_ORIGINAL_RE = re.compile(
    r"(?:-{3,}\s*Original Message\s*-{3,}|_{5,}\s*Original message\s*_{5,}|-{5,}\s*Forwarded message).*$",
    re.I | re.S,
)
_WROTE_RE = re.compile(r"(?:^|\n)[^\n]{0,120}\b(?:wrote|writes|said):\s*$", re.I | re.M)


def message_to_post(message: str) -> PostText | None:
    """One email as a forum post: header → author, whitespace runs → line breaks, the original cut."""
    match = _HEADER_RE.match(message)
    author = match.group("name").strip() if match else ""
    body = message[match.end() :] if match else message
    body = html.unescape(body)
    body = re.sub(r" {5,}", "\n\n", body)
    body = re.sub(r" {3,4}", "\n", body)
    body = _ORIGINAL_RE.sub("", body)
    body = _WROTE_RE.sub("\n", body)
    body = "\n".join(line.strip() for line in body.splitlines())
    body = re.sub(r"\n(?!\n)(?![>\-*+#|]|\d+[.)] )", " ", body)  # re-join wrapped lines of a paragraph
    body = re.sub(r"(?m)^(--|-- |#\w+)\s*$.*", "", body, flags=re.S)  # a signature ends the message
    body = body.strip()
    return PostText(author=author, body=body) if body else None


def load(path: Path) -> list[tuple[list[PostText], str]]:
    sources = sorted(path.glob("*.source.txt")) if path.is_dir() else [path]
    if not sources:
        raise SystemExit(f"no *.source.txt under {path}")
    pairs: list[tuple[list[PostText], str]] = []
    for source in sources:
        target = source.with_name(source.name.replace(".source.txt", ".target.txt"))
        threads = source.read_text(encoding="utf-8").split("\n")
        summaries = target.read_text(encoding="utf-8").split("\n")
        for thread, summary in zip(threads, summaries, strict=False):
            if not thread.strip() or not summary.strip():
                continue
            posts = [p for p in (message_to_post(m) for m in thread.split("</s>")) if p is not None]
            pairs.append((posts, summary.strip()))
    return pairs


def capped(text: str, max_words: int = MAX_WORDS) -> str:
    return " ".join(text.split()[:max_words])


def main(argv: list[str] | None = None) -> int:
    from rouge_score import rouge_scorer  # dev dependency

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--show", type=int, default=0, help="print the first N summaries next to the reference")
    args = parser.parse_args(argv)
    pairs = load(args.path)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"agent": [0.0, 0.0, 0.0], "lead": [0.0, 0.0, 0.0]}
    for i, (posts, reference) in enumerate(pairs):
        ours = capped(" ".join(p.text() for p in summarize(posts, max_words=MAX_WORDS)))
        lead = capped(lead_baseline(posts, max_words=MAX_WORDS))
        for name, text in (("agent", ours), ("lead", lead)):
            scores = scorer.score(reference, text)
            for j, key in enumerate(("rouge1", "rouge2", "rougeL")):
                totals[name][j] += scores[key].fmeasure
        if i < args.show:
            print(f"--- {i}\nREF  {reference}\nOURS {ours}\nLEAD {lead}")
    n = len(pairs)
    print(f"{n} threads, summaries capped at {MAX_WORDS} words; ROUGE F1 with stemming (percent)")
    print(f"{'summarizer':<40} {'R1':>6} {'R2':>6} {'RL':>6}")
    for name, label in (
        ("lead", "baseline: LEAD (first sentence per message)"),
        ("agent", "agent (offline summarizer)"),
    ):
        r1, r2, rl = (100 * v / n for v in totals[name])
        print(f"{label:<40} {r1:>6.2f} {r2:>6.2f} {rl:>6.2f}")
    r1, r2, rl = (100 * v / n for v in totals["agent"])
    print(f"R1={r1:.2f} R2={r2:.2f} RL={rl:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
