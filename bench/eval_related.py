"""Related-thread quality on a question-question similarity set (SemEval-2016 Task 3 subtask B layout).

    .venv/bin/python -m bench.eval_related ../shared/datasets/semeval2016_task3_dev

PATH holds `threads.jsonl` (the candidate threads, importer format), `queries.jsonl` (query_id, title,
body, candidates: thread ids in the given order) and `qrels.tsv` (query_id, thread_id, relevant 0/1, …).
The threads are imported with the real importer (`forum import jsonl`) into a throwaway org (fresh
database, removed afterwards); each query's candidates are ranked by `related_threads`, the code path the
FAQ agent and POST /related use, with nothing specific to this data. Prints MAP, MRR and P@1 (percent)
next to the candidates' given order and random order (mean of many shuffles); the last line is
`MAP=<x> MRR=<y> P@1=<z>` for our ranking. A query without any relevant candidate scores 0.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from backend.importers.jsonl import read_jsonl
from backend.search.related import related_threads
from bench.harness import Servers, servers
from bench.imported_org import imported_org

RANDOM_SHUFFLES = 1000
SEED = 20160616


class Query(msgspec.Struct):
    query_id: str
    title: str
    body: str
    candidates: list[str]


def load_queries(path: Path) -> list[Query]:
    with path.open("rb") as lines:
        return [msgspec.json.decode(line, type=Query) for line in lines if line.strip()]


def load_qrels(path: Path) -> dict[str, set[str]]:
    relevant: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            relevant.setdefault(row["query_id"], set())
            if str(row["relevant"]).strip() in ("1", "true", "True"):
                relevant[row["query_id"]].add(row["thread_id"])
    return relevant


def average_precision(ranked: Sequence[str], relevant: set[str]) -> float:
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, thread in enumerate(ranked, 1):
        if thread in relevant:
            hits += 1
            total += hits / i
    return total / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    return next((1.0 / i for i, thread in enumerate(ranked, 1) if thread in relevant), 0.0)


def scores(rankings: dict[str, list[str]], qrels: dict[str, set[str]]) -> tuple[float, float, float]:
    """MAP, MRR, P@1 in percent over every query of `rankings`."""
    n = len(rankings) or 1
    ap = sum(average_precision(r, qrels.get(q, set())) for q, r in rankings.items())
    rr = sum(reciprocal_rank(r, qrels.get(q, set())) for q, r in rankings.items())
    p1 = sum(1.0 for q, r in rankings.items() if r and r[0] in qrels.get(q, set()))
    return 100 * ap / n, 100 * rr / n, 100 * p1 / n


def random_scores(queries: list[Query], qrels: dict[str, set[str]]) -> tuple[float, float, float]:
    rng = random.Random(SEED)
    totals = [0.0, 0.0, 0.0]
    for _ in range(RANDOM_SHUFFLES):
        shuffled = {q.query_id: rng.sample(q.candidates, len(q.candidates)) for q in queries}
        for i, value in enumerate(scores(shuffled, qrels)):
            totals[i] += value
    m, r, p = (t / RANDOM_SHUFFLES for t in totals)
    return m, r, p


async def rank_all(infra: Servers, path: Path, queries: list[Query]) -> dict[str, list[str]]:
    source = read_jsonl(path / "threads.jsonl")
    async with imported_org(infra, source) as imported:
        c = imported.result.counts
        print(f"imported {c.threads} threads / {c.posts} posts in {imported.result.seconds:.1f}s", flush=True)
        local = await imported.thread_ids()
        external = {v: k for k, v in local.items()}
        rankings: dict[str, list[str]] = {}
        for query in queries:
            candidates = [local[c] for c in query.candidates if c in local]
            async with imported.reading():
                found = await related_threads(
                    query.body,
                    len(candidates) or 1,
                    title=query.title,
                    visible_to=imported.admin.user_id,
                    candidate_thread_ids=candidates,
                )
            ranked = [external[r.thread_id] for r in found]
            # candidates the ranking could not score at all keep their relative order at the end
            rankings[query.query_id] = ranked + [c for c in query.candidates if c not in ranked]
        return rankings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="folder with threads.jsonl, queries.jsonl, qrels.tsv")
    args = parser.parse_args(argv)
    queries = load_queries(args.path / "queries.jsonl")
    qrels = load_qrels(args.path / "qrels.tsv")
    with servers("related") as infra:
        ours = asyncio.run(rank_all(infra, args.path, queries))
    given = scores({q.query_id: list(q.candidates) for q in queries}, qrels)
    rand = random_scores(queries, qrels)
    mine = scores(ours, qrels)
    print(f"\n{len(queries)} queries, {sum(len(q.candidates) for q in queries)} candidates")
    print(f"{'ranking':<28} {'MAP':>7} {'MRR':>7} {'P@1':>7}")
    for name, (m, r, p) in (
        ("given order", given),
        (f"random (mean of {RANDOM_SHUFFLES})", rand),
        ("related_threads (ours)", mine),
    ):
        print(f"{name:<28} {m:7.2f} {r:7.2f} {p:7.2f}")
    print(f"MAP={mine[0]:.2f} MRR={mine[1]:.2f} P@1={mine[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
