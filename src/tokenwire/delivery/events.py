"""Lago usage events built from usage records.

`plan_delivery()` takes one `UsageRecord` and returns a `DeliveryPlan`: the
record's delivery status and the Lago events that bill it. A record produces
events only when it is billable (state `complete` or `partial` with counts)
and has a subscription, its own or the configured default. Each non-zero
token count becomes one event, under a code from `EventCodes`, so that the
billable codes are disjoint and a plan that prices each code bills correctly.

Every event carries a deterministic `transaction_id` and an explicit
`timestamp`. The id hashes the provider's response id (or the stored
`record_id` when the provider gave none) with the event code, and the
timestamp is the record's `created_at`. So resending a record never bills it
twice, while two separate calls are always two bills. Building events does
no I/O and raises nothing except `ConfigurationError` from an invalid
`EventCodes`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from ..errors import ConfigurationError
from ..usage import UsageRecord

__all__ = [
    "MAX_BATCH_EVENTS",
    "CostEventBuilder",
    "DeliveryPlan",
    "DeliveryStatus",
    "EventCodes",
    "LagoEvent",
    "PriceMode",
    "batch_payload",
    "build_events",
    "encode_event",
    "event_timestamp",
    "plan_delivery",
    "transaction_id",
]

MAX_BATCH_EVENTS = 100
"""Events per request to `POST /api/v1/events/batch`; Lago rejects larger batches."""

DeliveryStatus = Literal[
    "queued", "zero_usage", "not_billable", "unattributed", "ledger_only", "plan_failed", "held"
]
"""Delivery status of a record, set when it is written to the ledger.

- `queued`: its events are in the outbox, waiting for or done with delivery;
- `zero_usage`: billable, but every count is zero, so there is nothing to send;
- `not_billable`: state `missing` or `error`, or no counts at all;
- `unattributed`: billable, but no subscription and no default subscription;
- `ledger_only`: billable and attributed, but no Lago API key was configured;
- `plan_failed`: building its events raised (a fault, logged and counted); kept, not sent;
- `held`: billable and attributed, written while the configuration was invalid; the first
  meter with a valid Lago configuration on this ledger queues its events.
"""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EventCodes(msgspec.Struct, frozen=True, kw_only=True):
    """Lago billable metric codes, one per token class.

    The six billable codes count disjoint token classes. The informational
    codes repeat tokens already billed: reasoning is part of output, and
    audio and image counts are parts of input or output. So they are sent
    only when `informational` is true, and must never be priced.
    """

    input: str = "llm_input_tokens"
    cached_input: str = "llm_cached_input_tokens"
    output: str = "llm_output_tokens"
    cache_creation: str = "llm_cache_creation_tokens"
    """Cache writes when the 5-minute / 1-hour split is unknown."""
    cache_write_5m: str = "llm_cache_write_5m_tokens"
    cache_write_1h: str = "llm_cache_write_1h_tokens"
    reasoning: str = "llm_reasoning_tokens"
    audio_input: str = "llm_audio_input_tokens"
    audio_output: str = "llm_audio_output_tokens"
    image_input: str = "llm_image_input_tokens"
    image_output: str = "llm_image_output_tokens"
    informational: bool = False
    """Also send the informational subset codes (reasoning, audio, image)."""

    def __post_init__(self) -> None:
        named = [(name, getattr(self, name)) for name in self.__struct_fields__]
        codes = [code for name, code in named if name != "informational"]
        for name, code in named:
            if name != "informational" and (not isinstance(code, str) or not code.strip()):
                raise ConfigurationError(
                    f"EventCodes.{name} must be a non-empty Lago billable metric code, got {code!r}"
                )
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            raise ConfigurationError(
                f"EventCodes must give every token class its own code, but {repeated} is "
                f"used more than once; a shared code would bill the same tokens twice"
            )


class LagoEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One Lago usage event, in the field order of Lago's batch API."""

    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp: float
    """Unix seconds with millisecond precision (Lago accepts decimals)."""
    precise_total_amount_cents: str | None = None
    """The amount of a cost event (Lago's dynamic charge model), a decimal string."""
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


class DeliveryPlan(msgspec.Struct, frozen=True):
    """The delivery status of one record and the events that bill it."""

    status: DeliveryStatus
    subscription: str | None
    events: tuple[LagoEvent, ...] = ()


_encoder = msgspec.json.Encoder()


def transaction_id(record: UsageRecord, code: str) -> str:
    """Return the Lago transaction id of `record`'s event with `code`.

    It hashes the provider and response id when the provider returned one,
    else the record id, so one response bills once however often it is sent,
    and two records without a response id never share an id.
    """
    if record.response_id:
        basis = f"response\x1f{record.provider}\x1f{record.response_id}"
    else:
        basis = f"record\x1f{record.record_id}"
    digest = hashlib.sha256(f"{basis}\x1f{code}".encode()).hexdigest()
    return f"tw_{digest[:32]}"


