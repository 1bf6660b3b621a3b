"""Grounding: how well an earlier thread matches a question (the agent's confidence), which of its posts
answers it, and whether a written answer cites only what it was given."""

from __future__ import annotations

import math
import re

from agent_packages.forum_contract.reads import ThreadPost, ThreadView
from engine.llm.offline_provider import content_words

_CITATION = re.compile(r"\[(\d{1,3})\]")
_THREAD_LINK = re.compile(r"/t/([0-9a-fA-F-]{36})")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    return {_stem(w) for w in content_words(text)}


def similarity(question: str, candidate: str) -> float:
    """Cosine of the two texts' content-word sets (0..1)."""
    q, c = terms(question), terms(candidate)
    if not q or not c:
        return 0.0
    return len(q & c) / math.sqrt(len(q) * len(c))


def best_answer(thread: ThreadView, question: str) -> ThreadPost | None:
    """The accepted answer, else the best-scored human reply (ties: the one closest to the question)."""
    replies = [p for p in thread.posts[1:] if p.role == "human" and p.body.strip()]
    for post in replies:
        if post.is_solution:
            return post
    if not replies:
        return None
    return max(replies, key=lambda p: (p.score, similarity(question, p.body)))


def confidence(question: str, thread: ThreadView, answer: ThreadPost) -> float:
    """How sure the agent is that `answer` (in `thread`) answers `question`: how closely the earlier
    question matches this one, more when the answer was accepted or upvoted. 0..0.99."""
    asked = thread.title + "\n" + (thread.posts[0].body if thread.posts else "")
    match = max(similarity(question, asked), similarity(question, thread.title) * 0.9)
    bonus = 0.15 if answer.is_solution else (0.05 if answer.score > 0 else 0.0)
    return round(min(0.99, match * 1.25 + bonus), 3)


def trim(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    return " ".join(words[:max_words]).rstrip(",;:") + " …"


def citation_problems(text: str, given: int, allowed_thread_ids: set[str]) -> list[str]:
    """Why a written answer must not be posted: it cites nothing, cites a number it was not given, or links
    a thread it was not given."""
    numbers = {int(n) for n in _CITATION.findall(text)}
    problems = []
    if not numbers:
        problems.append("the answer cites none of the threads it was given")
    unknown = sorted(n for n in numbers if not 1 <= n <= given)
    if unknown:
        problems.append(f"the answer cites {', '.join(f'[{n}]' for n in unknown)}, which it was not given")
    foreign = sorted({t for t in _THREAD_LINK.findall(text) if t not in allowed_thread_ids})
    if foreign:
        problems.append(f"the answer links {len(foreign)} thread(s) it was not given")
    return problems
