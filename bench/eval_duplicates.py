"""Duplicate detection on a Stack Exchange dump: for every moderator-marked duplicate (PostLinks
LinkTypeId 3), the rank of the original among the compose-time suggestions for the duplicate's title
and body, as it was being written (threads created after it are left out).

    .venv/bin/python -m bench.eval_duplicates ../shared/datasets/stackexchange_beer [--k 10]

The dump is imported with the real importer into a throwaway org (fresh database, removed afterwards);
suggestions come from `backend.search.related.related_threads`, the code path of POST /related.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from backend.importers.stackexchange import read_dump
from backend.search.related import related_threads
from bench.harness import Servers, servers
from bench.imported_org import imported_org


async def evaluate(infra: Servers, path: Path, k: int) -> list[tuple[str, str, int | None, str]]:
    source = read_dump(path)
    threads = {t.external_id: t for t in source.threads}
    results: list[tuple[str, str, int | None, str]] = []
    async with imported_org(infra, source) as imported:
        print(f"imported in {imported.result.seconds:.1f}s", flush=True)
        local = await imported.thread_ids()
        for dup in source.duplicates:
            question = threads[dup.thread]
            # as it was being written: later threads did not exist yet (except the original, when moderators
            # pointed an older question at a newer, better one)
            later = [
                local[t.external_id]
                for t in source.threads
                if t.question.created_at >= question.question.created_at and t.external_id != dup.original
            ]
            async with imported.reading():
                found = await related_threads(
                    question.question.body,
                    k,
                    title=question.title,
                    visible_to=imported.admin.user_id,
                    exclude_thread_ids=later,
                )
            ranked = [r.thread_id for r in found]
            rank = ranked.index(local[dup.original]) + 1 if local[dup.original] in ranked else None
            results.append((dup.thread, dup.original, rank, question.title))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="a Stack Exchange dump folder (Posts.xml, PostLinks.xml, …)")
    parser.add_argument("--k", type=int, default=10, help="suggestions asked for (default 10)")
    args = parser.parse_args(argv)
    with servers("dups") as infra:
        results = asyncio.run(evaluate(infra, args.path, args.k))
    if not results:
        print("no duplicate links between imported questions")
        return 1
    print(f"\n{'duplicate':>9} {'original':>8} {'rank':>5}  title")
    for dup, original, rank, title in results:
        print(f"{dup:>9} {original:>8} {rank if rank else f'>{args.k}':>5}  {title[:70]}")
    ranks = [r for _, _, r, _ in results]
    n = len(ranks)
    top1 = sum(1 for r in ranks if r == 1)
    top3 = sum(1 for r in ranks if r and r <= 3)
    topk = sum(1 for r in ranks if r)
    mrr = sum(1 / r for r in ranks if r) / n
    print(f"\n{n} duplicates: top-1 {top1}, top-3 {top3}, top-{args.k} {topk}; MRR@{args.k} {mrr:.3f}")
    print(f"TOP1={top1}/{n} TOP3={top3}/{n} TOP{args.k}={topk}/{n} MRR={100 * mrr:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
