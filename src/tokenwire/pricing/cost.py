"""Price a `UsageRecord` in USD, exactly, class by class.

`Pricer.price(record)` returns a `Cost`: one `CostLine` per token class with
tokens, the provider cost (`cost_usd`), the billed amount after markup
(`billed_usd`) and the classes that have no price (`unpriced`). Amounts are
`Decimal` and exact: nothing is rounded (see `rates.EXACT`).

Where the rates come from, in order:

1. an override entry for the model (`PriceOverride`, from code or the TOML
   file), which wins over the database;
2. else genai-prices, looked up by the model id as returned, or as requested
   when the response names none, at the record's `created_at`. Bedrock is
   the exception: its responses name no inference profile, so the request's
   model id (`eu.anthropic...`, `global.anthropic...`) is used;
3. for a batch result: the data's batch price, else the provider's batch
   discount (`PricingConfig.batch_discounts`), else unpriced;
4. for a reported service tier other than the standard one: the data's tier
   price, else a configured tier multiplier, else unpriced;
5. for Claude models whose data lacks a cache-write price: Anthropic's
   published rule (1-hour writes 2x, 5-minute writes 1.25x the base input
   price), named in the line's note. Any other missing price leaves its class
   unpriced: there is no fallback rate;
6. for a response that reports its inference geography (Anthropic's
   `usage.inference_geo`) other than global: the configured multiplier
   (`us` is 1.1x by default), else unpriced.

Token classes are disjoint (see `tokenwire.usage`), so the cost is the sum of
count times rate over the lines. Cache reads and writes are never also billed
as input. Reasoning tokens stay inside output unless the model prices them on
their own.

Long-context tiers use the cliff rule. When the total input (fresh input,
cache reads and cache writes) is above a tier's threshold, every class moves
to its tier price. Exactly at the threshold, none does.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Final

import msgspec

from ..usage import Usage, UsageRecord
from .catalog import CatalogEntry, lookup, normalize_model_ref
from .config import PriceOverride, PricingConfig, load_config
from .rates import EXACT, PRICED_CLASSES, UNIT_SIZES, Rate, RateCard

__all__ = [
    "ANTHROPIC_CACHE_WRITE_RULE",
    "STANDARD_INFERENCE_GEOS",
    "STANDARD_SERVICE_TIERS",
    "Cost",
    "CostLine",
    "Pricer",
    "default_pricer",
]

ANTHROPIC_CACHE_WRITE_RULE: Final = (
    "Anthropic prices 5-minute cache writes at 1.25x and 1-hour cache writes at 2x the "
    "base input price (https://platform.claude.com/docs/en/about-claude/pricing, prompt caching)"
)

_RULE_MULTIPLIERS: Final = {"cache_write": Decimal("1.25"), "cache_write_1h": Decimal(2)}
"""Anthropic's published cache-write multipliers of the base input price.
`cache_write` (TTL not reported) is a 5-minute write: the API's default TTL."""

_RULE_NAMES: Final = {
    "cache_write": "5-minute cache writes",
    "cache_write_1h": "1-hour cache writes",
}

STANDARD_SERVICE_TIERS: Final = frozenset({"default", "standard", "auto"})
"""Reported service tiers priced at standard rates (OpenAI reports `default`,
Anthropic `standard`)."""

STANDARD_INFERENCE_GEOS: Final = frozenset({"global", "not_available"})
"""Reported inference geographies priced at standard rates (Anthropic's
`usage.inference_geo` is `not_available` on models without the option)."""

_BATCH_CONTEXT: Final = {"processing": "batch"}


class CostLine(msgspec.Struct, frozen=True, kw_only=True):
    """The cost of one token class of a record.

    `usd_per_unit` is USD per million tokens (per thousand requests for the
    `requests` class), after tiers and layers. Both it and `cost_usd` are
    `None` when the class has no price.
    """

    token_class: str
    tokens: int
    usd_per_unit: Decimal | None
    cost_usd: Decimal | None
    note: str | None = None


class Cost(msgspec.Struct, frozen=True, kw_only=True):
    """The priced record: provider cost, billed amount and the breakdown."""

    record_id: str
    model: str | None
    """The model id that was priced, normalized (see `catalog.normalize_model_ref`)."""
    price_model: str | None
    """The model as the price data names it, or the override pattern."""
    price_provider: str | None
    source: str | None
    """The price data version or the override entry."""
    lines: tuple[CostLine, ...]
    unpriced: tuple[str, ...]
    """Token classes with tokens and no price; empty when the record is fully priced."""
    unpriced_reason: str | None
    cost_usd: Decimal
    """Provider cost of the priced lines."""
    billed_usd: Decimal
    """`cost_usd` times the markup factor."""
    markup: str
    markup_factor: Decimal
    markup_source: str
    notes: tuple[str, ...] = ()

    @property
    def priced(self) -> bool:
        """Whether every class with tokens has a price."""
        return not self.unpriced

    @property
    def margin_usd(self) -> Decimal:
        return EXACT.subtract(self.billed_usd, self.cost_usd)


