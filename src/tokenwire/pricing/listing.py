"""The rates that would apply to a model, for `tokenwire prices MODEL`."""

from __future__ import annotations

import datetime as dt

import msgspec

from .catalog import PRICE_DATA, lookup, normalize_model_ref, tokenwire_provider
from .cost import Pricer
from .rates import RateCard

__all__ = ["ModelRates", "model_rates"]

_BILLED_CLASSES = ("input", "cached_input", "cache_write", "cache_write_1h", "output")
"""Classes that are unpriced when a record has tokens in them and the card has no
price. Subsets (reasoning, audio, image) without a price of their own stay
inside their parent class instead."""


class ModelRates(msgspec.Struct, frozen=True, kw_only=True):
    """A model's rate card with what decided it."""

    provider: str
    """tokenwire provider name the rates are for."""
    model: str
    at: dt.datetime
    card: RateCard
    source: str
    """The price data and the provider's pricing pages, or the override entry."""
    missing: tuple[str, ...]
    """Classes without a price: a record with tokens in one of them is unpriced."""


def model_rates(
    model: str,
    *,
    provider: str | None = None,
    at: dt.datetime | None = None,
    batch: bool = False,
    service_tier: str | None = None,
    pricer: Pricer | None = None,
) -> ModelRates:
    """Return the rates that apply to `model` at `at` (default: now, UTC).

    Without `provider`, the provider is the one genai-prices matches by model
    name; when none matches, `provider` must be given.
    """
    when = at or dt.datetime.now(dt.UTC)
    pricer = pricer or Pricer()
    name = provider
    if name is None:
        entry = lookup(None, normalize_model_ref(None, model))
        if entry is None:
            reason = (
                f"model {model!r} matches no provider in {PRICE_DATA}; pass the provider, "
                f"or add a [[prices]] entry for the model to the prices file"
            )
            card = RateCard(model=model, provider="", source="", rates={}, unpriced_reason=reason)
            return ModelRates(provider="", model=model, at=when, card=card, source="", missing=())
        name = tokenwire_provider(entry.provider.id)

    card = pricer.rate_card(
        provider=name, model=model, at=when, batch=batch, service_tier=service_tier
    )
    source = card.source
    if card.source and card.unpriced_reason is None and not card.source.startswith("override"):
        entry = lookup(name, normalize_model_ref(name, model))
        if entry is not None:
            source = entry.describe_source()
    missing = tuple(name for name in _BILLED_CLASSES if name not in card.rates)
    return ModelRates(
        provider=name, model=model, at=when, card=card, source=source, missing=missing
    )
