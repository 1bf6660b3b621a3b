"""LLM providers behind one interface: Anthropic (official SDK, streaming) and an offline extractive one."""

from __future__ import annotations

from typing import Literal

from engine.llm.anthropic_provider import DEFAULT_MODEL, AnthropicProvider
from engine.llm.base import (
    ContextSource,
    DeltaCallback,
    LLMError,
    LLMProvider,
    LLMRejected,
    LLMRequest,
    LLMResult,
    LLMTimeout,
    LLMUnavailable,
    LLMUsage,
    Message,
    render_sources,
)
from engine.llm.offline_provider import OFFLINE_MODEL, OfflineProvider
from engine.llm.pricing import PRICES, Cost, ModelPrice, cost_of, price_for

ProviderKind = Literal["auto", "anthropic", "offline"]

__all__ = [
    "DEFAULT_MODEL",
    "OFFLINE_MODEL",
    "PRICES",
    "AnthropicProvider",
    "ContextSource",
    "Cost",
    "DeltaCallback",
    "LLMError",
    "LLMProvider",
    "LLMRejected",
    "LLMRequest",
    "LLMResult",
    "LLMTimeout",
    "LLMUnavailable",
    "LLMUsage",
    "Message",
    "ModelPrice",
    "OfflineProvider",
    "ProviderKind",
    "cost_of",
    "price_for",
    "provider_from_settings",
    "render_sources",
]


def provider_from_settings(
    kind: str,
    *,
    api_key: str | None,
    model: str,
    base_url: str | None,
    timeout_s: float,
    max_tokens: int,
) -> LLMProvider:
    """The configured provider. `auto`: Anthropic when a key is given, else offline. `anthropic` without
    a key is a configuration error; `offline` ignores the key."""
    if kind not in ("auto", "anthropic", "offline"):
        raise ValueError(f"unknown LLM provider kind {kind!r} (auto, anthropic, offline)")
    if kind == "offline" or (kind == "auto" and not api_key):
        return OfflineProvider(max_tokens=max_tokens)
    if not api_key:
        raise ValueError("the anthropic provider needs an API key")
    return AnthropicProvider(
        api_key=api_key, model=model, base_url=base_url or None, timeout_s=timeout_s, max_tokens=max_tokens
    )
