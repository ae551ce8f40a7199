"""Pricing configuration: price overrides, markup, batch discounts, service tiers.

Everything here can be built in code or read from one TOML file with
`load_config()`. Every invalid setting raises `ConfigurationError` naming the
setting and the fix. Prices are decimals: TOML floats are read as `Decimal`
(never through binary floating point), and code must pass `str`, `int` or
`Decimal`, because a Python float cannot hold most prices exactly.

File layout (all sections optional; prices in USD per million tokens):

    [[prices]]                      # negotiated, private or fine-tuned models
    model = "ft:gpt-4o-mini-*"      # glob, matched case-insensitively
    provider = "openai"             # optional: tokenwire provider name
    since = 2026-01-01              # optional: first UTC day it applies
    input_mtok = 0.30
    cached_input_mtok = 0.15
    output_mtok = 1.20
    source = "fine-tuning price list"

    [[prices]]
    model = "*claude*"
    provider = "bedrock"
    discount_percent = 12           # off the database price, instead of rates

    [markup]
    percent = 20                    # default; or multiplier = 1.2
    [markup.subscriptions]
    sub_acme = { multiplier = 1.5 }
    [[markup.models]]
    model = "claude-opus-*"
    percent = 35

    [batch_discounts]               # percent off standard prices for batch results
    bedrock = 50

    [service_tiers.openai]          # multiplier of standard prices per reported tier
    flex = 0.5

    [inference_geo.anthropic]       # multiplier per reported `usage.inference_geo`
    us = 1.1
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigurationError
from .rates import EXACT, PRICED_CLASSES

__all__ = [
    "PUBLISHED_BATCH_DISCOUNTS",
    "PUBLISHED_INFERENCE_GEO_MULTIPLIERS",
    "RATE_KEYS",
    "Markup",
    "MarkupPolicy",
    "PriceOverride",
    "PricingConfig",
    "load_config",
]

RATE_KEYS: Final[Mapping[str, str]] = {
    **{f"{name}_mtok": name for name in PRICED_CLASSES if name != "requests"},
    "requests_kcount": "requests",
}
"""Override file keys to token classes: `<class>_mtok` is USD per million
tokens, `requests_kcount` USD per thousand requests."""

PUBLISHED_BATCH_DISCOUNTS: Final[Mapping[str, Decimal]] = {
    # https://platform.openai.com/docs/guides/batch: 50% lower cost than the synchronous APIs.
    "openai": Decimal(50),
    # https://platform.claude.com/docs/en/build-with-claude/batch-processing:
    # 50% of standard prices.
    "anthropic": Decimal(50),
    # https://ai.google.dev/gemini-api/docs/batch-mode: 50% of the standard interactive cost.
    "gemini": Decimal(50),
}
"""Batch discounts (percent off standard prices) that providers publish for
all their models. Used only when the price data has no batch price for the
model at that date. Bedrock and Azure discount only some models, so they are
not listed: configure them under `[batch_discounts]`."""

PUBLISHED_INFERENCE_GEO_MULTIPLIERS: Final[Mapping[str, Mapping[str, Decimal]]] = {
    # https://docs.aws.amazon.com/claude-platform/latest/userguide/data-residency.html:
    # US-only inference ("us") costs 1.1x, global inference the standard price.
    "anthropic": {"us": Decimal("1.1")},
}
"""Price multipliers per provider for the inference geography a response reports
(Anthropic's `usage.inference_geo`). `global` and `not_available` are standard."""

_TOP_LEVEL_KEYS: Final = (
    "prices",
    "markup",
    "batch_discounts",
    "service_tiers",
    "inference_geo",
)
_PRICE_ENTRY_KEYS: Final = (
    "model",
    "provider",
    "since",
    "batch",
    "service_tier",
    "source",
    "discount_percent",
    *RATE_KEYS,
)
_MARKUP_KEYS: Final = ("percent", "multiplier", "subscriptions", "models")


def _decimal(value: object, setting: str) -> Decimal:
    """Return `value` as a finite Decimal, or raise naming `setting`."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{setting} must be a number, got {value!r}")
    if isinstance(value, float):
        raise ConfigurationError(
            f"{setting} is the float {value!r}, which cannot hold most decimal prices "
            f"exactly; pass a string such as '{value}' or a Decimal"
        )
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ConfigurationError(
                f"{setting} must be a decimal number such as '0.30', got {value!r}"
            ) from None
    else:
        raise ConfigurationError(
            f"{setting} must be a decimal number (str, int or Decimal), got {type(value).__name__}"
        )
    if not number.is_finite():
        raise ConfigurationError(f"{setting} must be a finite number, got {value!r}")
    return number


def _non_negative(value: object, setting: str) -> Decimal:
    number = _decimal(value, setting)
    if number < 0:
        raise ConfigurationError(f"{setting} must be zero or more, got {number}")
    return number


def _percent_off(value: object, setting: str) -> Decimal:
    number = _decimal(value, setting)
    if not 0 <= number <= 100:
        raise ConfigurationError(
            f"{setting} is a discount in percent and must be between 0 and 100, got {number}"
        )
    return number


@dataclass(frozen=True)
class PriceOverride:
    """A price that wins over the database for the models it matches.

    Give either `rates` or `discount_percent`. `rates` maps token classes to
    USD per million tokens (per thousand requests for `requests`) and
    replaces the database entirely for the model. `discount_percent` takes a
    negotiated share off the database price.

    An entry without `batch` or `service_tier` is a standard price, and batch
    results and other service tiers are priced from it with the batch and
    tier layers. An entry with `batch=True` or a `service_tier` applies only
    to those records, as their final price.
    """

    model: str
    rates: Mapping[str, Decimal | str | int] = field(default_factory=dict)
    """Converted to `Decimal` on construction; read them back with `decimal_rates()`."""
    discount_percent: Decimal | str | int | None = None
    provider: str | None = None
    since: dt.date | None = None
    batch: bool | None = None
    service_tier: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        where = f"PriceOverride(model={self.model!r})"
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigurationError(f"{where}: model must be a non-empty glob pattern")
        unknown = sorted(set(self.rates) - set(PRICED_CLASSES))
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown token classes {unknown} in rates; use {list(PRICED_CLASSES)}"
            )
        rates = {
            name: _non_negative(value, f"{where}.rates[{name!r}]")
            for name, value in self.rates.items()
        }
        object.__setattr__(self, "rates", rates)
        if self.discount_percent is not None:
            object.__setattr__(
                self,
                "discount_percent",
                _percent_off(self.discount_percent, f"{where}.discount_percent"),
            )
        if bool(rates) == (self.discount_percent is not None):
            raise ConfigurationError(
                f"{where}: give either rates or discount_percent, not both and not neither"
            )
        if self.since is not None and (
            not isinstance(self.since, dt.date) or isinstance(self.since, dt.datetime)
        ):
            raise ConfigurationError(f"{where}: since must be a date such as 2026-01-01")

    def decimal_rates(self) -> dict[str, Decimal]:
        """Return the rates, as the `Decimal`s they were converted to."""
        return {name: Decimal(value) for name, value in self.rates.items()}

    def decimal_discount(self) -> Decimal | None:
        """Return the discount in percent, as the `Decimal` it was converted to."""
        return None if self.discount_percent is None else Decimal(self.discount_percent)

    def matches(self, provider: str, model_ref: str, at: dt.datetime) -> bool:
        """Return whether this entry prices `model_ref` of `provider` at `at` (UTC day)."""
        if self.provider is not None and self.provider != provider:
            return False
        if self.since is not None and at.astimezone(dt.UTC).date() < self.since:
            return False
        return fnmatch.fnmatchcase(model_ref.lower(), self.model.lower())

    def describe(self) -> str:
        """Return where this entry came from, for cost breakdowns."""
        text = f"override {self.model!r}"
        if self.provider is not None:
            text += f" for {self.provider}"
        return f"{text} ({self.source})" if self.source else text


@dataclass(frozen=True)
class Markup:
    """A markup on provider cost: the billed amount is `cost × factor`."""

    factor: Decimal
    label: str

    @classmethod
    def percent(cls, value: str | int | Decimal, *, setting: str = "markup percent") -> Markup:
        """Return a markup of `value` percent on top of cost (`20` bills 1.20 per 1.00).

        `setting` names the value in error messages.
        """
        number = _decimal(value, setting)
        if number < -100:
            raise ConfigurationError(
                f"{setting} must be -100 or more (a billed amount below zero is "
                f"impossible), got {number}"
            )
        return cls(factor=EXACT.add(1, EXACT.divide(number, 100)), label=f"{number:+}%")

    @classmethod
    def multiplier(
        cls, value: str | int | Decimal, *, setting: str = "markup multiplier"
    ) -> Markup:
        """Return a markup that multiplies cost by `value` (`1.5` bills 1.50 per 1.00).

        `setting` names the value in error messages.
        """
        number = _non_negative(value, setting)
        return cls(factor=number, label=f"x{number}")


NO_MARKUP: Final = Markup(factor=Decimal(1), label="none")


@dataclass(frozen=True)
class MarkupPolicy:
    """The markup rules: global, per subscription and per model pattern.

    A subscription's markup wins over the first matching model pattern (glob,
    case-insensitive, matched against the model id as priced, such as
    `eu.anthropic.claude-...` on Bedrock), which wins over `default`. With
    none of them, the billed amount is the cost.
    """

    default: Markup | None = None
    subscriptions: Mapping[str, Markup] = field(default_factory=dict)
    models: Sequence[tuple[str, Markup]] = ()

    def select(self, subscription: str | None, model: str | None) -> tuple[Markup, str]:
        """Return the markup for a record and the setting that chose it."""
        if subscription is not None and subscription in self.subscriptions:
            return self.subscriptions[subscription], f"subscription {subscription!r}"
        if model is not None:
            for pattern, markup in self.models:
                if fnmatch.fnmatchcase(model.lower(), pattern.lower()):
                    return markup, f"model pattern {pattern!r}"
        if self.default is not None:
            return self.default, "default"
        return NO_MARKUP, "none"


@dataclass(frozen=True)
class PricingConfig:
    """Everything that changes prices beyond the database."""

    overrides: Sequence[PriceOverride] = ()
    markup: MarkupPolicy = field(default_factory=MarkupPolicy)
    batch_discounts: Mapping[str, Decimal] = field(
        default_factory=lambda: dict(PUBLISHED_BATCH_DISCOUNTS)
    )
    """Percent off standard prices for batch results, per tokenwire provider name."""
    service_tier_multipliers: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    """Multiplier of standard prices per provider and reported service tier."""
    inference_geo_multipliers: Mapping[str, Mapping[str, Decimal]] = field(
        default_factory=lambda: {
            provider: dict(geos) for provider, geos in PUBLISHED_INFERENCE_GEO_MULTIPLIERS.items()
        }
    )
    """Multiplier of prices per provider and reported inference geography."""
    path: Path | None = None
    """The file this configuration was read from, if any."""


def load_config(path: str | os.PathLike[str]) -> PricingConfig:
    """Read a pricing TOML file (layout in the module docstring)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the prices file {file}: {exc}; check the path given with "
            f"--prices or TOKENWIRE_PRICES"
        ) from exc
    try:
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{file} is not valid TOML: {exc}; fix the syntax") from exc
    return _parse_document(document, file)