class Pricer:
    """Prices records with genai-prices plus a `PricingConfig`.

    A `Pricer` keeps no per-record state and may be shared by threads.
    """

    def __init__(self, config: PricingConfig | None = None) -> None:
        self.config = config if config is not None else PricingConfig()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Pricer:
        """Return a pricer configured by a TOML file (see `tokenwire.pricing.config`)."""
        return cls(load_config(path))

    def price(self, record: UsageRecord) -> Cost:
        """Return the cost of a record at its `created_at`."""
        model = _model_ref(record)
        priced_model = None if model is None else normalize_model_ref(record.provider, model)
        markup, markup_source = self.config.markup.select(record.subscription, priced_model)
        if model is None:
            card = _unpriced_card("", record.provider, "the record names no model")
        else:
            card = self.rate_card(
                provider=record.provider,
                model=model,
                at=record.created_at,
                batch=record.batch,
                service_tier=record.service_tier,
            )
            card = self._geo_card(record, card)

        lines = _cost_lines(record.usage, card) if record.usage.has_counts() else []
        unpriced = tuple(line.token_class for line in lines if line.cost_usd is None)
        cost = sum((line.cost_usd for line in lines if line.cost_usd is not None), Decimal(0))
        reason = card.unpriced_reason
        if unpriced and reason is None:
            reason = f"no price for {', '.join(unpriced)} of {card.model} in {card.source}"
        return Cost(
            record_id=record.record_id,
            model=priced_model,
            price_model=card.model or None,
            price_provider=card.provider or None,
            source=card.source or None,
            lines=tuple(lines),
            unpriced=unpriced,
            unpriced_reason=reason if unpriced else None,
            cost_usd=cost,
            billed_usd=EXACT.multiply(cost, markup.factor),
            markup=markup.label,
            markup_factor=markup.factor,
            markup_source=markup_source,
            notes=card.notes,
        )

    def rate_card(
        self,
        *,
        provider: str,
        model: str,
        at: dt.datetime,
        batch: bool = False,
        service_tier: str | None = None,
    ) -> RateCard:
        """Return the rates that apply to one model of `provider` at `at`.

        `provider` is a tokenwire provider name (`UsageRecord.provider`).
        A card whose `unpriced_reason` is set prices nothing.
        """
        ref = normalize_model_ref(provider, model)
        tier = None if service_tier in STANDARD_SERVICE_TIERS else service_tier
        notes: list[str] = []
        if tier == "batch":
            # Anthropic reports the results of a Message Batch with service_tier "batch".
            batch, tier = True, None
        if batch and tier is not None:
            notes.append(f"service tier {tier!r} ignored: batch prices apply")
            tier = None

        mode_override = self._override(provider, ref, at, batch=batch, tier=tier)
        if mode_override is not None:
            return _override_card(mode_override, extra_notes=notes)
        standard = self._override(provider, ref, at, batch=None, tier=None)

        entry: CatalogEntry | None = None
        if standard is not None and standard.rates:
            base = _override_card(standard, extra_notes=notes)
        else:
            entry = lookup(provider, ref)
            if entry is None:
                return _unpriced_card(
                    ref,
                    provider,
                    f"model {ref!r} of provider {provider!r} is not in the price "
                    f"data; add a [[prices]] entry for it to the prices file",
                )
            base = entry.rate_card(at)
            base = msgspec.structs.replace(base, notes=(*base.notes, *notes))

        if batch:
            card = self._batch_card(provider, ref, at, entry, base)
        elif tier is not None:
            card = self._tier_card(provider, ref, at, tier, entry, base)
        else:
            card = base
        if entry is not None:
            card = _apply_published_rules(card)
        discount = None if standard is None else standard.decimal_discount()
        if standard is not None and discount is not None:
            factor = EXACT.divide(EXACT.subtract(100, discount), 100)
            card = card.scaled(factor, f"{standard.describe()}: {discount}% off")
        return card

    def _geo_card(self, record: UsageRecord, card: RateCard) -> RateCard:
        """Apply the price multiplier of the inference geography the response reports."""
        geo = record.usage.raw.get("inference_geo")
        if not isinstance(geo, str) or geo in STANDARD_INFERENCE_GEOS:
            return card
        if card.unpriced_reason is not None:
            return card
        multiplier = self.config.inference_geo_multipliers.get(record.provider, {}).get(geo)
        if multiplier is None:
            return _unpriced_card(
                card.model,
                record.provider,
                f"inference geography {geo!r} has no configured "
                f"price; add `{geo} = <multiplier>` under [inference_geo.{record.provider}]",
            )
        return card.scaled(multiplier, f"inference geography {geo!r}: {multiplier}x prices")

    def _override(
        self,
        provider: str,
        ref: str,
        at: dt.datetime,
        *,
        batch: bool | None,
        tier: str | None,
    ) -> PriceOverride | None:
        """Return the matching override with the latest `since`, first in order on ties.

        With `batch=None` and `tier=None`, only standard entries (neither
        `batch` nor `service_tier` set) match; otherwise only entries for that
        batch mode or tier do.
        """
        if batch is False and tier is None:
            return None
        best: PriceOverride | None = None
        for entry in self.config.overrides:
            if not _same_mode(entry, batch, tier) or not entry.matches(provider, ref, at):
                continue
            if best is None or (entry.since or dt.date.min) > (best.since or dt.date.min):
                best = entry
        return best

    def _batch_card(
        self,
        provider: str,
        ref: str,
        at: dt.datetime,
        entry: CatalogEntry | None,
        base: RateCard,
    ) -> RateCard:
        if entry is not None and entry.has_variant(_BATCH_CONTEXT, at):
            card = entry.rate_card(at, _BATCH_CONTEXT)
            return msgspec.structs.replace(
                card, notes=(*base.notes, f"batch prices from {card.source}")
            )
        discount = self.config.batch_discounts.get(provider)
        if discount is None:
            return _unpriced_card(
                ref,
                provider,
                f"batch result: the price data has no batch price for {ref!r} and "
                f"no batch discount is set for {provider!r}; add `{provider} = <percent>` under "
                f"[batch_discounts] or a [[prices]] entry with batch = true",
            )
        factor = EXACT.divide(EXACT.subtract(100, discount), 100)
        return base.scaled(factor, f"batch: {discount}% off standard prices for {provider}")

    def _tier_card(
        self,
        provider: str,
        ref: str,
        at: dt.datetime,
        tier: str,
        entry: CatalogEntry | None,
        base: RateCard,
    ) -> RateCard:
        context = {"service_tier": tier}
        if entry is not None and entry.has_variant(context, at):
            card = entry.rate_card(at, context)
            return msgspec.structs.replace(
                card, notes=(*base.notes, f"service tier {tier!r} prices from {card.source}")
            )
        multiplier = self.config.service_tier_multipliers.get(provider, {}).get(tier)
        if multiplier is None:
            return _unpriced_card(
                ref,
                provider,
                f"service tier {tier!r}: the price data has no {tier!r} price for "
                f"{ref!r}; add `{tier} = <multiplier>` under [service_tiers.{provider}] or a "
                f"[[prices]] entry with service_tier = {tier!r}",
            )
        return base.scaled(multiplier, f"service tier {tier!r}: {multiplier}x standard prices")


