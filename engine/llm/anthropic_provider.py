"""The Anthropic provider: the official SDK's streaming Messages API behind `LLMProvider`.

The SDK never retries (`max_retries=0`): retries belong to the job runner, which sees `retryable` on the
error. Timeouts: `timeout_s` bounds connecting and each read (a silent stream fails after it), and
`total_timeout_s` bounds the whole generation.

`LLMRequest.temperature` is not sent by default: anthropic 2.14's `messages.stream()` no longer has a
`temperature` parameter. `send_temperature=True` sends it anyway (as an extra body field) for models that
still accept it. SDK and transport errors are mapped to `LLMTimeout`,
`LLMUnavailable` or `LLMRejected` with sanitized messages and no exception chain, so neither the key nor
an echoed request can leak through logs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import httpx2
from anthropic.types import MessageParam

from engine.llm.base import (
    DeltaCallback,
    LLMError,
    LLMRejected,
    LLMRequest,
    LLMResult,
    LLMTimeout,
    LLMUnavailable,
    LLMUsage,
    redact,
)
from engine.llm.pricing import cost_of

DEFAULT_MODEL = "claude-haiku-4-5"
# Anthropic error types a later attempt may get past.
_RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_MAX_DETAIL_CHARS = 300


class AnthropicProvider:
    """Streams from Anthropic's Messages API. `max_tokens` caps every request's own `max_tokens`."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        total_timeout_s: float | None = 300.0,
        max_tokens: int = 1024,
        send_temperature: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("AnthropicProvider needs an API key")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_tokens = max_tokens
        self.send_temperature = send_temperature
        self._secrets = (api_key,)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            open_telemetry=False,
        )

    def __repr__(self) -> str:
        return (
            f"AnthropicProvider(model={self.model!r}, base_url={self.base_url!r}, "
            f"timeout_s={self.timeout_s}, max_tokens={self.max_tokens})"
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def generate(self, request: LLMRequest, on_delta: DeltaCallback | None = None) -> LLMResult:
        messages: list[MessageParam] = [
            {"role": "user", "content": m.content} if m.role == "user" else {"role": "assistant", "content": m.content}
            for m in request.messages
        ]
        extra_body = {"temperature": request.temperature} if self.send_temperature else None
        started = time.perf_counter()
        first_token_ms: float | None = None
        parts: list[str] = []
        try:
            async with asyncio.timeout(self.total_timeout_s):
                async with self._client.messages.stream(
                    model=self.model,
                    max_tokens=min(request.max_tokens, self.max_tokens),
                    messages=messages,
                    system=request.system or anthropic.omit,
                    extra_body=extra_body,
                ) as stream:
                    async for text in stream.text_stream:
                        if not text:
                            continue
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - started) * 1000
                        parts.append(text)
                        if on_delta is not None:
                            await on_delta(text)
                    final = await stream.get_final_message()
        except TimeoutError:
            raise LLMTimeout(
                f"anthropic: no complete reply within {self.total_timeout_s}s",
                provider=self.name,
                partial_text="".join(parts),
            ) from None
        except (anthropic.AnthropicError, httpx2.HTTPError) as exc:
            raise self._map_error(exc, "".join(parts)) from None
        latency_ms = (time.perf_counter() - started) * 1000
        usage = LLMUsage(final.usage.input_tokens, final.usage.output_tokens)
        cost = cost_of(self.model, usage)
        return LLMResult(
            text="".join(parts),
            usage=usage,
            model=self.model,
            provider=self.name,
            stop_reason=final.stop_reason,
            cost_usd=cost.usd,
            cost_known=cost.known,
            latency_ms=latency_ms,
            first_token_ms=first_token_ms,
        )

    def _map_error(self, exc: Exception, partial_text: str) -> LLMError:
        """The LLMError for an SDK or transport error, with a message that cannot carry the key."""
        common: dict[str, Any] = {"provider": self.name, "partial_text": partial_text}
        if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
            return LLMTimeout(f"anthropic: timed out after {self.timeout_s}s without data", **common)
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return LLMUnavailable(f"anthropic: connection failed ({type(exc).__name__})", **common)
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            error_type = exc.type
            detail = redact(str(exc.api_message or ""), self._secrets)[:_MAX_DETAIL_CHARS]
            # A mid-stream `error` event arrives on a 200 response.
            where = "mid-stream error" if status < 400 else f"HTTP {status}"
            message = f"anthropic: {where} {error_type or 'error'}: {detail}"
            if exc.request_id:
                message += f" (request-id {exc.request_id})"
            message = redact(message, self._secrets)
            fields = {**common, "status_code": status, "error_type": error_type}
            if status < 400 or status >= 500 or status in _RETRYABLE_STATUSES or (error_type in _RETRYABLE_TYPES):
                return LLMUnavailable(message, **fields)
            return LLMRejected(message, **fields)
        if isinstance(exc, anthropic.APIResponseValidationError):
            return LLMUnavailable("anthropic: malformed response", **common)
        return LLMRejected(f"anthropic: {type(exc).__name__}", **common)
