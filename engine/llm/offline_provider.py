"""The offline provider: no key, no network, no language model. Deterministic and labelled as such.

It composes replies from what the request carries, by `metadata["task"]`:

- `welcome`: a short welcome from metadata (`username`, `org_name`, `categories` comma-separated,
  `rules_url`); it asks for more context when the user's post is very short.
- `answer` (the default): the sentences of the retrieval context (a `render_sources` block in the
  messages) that best match the question, each cited `[n]`, then the cited sources. With no match it
  says so instead of guessing.
- `summarize`: an extractive summary, the top sentences by word-frequency score in their original order
  (`metadata["max_sentences"]`, default 3).

The output streams word by word through `on_delta` (with `delay_s` between tokens for benchmarks).
Usage is whitespace tokens; cost is 0.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterable

from engine.llm.base import (
    ContextSource,
    DeltaCallback,
    LLMRejected,
    LLMRequest,
    LLMResult,
    LLMUsage,
    count_tokens,
    word_deltas,
)

OFFLINE_MODEL = "offline-extractive-v1"
SHORT_POST_WORDS = 8
MAX_ANSWER_SENTENCES = 3

_SOURCE_HEADER = re.compile(r"^\[(\d+)\] (.+) <(\S+)>$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9][a-z0-9'_-]*")
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not now
    of off on once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours hi hello thanks thank please get got
    use using""".split()
)