def _same_mode(entry: PriceOverride, batch: bool | None, tier: str | None) -> bool:
    if batch is None and tier is None:
        return entry.batch is None and entry.service_tier is None
    if batch:
        return entry.batch is True
    return entry.service_tier == tier


def default_pricer() -> Pricer:
    """Return a pricer configured by the file named in `TOKENWIRE_PRICES`, if set."""
    path = os.environ.get("TOKENWIRE_PRICES")
    return Pricer.from_file(path) if path else Pricer()


def _model_ref(record: UsageRecord) -> str | None:
    if record.provider == "bedrock":
        # Bedrock responses name the base model at most, never the inference
        # profile whose prefix (us., eu., global.) sets the price.
        return record.request_model or record.response_model
    return record.model


def _override_card(entry: PriceOverride, *, extra_notes: list[str]) -> RateCard:
    return RateCard(
        model=entry.model,
        provider=entry.provider or "",
        source=entry.describe(),
        rates={name: Rate(usd) for name, usd in entry.decimal_rates().items()},
        notes=tuple(extra_notes),
    )


def _unpriced_card(model: str, provider: str, reason: str) -> RateCard:
    return RateCard(model=model, provider=provider, source="", rates={}, unpriced_reason=reason)


def _apply_published_rules(card: RateCard) -> RateCard:
    """Add the cache-write prices Anthropic publishes where the data lacks them."""
    input_rate = card.rates.get("input")
    if input_rate is None or "claude" not in card.model.lower():
        return card
    missing = [name for name in _RULE_MULTIPLIERS if name not in card.rates]
    if not missing:
        return card
    rates = dict(card.rates)
    rate_notes = dict(card.rate_notes)
    for name in missing:
        multiplier = _RULE_MULTIPLIERS[name]
        rates[name] = input_rate.scaled(multiplier)
        rate_notes[name] = (
            f"rule: {multiplier}x base input, as Anthropic publishes for {_RULE_NAMES[name]}; "
            f"{card.source} has no {name} price for {card.model}"
        )
    return msgspec.structs.replace(card, rates=rates, rate_notes=rate_notes)