def event_timestamp(created_at: dt.datetime) -> float:
    """Return `created_at` as Unix seconds, truncated to whole milliseconds.

    The value is computed with integer arithmetic, so the same `created_at`
    always gives the same float (Lago deduplicates on transaction id plus
    timestamp). A naive datetime is taken as UTC.
    """
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=dt.UTC)
    delta = created_at - _EPOCH
    milliseconds = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return milliseconds / 1000


def _cache_write_counts(record: UsageRecord, codes: EventCodes) -> list[tuple[str, int | None]]:
    """Return cache writes as the 5m/1h split when it is known and adds up, else as one total."""
    usage = record.usage
    five, hour, total = (
        usage.cache_creation_5m_tokens,
        usage.cache_creation_1h_tokens,
        usage.cache_creation_tokens,
    )
    split_known = five is not None and hour is not None and (total is None or five + hour == total)
    if split_known:
        return [(codes.cache_write_5m, five), (codes.cache_write_1h, hour)]
    return [(codes.cache_creation, total)]


def _counts(record: UsageRecord, codes: EventCodes) -> list[tuple[str, int | None]]:
    usage = record.usage
    counts: list[tuple[str, int | None]] = [
        (codes.input, usage.input_tokens),
        (codes.cached_input, usage.cached_input_tokens),
        *_cache_write_counts(record, codes),
        (codes.output, usage.output_tokens),
    ]
    if codes.informational:
        counts += [
            (codes.reasoning, usage.reasoning_tokens),
            (codes.audio_input, usage.audio_input_tokens),
            (codes.audio_output, usage.audio_output_tokens),
            (codes.image_input, usage.image_input_tokens),
            (codes.image_output, usage.image_output_tokens),
        ]
    return counts


def build_events(
    record: UsageRecord, subscription: str, codes: EventCodes
) -> tuple[LagoEvent, ...]:
    """Return one event per non-zero count of `record`, billed to `subscription`."""
    timestamp = event_timestamp(record.created_at)
    base: dict[str, str | int] = dict(record.dimensions)
    # The fixed keys come last so that a dimension cannot overwrite them.
    if record.model is not None:
        base["model"] = record.model
    base["provider"] = record.provider
    base["api"] = record.api
    events = []
    for code, count in _counts(record, codes):
        if not count:
            continue
        events.append(
            LagoEvent(
                transaction_id=transaction_id(record, code),
                external_subscription_id=subscription,
                code=code,
                timestamp=timestamp,
                properties={**base, "value": count},
            )
        )
    return tuple(events)


PriceMode = Literal["tokens", "cost", "both"]
"""The form a billable record is sent in: token events, one cost event, or both.

In `cost` mode a record without a full price is sent as token events instead."""

CostEventBuilder = Callable[[UsageRecord, str], "LagoEvent | None"]
"""Return the cost event of a record for a subscription, or None when it is unpriced."""


def plan_delivery(
    record: UsageRecord,
    *,
    codes: EventCodes,
    default_subscription: str | None,
    lago_enabled: bool,
    price_mode: PriceMode = "tokens",
    cost_event: CostEventBuilder | None = None,
) -> DeliveryPlan:
    """Decide how `record` is billed: its status and, when queued, its events."""
    subscription = record.subscription or default_subscription
    if not record.billable:
        return DeliveryPlan("not_billable", subscription)
    if subscription is None:
        return DeliveryPlan("unattributed", None)
    if not lago_enabled:
        return DeliveryPlan("ledger_only", subscription)

    priced = None
    if price_mode != "tokens" and cost_event is not None:
        priced = cost_event(record, subscription)
    if price_mode == "cost" and priced is not None:
        events: tuple[LagoEvent, ...] = (priced,)
    else:
        events = build_events(record, subscription, codes)
        if priced is not None:
            events = (*events, priced)
    if not events:
        return DeliveryPlan("zero_usage", subscription)
    return DeliveryPlan("queued", subscription, events)


def encode_event(event: LagoEvent) -> str:
    """Return the JSON text of one event, as stored in the outbox and sent."""
    return _encoder.encode(event).decode()


def batch_payload(events: Sequence[str]) -> bytes:
    """Return the request body of `POST /api/v1/events/batch` for encoded events."""
    if len(events) > MAX_BATCH_EVENTS:
        raise ValueError(
            f"a Lago batch can contain at most {MAX_BATCH_EVENTS} events, got {len(events)}"
        )
    return b'{"events":[' + ",".join(events).encode() + b"]}"
