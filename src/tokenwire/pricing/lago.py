"""Lago price mode: one cost event per priced record.

`cost_event()` is pure: it takes a record and its `Cost` and returns the
event as a dict for `POST /api/v1/events` (or one entry of `/events/batch`).
Lago's dynamic charge model bills, per period, the sum of the amounts in the
events' top-level `precise_total_amount_cents` field, a decimal string in
cents. The charge's billable metric must aggregate with `sum_agg`, here over
the `tokens` property
(https://getlago.com/docs/guide/plans/charges/charge-models/dynamic).
The amount is the billed amount (cost times markup), unrounded.

A record that is not fully priced gets no cost event: `cost_event()` raises
`UnpricedRecordError`, and the caller sends the record's token events instead.
"""

from __future__ import annotations

from typing import Any, Final

from ..errors import TokenwireError
from ..usage import UsageRecord
from .cost import Cost
from .rates import EXACT, decimal_string

__all__ = ["COST_EVENT_CODE", "UnpricedRecordError", "cost_event"]

COST_EVENT_CODE: Final = "llm_cost"


class UnpricedRecordError(TokenwireError, ValueError):
    """A cost event was requested for a record without a complete price."""


def cost_event(
    record: UsageRecord,
    cost: Cost,
    *,
    code: str = COST_EVENT_CODE,
    transaction_id: str | None = None,
    subscription: str | None = None,
) -> dict[str, Any]:
    """Return the Lago event billing `record` at `cost.billed_usd`.

    The transaction id and timestamp are built as for the token events of
    `tokenwire.delivery.events`: a hash of the response id (else the record
    id) with `code`, and `created_at` in Unix seconds. So resending the
    record never bills it twice. `subscription` defaults to the record's, and
    a record with neither is rejected rather than sent with a guessed id.
    Amounts in `properties` are decimal strings, which keep their precision
    in Lago.
    """
    # Imported here, not at module level, so that delivery may import this module.
    from ..delivery.events import event_timestamp
    from ..delivery.events import transaction_id as event_transaction_id

    if cost.record_id != record.record_id:
        raise ValueError(
            f"the cost is for record {cost.record_id}, not {record.record_id}; "
            f"price this record with Pricer.price(record)"
        )
    if not cost.priced:
        raise UnpricedRecordError(
            f"record {record.record_id} has no price for {', '.join(cost.unpriced)} "
            f"({cost.unpriced_reason}); send its token events instead"
        )
    external_subscription_id = subscription or record.subscription
    if not external_subscription_id:
        raise ValueError(
            f"record {record.record_id} is unattributed; pass subscription= or configure a "
            f"default subscription"
        )

    tokens = sum(line.tokens for line in cost.lines if line.token_class != "requests")
    properties: dict[str, Any] = dict(record.dimensions)
    # The fixed keys come after the dimensions, so that a dimension cannot overwrite them.
    properties.update(
        {
            "tokens": str(tokens),
            "provider": record.provider,
            "api": record.api,
            "model": record.model,
            "priced_model": cost.model,
            "price_source": cost.source,
            "cost_usd": decimal_string(cost.cost_usd),
            "billed_usd": decimal_string(cost.billed_usd),
            "markup": cost.markup,
        }
    )
    for line in cost.lines:
        assert line.cost_usd is not None  # a priced Cost has a cost on every line
        properties[f"{line.token_class}_tokens"] = str(line.tokens)
        properties[f"{line.token_class}_usd"] = decimal_string(line.cost_usd)

    return {
        "transaction_id": transaction_id or event_transaction_id(record, code),
        "external_subscription_id": external_subscription_id,
        "code": code,
        "timestamp": event_timestamp(record.created_at),
        "precise_total_amount_cents": decimal_string(EXACT.multiply(cost.billed_usd, 100)),
        "properties": properties,
    }
