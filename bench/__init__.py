"""Benchmarks (`make bench`, `python -m bench [name ...] [--quick]`).

Each benchmark module exposes `run(args) -> None`, starts its own throwaway servers (or uses
FORUM_DATABASE_URL / FORUM_REDIS_URL with a fresh database), prints progress and a results table, and
writes its figures as JSON under bench/results/ (gitignored).
"""
