"""Rates from genai-prices, Pydantic's maintained LLM price database.

`lookup()` finds a model in the price data and returns a `CatalogEntry`. The
data is the snapshot bundled with genai-prices, or a newer one that the
application loaded with `genai_prices.UpdatePrices`. `CatalogEntry.rate_card()`
returns the model's rates for one date and one request context, such as
`{"processing": "batch"}` or `{"service_tier": "flex"}`.

tokenwire reads the public data classes of genai-prices (`ModelPrice` price
keys, `TieredPrices`, `PriceVariant`) and does not call its `calc_price`. It
prices its own disjoint token classes, so it must know, class by class, whether
a price exists.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from .rates import Rate, RateCard, Tier

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

__all__ = [
    "PRICE_DATA",
    "CatalogEntry",
    "lookup",
    "normalize_model_ref",
    "price_data_provider",
    "tokenwire_provider",
]

PRICE_DATA: Final = f"genai-prices {importlib.metadata.version('genai-prices')}"
"""The `source` of every rate card read from the database. genai-prices itself
is imported on the first lookup, so that importing tokenwire stays cheap."""

_PROVIDER_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "azure_openai": "azure",
    "azure": "azure",
    "anthropic": "anthropic",
    "bedrock": "aws",
    "gemini": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "google": "google",
    "cohere": "cohere",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
}
"""tokenwire provider names (`UsageRecord.provider`) to genai-prices provider ids.
A name not listed here is passed to genai-prices unchanged."""

_PRICE_KEYS: Final[Mapping[str, str]] = {
    "input": "input_mtok",
    "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "cache_write_5m": "cache_write_5m_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "output": "output_mtok",
    "reasoning": "output_reasoning_mtok",
    "audio_input": "input_audio_mtok",
    "audio_output": "output_audio_mtok",
    "image_input": "input_image_mtok",
    "image_output": "output_image_mtok",
    "requests": "requests_kcount",
}
"""tokenwire token classes to genai-prices `ModelPrice` price keys."""


def price_data_provider(provider: str) -> str:
    """Return the genai-prices provider id for a tokenwire provider name."""
    return _PROVIDER_IDS.get(provider, provider)


def tokenwire_provider(provider_id: str) -> str:
    """Return the tokenwire provider name for a genai-prices provider id."""
    for name, known_id in _PROVIDER_IDS.items():
        if known_id == provider_id:
            return name
    return provider_id


def normalize_model_ref(provider: str | None, model: str) -> str:
    """Return the model id as the price data names it.

    Percent-encoding is decoded (Bedrock model ids arrive URL-encoded in the
    request path). A Bedrock ARN is reduced to its last path segment, the
    model or inference-profile id (`eu.anthropic.claude-...`), whose prefix
    selects the regional or global price. Gemini and Vertex resource names
    (`models/gemini-2.5-flash`, `publishers/anthropic/models/claude-...`) are
    reduced to the model id.
    """
    ref = model.strip()
    if "%" in ref:
        ref = urllib.parse.unquote(ref)
    if provider == "bedrock" and ref.startswith("arn:"):
        ref = ref.rsplit("/", 1)[-1]
    if provider is not None and price_data_provider(provider) == "google":
        ref = ref.rsplit("/", 1)[-1]
    return ref


class CatalogEntry:
    """One model of the price data, as matched for one provider."""

    __slots__ = ("model", "provider")

    def __init__(self, provider: Provider, model: ModelInfo) -> None:
        self.provider = provider
        self.model = model

    @property
    def owns_variants(self) -> bool:
        """Whether the model belongs to the provider itself.

        A model found through a fallback provider (Azure serving an OpenAI
        model) has the other provider's variants, which genai-prices does not
        apply to it, so neither does tokenwire.
        """
        return any(model is self.model for model in self.provider.models)

    def has_variant(self, context: Mapping[str, str], at: dt.datetime) -> bool:
        """Return whether the data has prices for this context at this date."""
        if not self.owns_variants:
            return False
        for variant in self.model.price_variants or ():
            if variant.constraint is not None and not variant.constraint.active(at):
                continue
            if all(context.get(key) == value for key, value in variant.when.items()):
                return True
        return False

    def rate_card(self, at: dt.datetime, context: Mapping[str, str] | None = None) -> RateCard:
        """Return the model's rates at `at`, with the variant for `context` if given."""
        if context and self.owns_variants:
            prices = self.model.get_prices(at, context)
        else:
            prices = self.model.get_prices(at)
        rates = {
            name: _rate(value)
            for name, key in _PRICE_KEYS.items()
            if (value := getattr(prices, key, None)) is not None
        }
        notes: tuple[str, ...] = ()
        unused = _unused_price_keys(prices)
        if unused:
            notes = (f"not metered by tokenwire: {', '.join(unused)}",)
        return RateCard(
            model=self.model.id,
            provider=self.provider.id,
            source=PRICE_DATA,
            rates=rates,
            notes=notes,
        )

    def describe_source(self) -> str:
        """Return the price data and the provider's pricing pages, for display."""
        urls = ", ".join(self.provider.pricing_urls or ())
        text = f"{PRICE_DATA}, provider {self.provider.id!r}, model {self.model.id!r}"
        return f"{text} ({urls})" if urls else text


def lookup(provider: str | None, model_ref: str) -> CatalogEntry | None:
    """Find a model in the price data; `None` when the provider or model is not in it.

    `provider` is a tokenwire provider name; with `None`, genai-prices picks
    the provider whose model names match.
    """
    from genai_prices.data_snapshot import get_snapshot

    provider_id = None if provider is None else price_data_provider(provider)
    try:
        found_provider, found_model = get_snapshot().find_provider_model(
            model_ref, None, provider_id, None
        )
    except LookupError:
        return None
    return CatalogEntry(found_provider, found_model)


def _rate(value: Decimal | TieredPrices) -> Rate:
    if not isinstance(value, Decimal):
        tiers = sorted(value.tiers, key=lambda tier: tier.start)
        return Rate(value.base, tuple(Tier(tier.start, tier.price) for tier in tiers))
    return Rate(value)


def _unused_price_keys(prices: ModelPrice) -> list[str]:
    known = set(_PRICE_KEYS.values())
    fields: dict[str, Any] = vars(prices)
    return sorted(
        key
        for key, value in fields.items()
        if value is not None and not key.startswith("_") and key not in known
    )
