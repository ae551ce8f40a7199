"""The canonical usage record that every provider's response is normalized into.

Token classes in `Usage` are disjoint, so that the sum of count times price over
the billable classes is the bill:

- `input_tokens`: fresh input, neither read from nor written to a cache;
- `cached_input_tokens`: input read from a cache;
- `cache_creation_tokens`: input written to a cache, with the 5-minute and 1-hour
  parts in `cache_creation_5m_tokens` and `cache_creation_1h_tokens` when the
  provider reports the split;
- `output_tokens`: everything generated, reasoning included.

`reasoning_tokens` and the modality counts are subsets of the classes above and
are never billed on their own. `total_tokens` is the provider's own total,
copied, never computed. `None` means the provider did not report a value; a
reported zero stays zero.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any, Literal

import msgspec

__all__ = [
    "BILLABLE_EVENT_CODES",
    "INFORMATIONAL_EVENT_CODES",
    "RecordState",
    "Usage",
    "UsageRecord",
    "new_record_id",
]

RecordState = Literal["complete", "partial", "missing", "error"]
"""Completeness of a record.

- `complete`: the terminal usage of the response was seen.
- `partial`: the response ended early (cut, closed by the caller, an in-stream
  exception) before its terminal usage. The counts are what was seen, possibly none.
- `missing`: a successful response that carried no usage at all.
- `error`: the provider reported an error and no usage; nothing is billable.
"""

BILLABLE_EVENT_CODES: tuple[str, ...] = (
    "llm_input_tokens",
    "llm_cached_input_tokens",
    "llm_output_tokens",
    "llm_cache_creation_tokens",
    "llm_cache_write_5m_tokens",
    "llm_cache_write_1h_tokens",
)
"""Lago billable metric codes. Each counts a disjoint token class."""

INFORMATIONAL_EVENT_CODES: tuple[str, ...] = (
    "llm_reasoning_tokens",
    "llm_audio_input_tokens",
    "llm_audio_output_tokens",
    "llm_image_input_tokens",
    "llm_image_output_tokens",
)
"""Lago codes for subset counts. They repeat tokens already billed and must never be priced."""


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Token counts of one response in disjoint classes (see the module docstring)."""

    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cache_creation_5m_tokens: int | None = None
    cache_creation_1h_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_input_tokens: int | None = None
    audio_output_tokens: int | None = None
    image_input_tokens: int | None = None
    image_output_tokens: int | None = None
    total_tokens: int | None = None
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    """The provider's usage objects as reported, so fields without a canonical
    class (and fields a provider adds tomorrow) stay in the ledger."""

    def has_counts(self) -> bool:
        """Return whether any billable class has a reported value."""
        return any(
            value is not None
            for value in (
                self.input_tokens,
                self.cached_input_tokens,
                self.cache_creation_tokens,
                self.output_tokens,
            )
        )


def new_record_id() -> str:
    """Return a new time-ordered record id (UUIDv7 layout: 48-bit ms clock, then random)."""
    ms = time.time_ns() // 1_000_000
    digits = ((ms & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + os.urandom(10)).hex()
    # Version 7 in the 13th hex digit; variant 10 in the two high bits of the 17th.
    variant = "89ab"[int(digits[16], 16) & 0x3]
    return f"{digits[:8]}-{digits[8:12]}-7{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UsageRecord(msgspec.Struct, kw_only=True):
    """One HTTP exchange with an LLM API, normalized.

    `record_id` and `created_at` are fixed when the record is made and reused on
    every resend, so that delivery is idempotent.
    """

    provider: str
    api: str
    state: RecordState
    usage: Usage = msgspec.field(default_factory=Usage)
    record_id: str = msgspec.field(default_factory=new_record_id)
    created_at: dt.datetime = msgspec.field(default_factory=_utc_now)
    response_id: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    http_status: int | None = None
    stream: bool = False
    batch: bool = False
    service_tier: str | None = None
    subscription: str | None = None
    dimensions: dict[str, str] = msgspec.field(default_factory=dict)
    problem: str | None = None
    """The reason decoding stopped short (malformed bytes, truncated stream), or None."""

    @property
    def model(self) -> str | None:
        """The model as returned by the provider, else as requested."""
        return self.response_model or self.request_model

    @property
    def billable(self) -> bool:
        """Return whether this record produces billing events."""
        return self.state in ("complete", "partial") and self.usage.has_counts()
