"""Lago price mode: one `llm_cost` event per priced record, token events when unpriced."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tokenwire import ConfigurationError, Meter, Usage, UsageRecord
from tokenwire.testing.lago_server import DEFAULT_API_KEY, LagoServer

# gpt-4o-mini list prices in USD per million tokens, from OpenAI's pricing page:
# input 0.15, cached input 0.075, output 0.60.
GPT_4O_MINI_INPUT = Decimal("0.15")
GPT_4O_MINI_CACHED = Decimal("0.075")
GPT_4O_MINI_OUTPUT = Decimal("0.60")


def _record(model: str, response_id: str) -> UsageRecord:
    return UsageRecord(
        provider="openai",
        api="chat_completions",
        state="complete",
        usage=Usage(input_tokens=1000, cached_input_tokens=2000, output_tokens=500),
        request_model=model,
        response_model=model,
        response_id=response_id,
        subscription="sub_acme",
        created_at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
    )


@pytest.fixture
def lago() -> Iterator[LagoServer]:
    with LagoServer() as server:
        yield server


def _deliver(tmp_path: Path, lago: LagoServer, mode: str, *records: UsageRecord) -> None:
    meter = Meter(
        ledger=tmp_path / "ledger.sqlite3",
        lago_api_key=DEFAULT_API_KEY,
        lago_url=lago.url,
        price_mode=mode,  # type: ignore[arg-type]
    )
    for record in records:
        meter.emit(record)
    result = meter.shutdown(timeout_s=10)
    assert result.pending == 0


def test_cost_mode_sends_one_cost_event(tmp_path: Path, lago: LagoServer) -> None:
    _deliver(tmp_path, lago, "cost", _record("gpt-4o-mini-2024-07-18", "chatcmpl-1"))

    [event] = lago.accepted
    expected_usd = (
        1000 * GPT_4O_MINI_INPUT + 2000 * GPT_4O_MINI_CACHED + 500 * GPT_4O_MINI_OUTPUT
    ) / 1_000_000
    assert event["code"] == "llm_cost"
    assert event["external_subscription_id"] == "sub_acme"
    assert Decimal(event["precise_total_amount_cents"]) == expected_usd * 100
    assert event["properties"]["model"] == "gpt-4o-mini-2024-07-18"


def test_cost_mode_unpriced_model_sends_tokens(tmp_path: Path, lago: LagoServer) -> None:
    _deliver(tmp_path, lago, "cost", _record("in-house-model-7", "chatcmpl-2"))

    codes = sorted(event["code"] for event in lago.accepted)
    assert codes == ["llm_cached_input_tokens", "llm_input_tokens", "llm_output_tokens"]
    assert all(event.get("precise_total_amount_cents") is None for event in lago.accepted)


def test_both_mode_sends_tokens_and_cost(tmp_path: Path, lago: LagoServer) -> None:
    _deliver(tmp_path, lago, "both", _record("gpt-4o-mini-2024-07-18", "chatcmpl-3"))

    codes = sorted(event["code"] for event in lago.accepted)
    assert codes == [
        "llm_cached_input_tokens",
        "llm_cost",
        "llm_input_tokens",
        "llm_output_tokens",
    ]
    assert len({event["transaction_id"] for event in lago.accepted}) == 4


def test_tokens_mode_is_default(tmp_path: Path, lago: LagoServer) -> None:
    _deliver(tmp_path, lago, "tokens", _record("gpt-4o-mini-2024-07-18", "chatcmpl-4"))

    assert "llm_cost" not in {event["code"] for event in lago.accepted}


def test_invalid_price_mode_raises() -> None:
    with pytest.raises(ConfigurationError, match="price_mode"):
        Meter(price_mode="dollars")  # type: ignore[arg-type]


def test_failing_plan_does_not_block_ledger(
    tmp_path: Path, lago: LagoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tokenwire.meter as meter_module

    real_plan = meter_module.plan_delivery

    def plan_or_fail(record: UsageRecord, **options: object) -> object:
        if record.response_id == "chatcmpl-bad":
            raise RuntimeError("bug in event building")
        return real_plan(record, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(meter_module, "plan_delivery", plan_or_fail)
    good = _record("gpt-4o-mini-2024-07-18", "chatcmpl-good")
    bad = _record("gpt-4o-mini-2024-07-18", "chatcmpl-bad")

    _deliver(tmp_path, lago, "tokens", bad, good)

    assert len(lago.accepted) == 3
    from tokenwire.delivery.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    statuses = ledger.delivery_summary().records_by_delivery
    ledger.close()
    assert statuses.get("plan_failed") == 1
    assert statuses.get("queued") == 1
