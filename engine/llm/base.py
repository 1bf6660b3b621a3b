"""The LLM provider interface: one request/result shape, one streaming call, one error hierarchy.

Every provider (Anthropic, offline) implements `LLMProvider.generate`: it streams text deltas to an
optional `on_delta` callback as they arrive and returns an `LLMResult` with usage, cost and timings.
Errors are `LLMError` subclasses whose messages never contain a secret; `retryable` tells the runner
whether another attempt may succeed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar, Literal, Protocol, runtime_checkable

import msgspec

Role = Literal["user", "assistant"]
DeltaCallback = Callable[[str], Awaitable[None]]

REDACTED = "[redacted]"
# Anthropic-style keys, redacted even when the exact secret is not known to the caller.
_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")


class Message(msgspec.Struct, frozen=True):
    role: Role
    content: str


class LLMRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to ask. `metadata` is for the provider's routing (e.g. `task` for the offline provider);
    it is never sent to a remote API."""

    system: str
    messages: list[Message]
    max_tokens: int
    temperature: float = 0.2
    metadata: dict[str, str] = {}


class LLMUsage(msgspec.Struct, frozen=True):
    input_tokens: int
    output_tokens: int


class LLMResult(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    usage: LLMUsage
    model: str
    provider: str
    stop_reason: str | None
    cost_usd: float
    # False when the model is not in the price table (cost_usd is then 0, not a real figure).
    cost_known: bool
    latency_ms: float
    first_token_ms: float | None


class ContextSource(msgspec.Struct, frozen=True):
    """One piece of retrieval context (a related thread, an accepted answer) given to a provider."""

    title: str
    url: str
    text: str


def render_sources(sources: Iterable[ContextSource]) -> str:
    """The context block format every provider receives: `[n] Title <url>` then the text.

    The offline provider parses this block back (`offline_provider.parse_sources`) to cite it."""
    blocks = []
    for number, source in enumerate(sources, start=1):
        title = " ".join(source.title.split()) or "Untitled"
        blocks.append(f"[{number}] {title} <{source.url}>\n{source.text.strip()}")
    return "\n\n".join(blocks)


def word_deltas(text: str) -> list[str]:
    """Split text into word-sized stream deltas that concatenate back to exactly `text`."""
    parts = re.findall(r"\s*\S+", text)
    tail = text[len("".join(parts)) :]
    if tail:
        if parts:
            parts[-1] += tail
        else:
            parts = [tail]
    return parts


def count_tokens(text: str) -> int:
    """Whitespace token count (the offline provider's and the fake server's notion of a token)."""
    return len(text.split())


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and anything shaped like an API key replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _KEY_PATTERN.sub(REDACTED, text)


class LLMError(Exception):
    """A provider failure. The message is sanitized: it never contains an API key."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        error_type: str | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.error_type = error_type
        # Text already streamed to on_delta before the failure.
        self.partial_text = partial_text

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r}, provider={self.provider!r}, status_code={self.status_code})"


class LLMTimeout(LLMError):
    """No answer (or no further delta) within the configured time. Retryable."""

    retryable = True


class LLMUnavailable(LLMError):
    """Connection failure, overload, 5xx, rate limit or a mid-stream error event. Retryable."""

    retryable = True


class LLMRejected(LLMError):
    """The request itself was refused (bad request, bad key, permission). Not retryable."""

    retryable = False


@runtime_checkable
class LLMProvider(Protocol):
    """One interface for every model backend."""

    @property
    def name(self) -> str:
        """Provider label recorded on executions, e.g. "anthropic" or "offline"."""
        ...

    @property
    def model(self) -> str:
        """The model that answers, e.g. "claude-sonnet-4-5" or "offline-extractive-v1"."""
        ...

    async def generate(self, request: LLMRequest, on_delta: DeltaCallback | None = None) -> LLMResult:
        """Generate a reply, awaiting `on_delta(text)` for each text delta as it arrives.

        Raises `LLMTimeout`, `LLMUnavailable` or `LLMRejected`."""
        ...

    async def aclose(self) -> None:
        """Release connections. The provider must not be used afterwards."""
        ...