def _cost_lines(usage: Usage, card: RateCard) -> list[CostLine]:
    """Split a usage into priced classes and price each one."""
    counts, problems = _class_counts(usage, card)
    total_input = (
        (usage.input_tokens or 0) + (usage.cached_input_tokens or 0) + _writes_total(usage)
    )
    lines: list[CostLine] = []
    for name, tokens in counts:
        rate = _rate_for(name, card)
        if card.unpriced_reason is not None or rate is None or name in problems:
            reason = problems.get(name) or card.unpriced_reason or f"no {name} price"
            lines.append(
                CostLine(
                    token_class=name, tokens=tokens, usd_per_unit=None, cost_usd=None, note=reason
                )
            )
            continue
        price = rate.at(total_input)
        notes = [card.rate_notes[name]] if name in card.rate_notes else []
        if price != rate.usd:
            notes.append(f"long-context tier: {total_input:,} input tokens")
        lines.append(
            CostLine(
                token_class=name,
                tokens=tokens,
                usd_per_unit=price,
                cost_usd=EXACT.divide(EXACT.multiply(price, tokens), UNIT_SIZES[name]),
                note="; ".join(notes) or None,
            )
        )
    return lines


def _class_counts(usage: Usage, card: RateCard) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """Return (class, tokens) for every class with tokens, and notes on impossible counts.

    Subsets (reasoning, audio, image) come out of their parent class only
    when the card prices them separately.
    """
    counts: dict[str, int] = dict.fromkeys(PRICED_CLASSES, 0)
    problems: dict[str, str] = {}

    counts["input"] = usage.input_tokens or 0
    counts["cached_input"] = usage.cached_input_tokens or 0
    split_media = []
    for name, subset in (
        ("audio_input", usage.audio_input_tokens),
        ("image_input", usage.image_input_tokens),
    ):
        if subset and name in card.rates:
            split_media.append(name)
            counts[name] = subset
            counts["input"] -= subset
    if split_media and (counts["cached_input"] > 0 or counts["input"] < 0):
        # NOTE: Usage has no count of cached audio or image tokens (Gemini reports them in
        # cacheTokensDetails), so a model with separate media rates cannot be priced exactly
        # when part of its input was read from the cache.
        problem = (
            f"the usage does not say how many of the {' and '.join(split_media)} tokens were "
            f"cache reads, and the model prices them separately"
        )
        problems.update(dict.fromkeys(("input", "cached_input", *split_media), problem))
        counts["input"] = max(counts["input"], 0)
    _split_writes(usage, counts, problems)

    counts["output"] = usage.output_tokens or 0
    for name, subset in (
        ("reasoning", usage.reasoning_tokens),
        ("audio_output", usage.audio_output_tokens),
        ("image_output", usage.image_output_tokens),
    ):
        if subset and name in card.rates:
            counts[name] = subset
            counts["output"] -= subset
    if counts["output"] < 0:
        problems["output"] = "reasoning, audio and image output exceed output_tokens"
        counts["output"] = 0

    if "requests" in card.rates:
        counts["requests"] = 1
    return [(name, tokens) for name, tokens in counts.items() if tokens > 0], problems


def _split_writes(usage: Usage, counts: dict[str, int], problems: dict[str, str]) -> None:
    five_minute, one_hour = usage.cache_creation_5m_tokens, usage.cache_creation_1h_tokens
    if five_minute is None and one_hour is None:
        counts["cache_write"] = usage.cache_creation_tokens or 0
        return
    counts["cache_write_5m"] = five_minute or 0
    counts["cache_write_1h"] = one_hour or 0
    split = counts["cache_write_5m"] + counts["cache_write_1h"]
    total = usage.cache_creation_tokens if usage.cache_creation_tokens is not None else split
    if total < split:
        problem = f"5-minute and 1-hour writes ({split}) exceed cache_creation_tokens ({total})"
        problems.update(dict.fromkeys(("cache_write", "cache_write_5m", "cache_write_1h"), problem))
        counts["cache_write"] = 0
        return
    counts["cache_write"] = total - split


def _writes_total(usage: Usage) -> int:
    split = (usage.cache_creation_5m_tokens or 0) + (usage.cache_creation_1h_tokens or 0)
    return max(usage.cache_creation_tokens or 0, split)


def _rate_for(name: str, card: RateCard) -> Rate | None:
    if name == "cache_write_5m":
        # The data's unsplit write price is the 5-minute one: 1-hour writes have their own.
        return card.rates.get("cache_write_5m") or card.rates.get("cache_write")
    return card.rates.get(name)
