"""Cost and margin of usage records, from genai-prices plus tokenwire's own layers.

    pricer = Pricer.from_file("prices.toml")     # or Pricer(PricingConfig(...)), or Pricer()
    cost = pricer.price(record)                  # exact Decimal USD, per-class breakdown
    cost.cost_usd, cost.billed_usd, cost.margin_usd, cost.unpriced

See `cost` for the order in which prices are chosen, `config` for the
override file, and `lago` for the Lago price-mode event.
"""

from __future__ import annotations

from .catalog import PRICE_DATA
from .config import Markup, MarkupPolicy, PriceOverride, PricingConfig, load_config
from .cost import Cost, CostLine, Pricer, default_pricer
from .lago import COST_EVENT_CODE, UnpricedRecordError, cost_event
from .listing import ModelRates, model_rates
from .rates import Rate, RateCard, Tier
from .report import CostReport, ReportRow, UnpricedModel, cost_report

__all__ = [
    "COST_EVENT_CODE",
    "PRICE_DATA",
    "Cost",
    "CostLine",
    "CostReport",
    "Markup",
    "MarkupPolicy",
    "ModelRates",
    "PriceOverride",
    "Pricer",
    "PricingConfig",
    "Rate",
    "RateCard",
    "ReportRow",
    "Tier",
    "UnpricedModel",
    "UnpricedRecordError",
    "cost_event",
    "cost_report",
    "default_pricer",
    "load_config",
    "model_rates",
]
