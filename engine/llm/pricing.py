"""Model prices in USD per million tokens, and the cost of one generation.

Prices are Anthropic's published list prices (input / output, no caching or batch discounts). A dated
model id (`claude-sonnet-4-5-20250929`) is priced as its alias. An unknown model costs 0 and is flagged
(`Cost.known is False`) so a cost cap never silently trusts a made-up figure.
"""

from __future__ import annotations

import re

import msgspec

from engine.llm.base import LLMUsage


class ModelPrice(msgspec.Struct, frozen=True):
    input_per_mtok: float
    output_per_mtok: float


class Cost(msgspec.Struct, frozen=True):
    usd: float
    known: bool


PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-6": ModelPrice(5.0, 25.0),
    "claude-sonnet-4-6": ModelPrice(3.0, 15.0),
    "claude-opus-4-5": ModelPrice(5.0, 25.0),
    "claude-opus-4-1": ModelPrice(15.0, 75.0),
    "claude-opus-4-0": ModelPrice(15.0, 75.0),
    "claude-opus-4": ModelPrice(15.0, 75.0),
    "claude-sonnet-4-5": ModelPrice(3.0, 15.0),
    "claude-sonnet-4-0": ModelPrice(3.0, 15.0),
    "claude-sonnet-4": ModelPrice(3.0, 15.0),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice(0.8, 4.0),
    "offline-extractive-v1": ModelPrice(0.0, 0.0),
}

_DATE_SUFFIX = re.compile(r"-(\d{8}|latest)$")


def price_for(model: str) -> ModelPrice | None:
    """The price of `model`, or None when it is not in the table."""
    price = PRICES.get(model)
    if price is None:
        price = PRICES.get(_DATE_SUFFIX.sub("", model))
    return price


def cost_of(model: str, usage: LLMUsage) -> Cost:
    """What `usage` costs on `model`."""
    price = price_for(model)
    if price is None:
        return Cost(0.0, known=False)
    usd = (usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok) / 1_000_000
    return Cost(usd, known=True)