def _parse_document(document: dict[str, Any], file: Path) -> PricingConfig:
    _reject_unknown(document, _TOP_LEVEL_KEYS, f"{file}")
    entries = _array_of_tables(document.get("prices", []), f"{file}: prices")
    overrides = tuple(
        _parse_price_entry(entry, f"{file}: prices[{index}]") for index, entry in enumerate(entries)
    )
    markup = _parse_markup(_table(document.get("markup", {}), f"{file}: markup"), f"{file}: markup")

    batch_discounts = dict(PUBLISHED_BATCH_DISCOUNTS)
    for provider, value in _table(
        document.get("batch_discounts", {}), f"{file}: batch_discounts"
    ).items():
        batch_discounts[provider] = _percent_off(value, f"{file}: batch_discounts.{provider}")

    tiers = _parse_multipliers(document.get("service_tiers", {}), f"{file}: service_tiers")
    geos = {
        provider: dict(table) for provider, table in PUBLISHED_INFERENCE_GEO_MULTIPLIERS.items()
    }
    for provider, table in _parse_multipliers(
        document.get("inference_geo", {}), f"{file}: inference_geo"
    ).items():
        geos.setdefault(provider, {}).update(table)

    return PricingConfig(
        overrides=overrides,
        markup=markup,
        batch_discounts=batch_discounts,
        service_tier_multipliers=tiers,
        inference_geo_multipliers=geos,
        path=file,
    )


