"""`python -m bench [name ...] [--quick]`: run the named benchmarks (default: all)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

BENCHMARKS = {
    "replies": "reply creation through the HTTP API vs a bare Litestar + asyncpg INSERT",
    "search": "search p50/p99 over a large org through the HTTP API vs the same SQL run raw",
    "related": "compose-time related threads (POST /related) p50/p99 over a large org vs the search SQL run raw",
    "fanout": "websocket fan-out: commit→receive latency, deliveries/s, memory per connection vs a bare"
    " Litestar websocket broadcast fed by Redis pub/sub",
    "drafts": "token-to-screen: agent token from the provider to a websocket client vs bare Redis pub/sub",
    "agents": "signal → directive → execution start latency (offline provider) vs bare XADD → SAQ job start",
    "ui": "frontend gzip size and a 200-post thread page's time to first render in Chromium vs a baseline build",
    "soak": "soak: simulated users reading, posting, reacting and watching over websockets on 2 web + 2 workers:"
    " errors, p99 per route, delivery p99, lost/duplicated events, memory",
    "faq": "FAQ agent: new question's signal → first streamed answer token at 100k posts vs bare XADD → job start",
    "live": "a busy thread watched by N pages: POST sent → reply drawable (as the thread page behaves) vs a"
    " bare pub/sub websocket broadcast",
}

# Run only when named (minutes long even when short): `make bench BENCH_ARGS=soak`.
ON_REQUEST = frozenset({"soak"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    parser.add_argument("--rounds", type=int, help="A/B rounds (default: replies 4, search 3, fanout 3; quick 1)")
    parser.add_argument("--requests", type=int, help="replies: requests per side over all rounds (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="replies: concurrent clients (default 16)")
    parser.add_argument("--posts", type=int, help="search, related: posts to generate (default 100000)")
    parser.add_argument("--sockets", help="fanout: comma-separated socket counts (default 100,1000,5000)")
    parser.add_argument(
        "--max-busy-deliveries", type=float, help="fanout: cap on a busy thread's deliveries/s (default 20,000)"
    )
    parser.add_argument("--rate", type=float, help="fanout: writes per second (default 20)")
    parser.add_argument(
        "--duration", type=float, help="fanout: seconds of steady writes (default 5); live: per case (10)"
    )
    parser.add_argument("--burst", type=int, help="fanout: writes in the burst phase (default 50)")
    parser.add_argument("--baseline-dist", help="ui: a frontend/dist to measure next to this build (e.g. main's)")
    parser.add_argument("--users", type=int, help="soak: simulated users (default 1000)")
    parser.add_argument("--seconds", type=float, help="soak: length in seconds (default 300)")
    parser.add_argument("--think-s", type=float, help="soak: mean pause between a user's actions (default 8)")
    parser.add_argument("--threads", type=int, help="soak: threads watched (default users/20)")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = args.names or [n for n in BENCHMARKS if n not in ON_REQUEST]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        print(f"\n=== bench {name}: {BENCHMARKS[name]}{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        importlib.import_module(f"bench.{name}").run(args)
        print(f"=== bench {name} done in {time.monotonic() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