def parse_sources(text: str) -> tuple[str, list[ContextSource]]:
    """Split a message into its own text and the `render_sources` blocks it contains."""
    own: list[str] = []
    sources: list[ContextSource] = []
    current: tuple[str, str, list[str]] | None = None
    for line in text.splitlines():
        header = _SOURCE_HEADER.match(line.strip())
        if header:
            if current is not None:
                sources.append(ContextSource(current[0], current[1], "\n".join(current[2]).strip()))
            current = (header.group(2), header.group(3), [])
        elif current is not None:
            current[2].append(line)
        else:
            own.append(line)
    if current is not None:
        sources.append(ContextSource(current[0], current[1], "\n".join(current[2]).strip()))
    return "\n".join(own).strip(), sources


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n(?=\s*[-*>#])", text):
        flat = " ".join(paragraph.split()).lstrip("-*># ").strip()
        sentences.extend(s for s in _SENTENCE_END.split(flat) if s)
    return sentences


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1]


class OfflineProvider:
    """Extractive, deterministic replies composed from the request; see the module docstring."""

    name = "offline"
    model = OFFLINE_MODEL

    def __init__(self, *, max_tokens: int = 1024, delay_s: float = 0.0) -> None:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.max_tokens = max_tokens
        self.delay_s = delay_s

    def __repr__(self) -> str:
        return f"OfflineProvider(model={self.model!r}, max_tokens={self.max_tokens}, delay_s={self.delay_s})"

    async def aclose(self) -> None:
        return None

    async def generate(self, request: LLMRequest, on_delta: DeltaCallback | None = None) -> LLMResult:
        started = time.perf_counter()
        if request.max_tokens < 1:
            raise LLMRejected("offline: max_tokens must be at least 1", provider=self.name)
        if not request.messages:
            raise LLMRejected("offline: at least one message is required", provider=self.name)
        deltas = word_deltas(self.compose(request))
        limit = min(request.max_tokens, self.max_tokens)
        stop_reason = "end_turn"
        if len(deltas) > limit:
            deltas, stop_reason = deltas[:limit], "max_tokens"
        first_token_ms: float | None = None
        for delta in deltas:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            else:
                await asyncio.sleep(0)  # stream cooperatively, like a network provider
            if first_token_ms is None:
                first_token_ms = (time.perf_counter() - started) * 1000
            if on_delta is not None:
                await on_delta(delta)
        input_tokens = count_tokens(request.system) + sum(count_tokens(m.content) for m in request.messages)
        return LLMResult(
            text="".join(deltas),
            usage=LLMUsage(input_tokens, len(deltas)),
            model=self.model,
            provider=self.name,
            stop_reason=stop_reason,
            cost_usd=0.0,
            cost_known=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            first_token_ms=first_token_ms,
        )

    def compose(self, request: LLMRequest) -> str:
        """The full reply text (before max_tokens truncation)."""
        task = request.metadata.get("task", "answer")
        if task == "welcome":
            return self._welcome(request)
        if task == "summarize":
            return self._summarize(request)
        return self._answer(request)

    # -- tasks ----------------------------------------------------------------------------------

    @staticmethod
    def _last_user_text(request: LLMRequest) -> str:
        for message in reversed(request.messages):
            if message.role == "user":
                return message.content
        return request.messages[-1].content

    def _welcome(self, request: LLMRequest) -> str:
        meta = request.metadata
        username = meta.get("username", "").strip()
        org = meta.get("org_name", "").strip()
        greeting = f"Welcome{' to ' + org if org else ''}, {username}!" if username else "Welcome!"
        lines = [greeting + " Thanks for your first post."]
        categories = [c.strip() for c in meta.get("categories", "").split(",") if c.strip()]
        if categories:
            lines.append("You can browse the categories: " + ", ".join(categories) + ".")
        if meta.get("rules_url"):
            lines.append(f"Please take a moment to read the community rules: {meta['rules_url']}")
        post, _ = parse_sources(self._last_user_text(request))
        if len(post.split()) < SHORT_POST_WORDS:
            lines.append(
                "Your post is quite short: could you add more context, such as what you are trying to do, "
                "what you have tried and what happened?"
            )
        return "\n\n".join(lines)

    def _answer(self, request: LLMRequest) -> str:
        question_parts: list[str] = []
        sources: list[ContextSource] = []
        for message in request.messages:
            own, found = parse_sources(message.content)
            sources.extend(found)
            if message.role == "user" and own:
                question_parts.append(own)
        question = question_parts[-1] if question_parts else ""
        wanted = set(content_words(question))
        scored: list[tuple[float, int, int, str]] = []  # (-score, source, position, sentence)
        for number, source in enumerate(sources, start=1):
            for position, sentence in enumerate(split_sentences(source.text)):
                words = content_words(sentence)
                overlap = len(wanted.intersection(words))
                if overlap:
                    score = overlap + 0.5 * len(wanted.intersection(content_words(source.title)))
                    scored.append((-score, number, position, sentence))
        if not scored:
            return (
                "I could not find an answer to this in earlier discussions. "
                "Someone from the community may be able to help."
            )
        best = sorted(scored)[:MAX_ANSWER_SENTENCES]
        cited = sorted({number for _, number, _, _ in best})
        lines = ["From related discussions:"]
        lines.extend(f"> {sentence} [{number}]" for _, number, _, sentence in best)
        lines.append("Sources:")
        lines.extend(f"[{n}] {sources[n - 1].title} {sources[n - 1].url}" for n in cited)
        return "\n".join(lines)

    def _summarize(self, request: LLMRequest) -> str:
        try:
            limit = max(1, int(request.metadata.get("max_sentences", "3")))
        except ValueError:
            limit = 3
        sentences: list[str] = []
        for message in request.messages:
            own, sources = parse_sources(message.content)
            sentences.extend(split_sentences(own))
            for source in sources:
                sentences.extend(split_sentences(source.text))
        return " ".join(top_sentences(sentences, limit)) or "There is nothing to summarize yet."


def top_sentences(sentences: Iterable[str], limit: int) -> list[str]:
    """The `limit` sentences with the highest mean content-word frequency, in their original order."""
    unique = list(dict.fromkeys(sentences))
    frequency = Counter(w for s in unique for w in content_words(s))
    if not frequency:
        return unique[:limit]
    peak = max(frequency.values())

    def score(sentence: str) -> float:
        words = content_words(sentence)
        return sum(frequency[w] / peak for w in words) / len(words) if words else 0.0

    ranked = sorted(range(len(unique)), key=lambda i: (-score(unique[i]), i))[:limit]
    return [unique[i] for i in sorted(ranked)]