def _parse_multipliers(value: object, where: str) -> dict[str, dict[str, Decimal]]:
    """Read a `[section.provider] name = multiplier` table."""
    result: dict[str, dict[str, Decimal]] = {}
    for provider, table in _table(value, where).items():
        provider_where = f"{where}.{provider}"
        result[provider] = {
            name: _non_negative(number, f"{provider_where}.{name}")
            for name, number in _table(table, provider_where).items()
        }
    return result


def _parse_price_entry(entry: dict[str, Any], where: str) -> PriceOverride:
    _reject_unknown(entry, _PRICE_ENTRY_KEYS, where)
    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(f"{where}.model is missing; set it to a model id or glob pattern")
    rates = {
        RATE_KEYS[key]: _non_negative(value, f"{where}.{key}")
        for key, value in entry.items()
        if key in RATE_KEYS
    }
    discount = entry.get("discount_percent")
    if discount is not None:
        discount = _percent_off(discount, f"{where}.discount_percent")
    if bool(rates) == (discount is not None):
        raise ConfigurationError(
            f"{where} must set either price keys ({', '.join(RATE_KEYS)}) or "
            f"discount_percent, not both and not neither"
        )
    return PriceOverride(
        model=model,
        rates=rates,
        discount_percent=discount,
        provider=_optional_str(entry.get("provider"), f"{where}.provider"),
        since=_optional_date(entry.get("since"), f"{where}.since"),
        batch=_optional_bool(entry.get("batch"), f"{where}.batch"),
        service_tier=_optional_str(entry.get("service_tier"), f"{where}.service_tier"),
        source=_optional_str(entry.get("source"), f"{where}.source"),
    )


