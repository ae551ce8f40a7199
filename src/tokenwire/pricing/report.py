"""Token, cost, billed and margin totals over stored records, priced at report time.

`cost_report()` prices each record with a `Pricer` at the record's own
`created_at`, so a report run today bills last month's records at last
month's prices. Grouped by `state`, every record counts; otherwise only
billable records (`complete` or `partial` with counts) do.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Final, Literal

import msgspec

from ..usage import UsageRecord
from .cost import Pricer
from .rates import EXACT

__all__ = [
    "REPORT_GROUPS",
    "CostReport",
    "ReportGroup",
    "ReportRow",
    "UnpricedModel",
    "cost_report",
]

ReportGroup = Literal["subscription", "feature", "model", "day", "provider", "state"]
REPORT_GROUPS: Final[tuple[ReportGroup, ...]] = (
    "subscription",
    "feature",
    "model",
    "day",
    "provider",
    "state",
)


class ReportRow(msgspec.Struct, kw_only=True):
    """Totals of one group. `None` as the key means the dimension was not set."""

    key: str | None
    records: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    unpriced_records: int = 0
    """Records with at least one unpriced class; their priced classes still count."""

    @property
    def margin_usd(self) -> Decimal:
        return EXACT.subtract(self.billed_usd, self.cost_usd)


class UnpricedModel(msgspec.Struct, frozen=True):
    provider: str
    model: str | None
    records: int
    reason: str | None


class CostReport(msgspec.Struct):
    rows: list[ReportRow]
    unpriced: list[UnpricedModel]


def _group_key(record: UsageRecord, by: ReportGroup) -> str | None:
    if by == "subscription":
        return record.subscription
    if by == "feature":
        return record.dimensions.get("feature")
    if by == "model":
        return record.model
    if by == "day":
        return record.created_at.date().isoformat()
    if by == "provider":
        return record.provider
    return record.state


def cost_report(records: Iterable[UsageRecord], by: ReportGroup, pricer: Pricer) -> CostReport:
    """Return one row per group, sorted by key (unset last), and the unpriced models."""
    rows: dict[str | None, ReportRow] = {}
    unpriced: dict[tuple[str, str | None], UnpricedModel] = {}
    for record in records:
        if by != "state" and not record.billable:
            continue
        key = _group_key(record, by)
        row = rows.get(key)
        if row is None:
            row = rows[key] = ReportRow(key=key)
        _add_tokens(row, record)
        if not record.billable:
            continue

        cost = pricer.price(record)
        row.cost_usd = EXACT.add(row.cost_usd, cost.cost_usd)
        row.billed_usd = EXACT.add(row.billed_usd, cost.billed_usd)
        if not cost.priced:
            row.unpriced_records += 1
            model_key = (record.provider, cost.model)
            seen = unpriced.get(model_key)
            count = 1 if seen is None else seen.records + 1
            unpriced[model_key] = UnpricedModel(
                record.provider, cost.model, count, cost.unpriced_reason
            )

    ordered = sorted(rows.values(), key=lambda row: (row.key is None, row.key or ""))
    models = sorted(unpriced.values(), key=lambda item: (item.provider, item.model or ""))
    return CostReport(rows=ordered, unpriced=models)


def _add_tokens(row: ReportRow, record: UsageRecord) -> None:
    usage = record.usage
    row.records += 1
    row.input_tokens += usage.input_tokens or 0
    row.cached_input_tokens += usage.cached_input_tokens or 0
    row.cache_creation_tokens += usage.cache_creation_tokens or 0
    row.output_tokens += usage.output_tokens or 0
    row.reasoning_tokens += usage.reasoning_tokens or 0
