"""Lago events from usage records: codes, transaction ids, timestamps, delivery plans."""

from __future__ import annotations

import datetime as dt
import re

import msgspec
import pytest

from tokenwire.delivery.events import (
    MAX_BATCH_EVENTS,
    EventCodes,
    batch_payload,
    build_events,
    encode_event,
    event_timestamp,
    plan_delivery,
    transaction_id,
)
from tokenwire.errors import ConfigurationError
from tokenwire.usage import Usage, UsageRecord

CREATED_AT = dt.datetime(2025, 3, 4, 5, 6, 7, 891_234, tzinfo=dt.UTC)
"""A fixed record time: 1741064767.891 Unix seconds (microseconds truncated)."""
CREATED_AT_SECONDS = 1741064767.891


def make_record(**overrides: object) -> UsageRecord:
    fields: dict[str, object] = {
        "provider": "anthropic",
        "api": "messages",
        "state": "complete",
        "usage": Usage(input_tokens=10, cached_input_tokens=0, output_tokens=7),
        "created_at": CREATED_AT,
        "response_id": "msg_01",
        "response_model": "claude-sonnet-4-5",
        "subscription": "sub_a",
    }
    fields.update(overrides)
    return UsageRecord(**fields)  # type: ignore[arg-type]


def codes_of(record: UsageRecord, codes: EventCodes | None = None) -> dict[str, int | str]:
    events = build_events(record, "sub_a", codes or EventCodes())
    return {event.code: event.properties["value"] for event in events}


def test_transaction_id_format() -> None:
    value = transaction_id(make_record(), "llm_input_tokens")

    assert re.fullmatch(r"tw_[0-9a-f]{32}", value)


def test_transaction_id_same_response_same_id() -> None:
    first = make_record(record_id="r1")
    second = make_record(record_id="r2")

    assert transaction_id(first, "llm_input_tokens") == transaction_id(second, "llm_input_tokens")


def test_transaction_id_differs_by_code() -> None:
    record = make_record()

    assert transaction_id(record, "llm_input_tokens") != transaction_id(record, "llm_output_tokens")


def test_transaction_id_without_response_id_uses_record_id() -> None:
    first = make_record(response_id=None)
    second = make_record(response_id=None)

    assert first.record_id != second.record_id
    assert transaction_id(first, "llm_input_tokens") != transaction_id(second, "llm_input_tokens")
    assert transaction_id(first, "llm_input_tokens") == transaction_id(
        msgspec.json.decode(msgspec.json.encode(first), type=UsageRecord), "llm_input_tokens"
    )


def test_transaction_id_differs_by_provider() -> None:
    openai = make_record(provider="openai")
    anthropic = make_record(provider="anthropic")

    assert transaction_id(openai, "llm_input_tokens") != transaction_id(
        anthropic, "llm_input_tokens"
    )


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        pytest.param(CREATED_AT, CREATED_AT_SECONDS, id="aware-utc"),
        pytest.param(CREATED_AT.replace(tzinfo=None), CREATED_AT_SECONDS, id="naive-is-utc"),
        pytest.param(
            CREATED_AT.astimezone(dt.timezone(dt.timedelta(hours=2))),
            CREATED_AT_SECONDS,
            id="other-offset",
        ),
        pytest.param(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), 0.0, id="epoch"),
        pytest.param(
            dt.datetime(2025, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.UTC),
            1735689600.999,
            id="truncates-not-rounds",
        ),
    ],
)
def test_event_timestamp(created_at: dt.datetime, expected: float) -> None:
    assert event_timestamp(created_at) == expected


def test_event_timestamp_survives_ledger_round_trip() -> None:
    record = make_record()
    stored = msgspec.json.decode(msgspec.json.encode(record), type=UsageRecord)

    assert event_timestamp(stored.created_at) == event_timestamp(record.created_at)


def test_build_events_one_per_nonzero_count() -> None:
    record = make_record(
        usage=Usage(input_tokens=10, cached_input_tokens=0, output_tokens=7, reasoning_tokens=3)
    )

    assert codes_of(record) == {"llm_input_tokens": 10, "llm_output_tokens": 7}


def test_build_events_fields() -> None:
    record = make_record(dimensions={"feature": "search"})

    [first, _] = build_events(record, "sub_x", EventCodes())

    assert first.transaction_id == transaction_id(record, "llm_input_tokens")
    assert first.external_subscription_id == "sub_x"
    assert first.code == "llm_input_tokens"
    assert first.timestamp == CREATED_AT_SECONDS
    assert first.properties == {
        "feature": "search",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "api": "messages",
        "value": 10,
    }


def test_build_events_dimensions_cannot_override_fixed_keys() -> None:
    record = make_record(dimensions={"provider": "spoofed", "value": "9", "api": "x"})

    [first, _] = build_events(record, "sub_a", EventCodes())

    assert first.properties["provider"] == "anthropic"
    assert first.properties["api"] == "messages"
    assert first.properties["value"] == 10


