"""Rates: prices per token class, in USD, exact to the last digit.

A `Rate` is a price per million tokens (per thousand requests for the
`requests` class), optionally with long-context tiers. A `RateCard` contains
the rates of one model at one date and the source of each.

All arithmetic runs in `EXACT`, a decimal context that raises
`decimal.Inexact` instead of rounding, so that a cost is either exact or an
error. Multiplying and adding decimals and dividing by powers of ten never
round at that precision.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

import msgspec

__all__ = [
    "EXACT",
    "PRICED_CLASSES",
    "UNIT_SIZES",
    "Rate",
    "RateCard",
    "Tier",
    "decimal_string",
]

EXACT: Final = decimal.Context(
    prec=80,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
"""Decimal context for every cost computation. 80 digits hold a count of
10**15 tokens times a rate with 30 significant digits without rounding."""

PRICED_CLASSES: Final[tuple[str, ...]] = (
    "input",
    "cached_input",
    "cache_write",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning",
    "audio_input",
    "audio_output",
    "image_input",
    "image_output",
    "requests",
)
"""Classes a rate card can price, in breakdown order.

`cache_write` is a cache write whose TTL the provider did not report. As a
rate it is the model's only write price, which for Anthropic models is the
5-minute price. `reasoning` and the modality classes are priced on their own
only when the model has a separate rate for them. Otherwise they stay inside
`output` and `input`, so they are never billed twice. `requests` counts one
per record."""

UNIT_SIZES: Final[Mapping[str, int]] = {
    **dict.fromkeys(PRICED_CLASSES, 1_000_000),
    "requests": 1_000,
}
"""How many units a rate prices: a million tokens, or a thousand requests."""


class Tier(msgspec.Struct, frozen=True):
    """A long-context price that applies above a total-input threshold."""

    above_input_tokens: int
    usd: Decimal


class Rate(msgspec.Struct, frozen=True):
    """A price in USD per unit size of its class, with optional tiers.

    Tiers follow the cliff model providers publish: when a request's total
    input (fresh input, cache reads and cache writes) is strictly above a
    tier's threshold, every token of every class is priced at the tier.
    """

    usd: Decimal
    tiers: tuple[Tier, ...] = ()

    def at(self, total_input_tokens: int) -> Decimal:
        """Return the price that applies to a request with this total input."""
        price = self.usd
        for tier in sorted(self.tiers, key=lambda tier: tier.above_input_tokens):
            if total_input_tokens > tier.above_input_tokens:
                price = tier.usd
        return price

    def scaled(self, factor: Decimal) -> Rate:
        """Return this rate multiplied by `factor`, tiers included."""
        return Rate(
            usd=EXACT.multiply(self.usd, factor),
            tiers=tuple(
                Tier(tier.above_input_tokens, EXACT.multiply(tier.usd, factor))
                for tier in self.tiers
            ),
        )

    def describe(self) -> str:
        """Return the rate as text, such as `3` or `3 (6 above 200,000 input tokens)`."""
        text = decimal_string(self.usd)
        if self.tiers:
            steps = ", ".join(
                f"{decimal_string(tier.usd)} above {tier.above_input_tokens:,} input tokens"
                for tier in self.tiers
            )
            text += f" ({steps})"
        return text


class RateCard(msgspec.Struct, frozen=True, kw_only=True):
    """The rates of one model at one date.

    `source` names the price data (a genai-prices version, or an override
    file entry). `rate_notes` explains a rate that did not come from the
    source as-is, per class (a provider's published rule, a batch discount).
    """

    model: str
    provider: str
    source: str
    rates: dict[str, Rate]
    rate_notes: dict[str, str] = msgspec.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    unpriced_reason: str | None = None
    """When set, nothing is priced with this card, for the reason given
    (a batch or service-tier price that neither the data nor the
    configuration has)."""

    def scaled(self, factor: Decimal, note: str) -> RateCard:
        """Return every rate multiplied by `factor`, with `note` on each."""
        return msgspec.structs.replace(
            self,
            rates={name: rate.scaled(factor) for name, rate in self.rates.items()},
            rate_notes={name: _join(self.rate_notes.get(name), note) for name in self.rates},
            notes=(*self.notes, note),
        )


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"


def decimal_string(value: Decimal) -> str:
    """Return a decimal in plain notation without trailing zeros (`0.00125`, never `1.25E-3`)."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