def _parse_markup(table: dict[str, Any], where: str) -> MarkupPolicy:
    _reject_unknown(table, _MARKUP_KEYS, where)
    default = _parse_one_markup(table, where, required=False)
    subscriptions = {
        name: _required_markup(value, f"{where}.subscriptions.{name}")
        for name, value in _table(table.get("subscriptions", {}), f"{where}.subscriptions").items()
    }
    models: list[tuple[str, Markup]] = []
    for index, entry in enumerate(_array_of_tables(table.get("models", []), f"{where}.models")):
        entry_where = f"{where}.models[{index}]"
        _reject_unknown(entry, ("model", "percent", "multiplier"), entry_where)
        pattern = entry.get("model")
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigurationError(f"{entry_where}.model is missing; set it to a glob pattern")
        markup = _required_markup(entry, entry_where, keys=("model", "percent", "multiplier"))
        models.append((pattern, markup))
    return MarkupPolicy(default=default, subscriptions=subscriptions, models=tuple(models))


def _required_markup(
    value: object, where: str, keys: tuple[str, ...] = ("percent", "multiplier")
) -> Markup:
    table = _table(value, where)
    _reject_unknown(table, keys, where)
    markup = _parse_one_markup(table, where, required=True)
    assert markup is not None
    return markup


def _parse_one_markup(table: dict[str, Any], where: str, *, required: bool) -> Markup | None:
    percent, multiplier = table.get("percent"), table.get("multiplier")
    if percent is not None and multiplier is not None:
        raise ConfigurationError(f"{where} sets both percent and multiplier; keep one")
    if percent is not None:
        return Markup.percent(percent, setting=f"{where}.percent")
    if multiplier is not None:
        return Markup.multiplier(multiplier, setting=f"{where}.multiplier")
    if required:
        raise ConfigurationError(f"{where} needs percent or multiplier, such as percent = 20")
    return None


def _reject_unknown(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown keys {unknown}; the keys allowed here are {list(allowed)}"
        )


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _array_of_tables(value: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigurationError(f"{where} must be an array of tables ([[...]] sections)")
    return value


def _optional_str(value: object, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(f"{where} must be a string, got {value!r}")


def _optional_bool(value: object, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigurationError(f"{where} must be true or false, got {value!r}")


def _optional_date(value: object, where: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigurationError(f"{where} must be a date such as 2026-01-01, got {value!r}")