def test_build_events_model_omitted_when_unknown() -> None:
    record = make_record(response_model=None, request_model=None)

    [first, _] = build_events(record, "sub_a", EventCodes())

    assert "model" not in first.properties


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            Usage(
                cache_creation_tokens=300,
                cache_creation_5m_tokens=100,
                cache_creation_1h_tokens=200,
            ),
            {"llm_cache_write_5m_tokens": 100, "llm_cache_write_1h_tokens": 200},
            id="split-known",
        ),
        pytest.param(
            Usage(
                cache_creation_tokens=300, cache_creation_5m_tokens=300, cache_creation_1h_tokens=0
            ),
            {"llm_cache_write_5m_tokens": 300},
            id="split-known-zero-part",
        ),
        pytest.param(
            Usage(cache_creation_tokens=300),
            {"llm_cache_creation_tokens": 300},
            id="split-unknown",
        ),
        pytest.param(
            Usage(cache_creation_tokens=300, cache_creation_5m_tokens=100),
            {"llm_cache_creation_tokens": 300},
            id="split-half-known",
        ),
        pytest.param(
            Usage(
                cache_creation_tokens=300,
                cache_creation_5m_tokens=100,
                cache_creation_1h_tokens=100,
            ),
            {"llm_cache_creation_tokens": 300},
            id="split-does-not-add-up",
        ),
        pytest.param(
            Usage(cache_creation_5m_tokens=40, cache_creation_1h_tokens=2),
            {"llm_cache_write_5m_tokens": 40, "llm_cache_write_1h_tokens": 2},
            id="split-without-total",
        ),
    ],
)
def test_build_events_cache_writes(usage: Usage, expected: dict[str, int]) -> None:
    assert codes_of(make_record(usage=usage)) == expected


def test_build_events_informational_only_when_enabled() -> None:
    usage = Usage(
        output_tokens=50, reasoning_tokens=20, audio_input_tokens=4, image_output_tokens=2
    )

    off = codes_of(make_record(usage=usage))
    on = codes_of(make_record(usage=usage), EventCodes(informational=True))

    assert off == {"llm_output_tokens": 50}
    assert on == {
        "llm_output_tokens": 50,
        "llm_reasoning_tokens": 20,
        "llm_audio_input_tokens": 4,
        "llm_image_output_tokens": 2,
    }


def test_build_events_custom_codes() -> None:
    codes = EventCodes(input="in", output="out")

    assert codes_of(make_record(), codes) == {"in": 10, "out": 7}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"input": ""}, "EventCodes.input", id="empty"),
        pytest.param({"output": "llm_input_tokens"}, "more than once", id="shared"),
        pytest.param(
            {"reasoning": "llm_output_tokens"}, "more than once", id="informational-shared"
        ),
    ],
)
def test_event_codes_invalid(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        EventCodes(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "default", "lago", "status"),
    [
        pytest.param({}, None, True, "queued", id="complete"),
        pytest.param({"state": "partial"}, None, True, "queued", id="partial-with-counts"),
        pytest.param(
            {"state": "partial", "usage": Usage()},
            None,
            True,
            "not_billable",
            id="partial-without-counts",
        ),
        pytest.param(
            {"state": "missing", "usage": Usage()}, None, True, "not_billable", id="missing"
        ),
        pytest.param({"state": "error"}, None, True, "not_billable", id="error-never-billed"),
        pytest.param({"subscription": None}, None, True, "unattributed", id="unattributed"),
        pytest.param({"subscription": None}, "sub_default", True, "queued", id="default"),
        pytest.param({}, None, False, "ledger_only", id="no-lago-key"),
        pytest.param(
            {"usage": Usage(input_tokens=0, output_tokens=0)},
            None,
            True,
            "zero_usage",
            id="zero-counts",
        ),
    ],
)
def test_plan_delivery_status(
    overrides: dict[str, object], default: str | None, lago: bool, status: str
) -> None:
    plan = plan_delivery(
        make_record(**overrides),
        codes=EventCodes(),
        default_subscription=default,
        lago_enabled=lago,
    )

    assert plan.status == status
    assert bool(plan.events) == (status == "queued")


def test_plan_delivery_default_subscription_only_for_unattributed() -> None:
    own = plan_delivery(
        make_record(), codes=EventCodes(), default_subscription="sub_default", lago_enabled=True
    )
    unattributed = plan_delivery(
        make_record(subscription=None),
        codes=EventCodes(),
        default_subscription="sub_default",
        lago_enabled=True,
    )

    assert {event.external_subscription_id for event in own.events} == {"sub_a"}
    assert {event.external_subscription_id for event in unattributed.events} == {"sub_default"}


def test_batch_payload_is_lago_batch() -> None:
    events = build_events(make_record(), "sub_a", EventCodes())

    payload = msgspec.json.decode(batch_payload([encode_event(event) for event in events]))

    assert payload == {"events": [msgspec.to_builtins(event) for event in events]}


def test_batch_payload_rejects_over_limit() -> None:
    event = encode_event(build_events(make_record(), "sub_a", EventCodes())[0])

    with pytest.raises(ValueError, match=f"at most {MAX_BATCH_EVENTS} events, got 101"):
        batch_payload([event] * 101)
