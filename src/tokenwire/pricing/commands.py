"""The pricing side of the `tokenwire` command: `prices`, `report` and `replay --cost`.

`tokenwire.cli` owns the argument parser and calls these; they print with
rich and return the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigurationError
from ..usage import UsageRecord
from .cost import Pricer, default_pricer
from .listing import model_rates
from .rates import PRICED_CLASSES, UNIT_SIZES, decimal_string
from .report import REPORT_GROUPS, ReportGroup, cost_report

__all__ = [
    "add_prices_arguments",
    "add_pricing_file_argument",
    "cost_fields",
    "pricer_from_args",
    "run_prices",
    "run_report",
]

_TOKEN_COLUMNS = (
    ("input_tokens", "input"),
    ("cached_input_tokens", "cached"),
    ("cache_creation_tokens", "cache write"),
    ("output_tokens", "output"),
    ("reasoning_tokens", "reasoning"),
)


def add_pricing_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="pricing TOML file: overrides, markup, batch discounts, service tiers "
        "(default: TOKENWIRE_PRICES, else genai-prices alone)",
    )


def add_prices_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model id, as the provider returns or as requested")
    parser.add_argument(
        "--provider",
        help="tokenwire provider name such as openai, anthropic, "
        "bedrock, gemini, azure_openai (default: matched by model name)",
    )
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="price at the start of this UTC day (default: now)",
    )
    parser.add_argument("--batch", action="store_true", help="show batch prices")
    parser.add_argument(
        "--service-tier",
        metavar="TIER",
        help="show prices for a reported service tier such as flex or priority",
    )
    add_pricing_file_argument(parser)


def pricer_from_args(args: argparse.Namespace) -> Pricer:
    """Return the pricer for `--prices FILE`, else for `TOKENWIRE_PRICES`."""
    path = getattr(args, "prices", None)
    return Pricer.from_file(path) if path is not None else default_pricer()


def cost_fields(pricer: Pricer, record: UsageRecord | None) -> dict[str, Any]:
    """Return the `replay --cost` fields of one row.

    `cost_usd` is a decimal string when the record is fully priced and
    `None` otherwise (not metered, or `cost_unpriced` names the classes
    without a price), so that a partial sum is never read as the cost.
    """
    if record is None:
        return {"cost_usd": None, "cost_unpriced": None}
    cost = pricer.price(record)
    return {
        "cost_usd": decimal_string(cost.cost_usd) if cost.priced else None,
        "cost_unpriced": list(cost.unpriced),
    }


def run_prices(args: argparse.Namespace, console: Console) -> int:
    """Print the rates that apply to a model; return 1 when it has no price."""
    at = None
    if args.date is not None:
        at = dt.datetime.combine(args.date, dt.time(), tzinfo=dt.UTC)
    rates = model_rates(
        args.model,
        provider=args.provider,
        at=at,
        batch=args.batch,
        service_tier=args.service_tier,
        pricer=pricer_from_args(args),
    )
    card = rates.card
    when = rates.at.isoformat(timespec="seconds")
    if card.unpriced_reason is not None:
        Console(stderr=True).print(
            f"no price: {card.unpriced_reason}", markup=False, highlight=False
        )
        return 1

    table = Table(title=f"{args.model} ({rates.provider}) at {when}")
    table.add_column("token class")
    table.add_column("USD per unit", justify="right")
    table.add_column("unit")
    table.add_column("note")
    for name in PRICED_CLASSES:
        rate = card.rates.get(name)
        if rate is None:
            continue
        unit = "1K requests" if UNIT_SIZES[name] == 1_000 else "1M tokens"
        table.add_row(escape(name), rate.describe(), unit, escape(card.rate_notes.get(name, "")))
    console.print(table)
    console.print(f"Source: {rates.source}", markup=False, highlight=False)
    for note in card.notes:
        console.print(f"Note: {note}", markup=False, highlight=False)
    if rates.missing:
        console.print(
            f"No price for: {', '.join(rates.missing)}. Records with these tokens are "
            f"reported as unpriced.",
            markup=False,
            highlight=False,
        )
    return 0


def run_report(
    args: argparse.Namespace, console: Console, records: Iterable[UsageRecord], *, source: str
) -> int:
    """Print tokens, provider cost, billed amount and margin per group of `records`."""
    by: ReportGroup = args.by
    if by not in REPORT_GROUPS:
        raise ConfigurationError(f"--by must be one of {', '.join(REPORT_GROUPS)}, got {by!r}")
    report = cost_report(records, by, pricer_from_args(args))

    table = Table(title=f"Usage and cost by {by} ({source})")
    table.add_column(by)
    table.add_column("records", justify="right")
    for _, label in _TOKEN_COLUMNS:
        table.add_column(label, justify="right")
    for label in ("cost USD", "billed USD", "margin USD", "unpriced"):
        table.add_column(label, justify="right")
    missing_key = "(unattributed)" if by == "subscription" else "(not set)"
    for row in report.rows:
        table.add_row(
            escape(row.key) if row.key is not None else missing_key,
            f"{row.records:,}",
            *(f"{getattr(row, name):,}" for name, _ in _TOKEN_COLUMNS),
            decimal_string(row.cost_usd),
            decimal_string(row.billed_usd),
            decimal_string(row.margin_usd),
            f"{row.unpriced_records:,}",
        )
    console.print(table)

    if report.unpriced:
        unpriced = Table(
            title="Unpriced models (their tokens without a price add nothing to the cost above)"
        )
        for column in ("provider", "model", "records", "reason"):
            unpriced.add_column(column)
        for item in report.unpriced:
            unpriced.add_row(
                escape(item.provider),
                escape(item.model or "-"),
                f"{item.records:,}",
                escape(item.reason or ""),
            )
        console.print(unpriced)
    return 0
