"""Lago cost events, cost reports, and the `prices`, `report` and `replay --cost` commands."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tokenwire.cli import main, replay_rows
from tokenwire.delivery.events import transaction_id
from tokenwire.delivery.ledger import Ledger
from tokenwire.pricing import (
    Markup,
    MarkupPolicy,
    Pricer,
    PricingConfig,
    UnpricedRecordError,
    cost_event,
    cost_report,
    model_rates,
)
from tokenwire.usage import Usage, UsageRecord

MTOK = Decimal(1_000_000)
NOV_5 = dt.datetime(2025, 11, 5, 10, 0, tzinfo=dt.UTC)
NOV_6 = dt.datetime(2025, 11, 6, 10, 0, tzinfo=dt.UTC)

# OpenAI standard rates, https://platform.openai.com/docs/pricing.
GPT_4O_INPUT, GPT_4O_OUTPUT = Decimal("2.50"), Decimal("10.00")
GPT_4O_MINI_INPUT, GPT_4O_MINI_OUTPUT = Decimal("0.15"), Decimal("0.60")
# Anthropic, https://platform.claude.com/docs/en/about-claude/pricing.
SONNET_4_INPUT, SONNET_4_OUTPUT = Decimal(3), Decimal(15)

MARKUP_20 = PricingConfig(markup=MarkupPolicy(default=Markup.percent(20)))


def make_record(
    *,
    model: str = "gpt-4o",
    provider: str = "openai",
    subscription: str | None = "sub_acme",
    feature: str | None = "search",
    at: dt.datetime = NOV_6,
    input_tokens: int = 10_000,
    output_tokens: int = 1_000,
    state: str = "complete",
    response_id: str | None = "chatcmpl-1",
) -> UsageRecord:
    return UsageRecord(
        provider=provider,
        api="chat_completions",
        state=state,  # type: ignore[arg-type]
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        created_at=at,
        response_model=model,
        response_id=response_id,
        subscription=subscription,
        dimensions={} if feature is None else {"feature": feature},
    )


# --- Lago cost event -----------------------------------------------------------------------


def test_cost_event_carries_billed_cents_as_decimal_string() -> None:
    record = make_record()
    cost = Pricer(MARKUP_20).price(record)

    event = cost_event(record, cost)

    # Cost: 10,000 x 2.50 + 1,000 x 10 per million = 0.035 USD; billed +20% = 0.042 USD.
    provider_cost = (10_000 * GPT_4O_INPUT + 1_000 * GPT_4O_OUTPUT) / MTOK
    assert provider_cost == Decimal("0.035")
    assert event["precise_total_amount_cents"] == "4.2"
    assert event["code"] == "llm_cost"
    assert event["external_subscription_id"] == "sub_acme"
    assert event["transaction_id"] == transaction_id(record, "llm_cost")
    assert event["timestamp"] == NOV_6.timestamp()
    properties = event["properties"]
    assert properties["cost_usd"] == "0.035"
    assert properties["billed_usd"] == "0.042"
    assert properties["tokens"] == "11000"
    assert properties["input_tokens"] == "10000"
    assert properties["input_usd"] == "0.025"
    assert properties["output_usd"] == "0.01"
    assert properties["markup"] == "+20%"
    assert properties["feature"] == "search"
    assert properties["model"] == "gpt-4o"


def test_cost_event_tiny_amount_in_plain_notation() -> None:
    record = make_record(input_tokens=1, output_tokens=0)
    cost = Pricer().price(record)

    event = cost_event(record, cost)

    # 1 token x 2.50 USD per million = 0.0000025 USD = 0.00025 cents.
    assert event["precise_total_amount_cents"] == "0.00025"


def test_cost_event_id_stable_across_resends() -> None:
    record = make_record(response_id=None)
    pricer = Pricer()

    first = cost_event(record, pricer.price(record))
    resent = cost_event(record, pricer.price(record))
    other_code = cost_event(record, pricer.price(record), code="llm_cost_eu")

    assert first["transaction_id"] == resent["transaction_id"]
    assert first["timestamp"] == resent["timestamp"]
    assert other_code["transaction_id"] != first["transaction_id"]


def test_cost_event_dimension_cannot_overwrite_amounts() -> None:
    record = make_record()
    record.dimensions["cost_usd"] = "0"

    event = cost_event(record, Pricer().price(record))

    assert event["properties"]["cost_usd"] == "0.035"


def test_cost_event_rejects_unpriced_record() -> None:
    record = make_record(model="acme-private-1")

    with pytest.raises(UnpricedRecordError, match="send its token events instead"):
        cost_event(record, Pricer().price(record))


def test_cost_event_rejects_unattributed_record() -> None:
    record = make_record(subscription=None)

    with pytest.raises(ValueError, match="unattributed"):
        cost_event(record, Pricer().price(record))


def test_cost_event_rejects_cost_of_other_record() -> None:
    first, second = make_record(), make_record()

    with pytest.raises(ValueError, match="price this record"):
        cost_event(second, Pricer().price(first))


# --- cost report ---------------------------------------------------------------------------


def report_records() -> list[UsageRecord]:
    return [
        make_record(feature="search", at=NOV_5),
        make_record(feature="search", model="gpt-4o-mini", at=NOV_6),
        make_record(
            feature="chat",
            model="claude-sonnet-4-20250514",
            provider="anthropic",
            subscription="sub_beta",
            at=NOV_6,
        ),
        make_record(feature="chat", model="acme-private-1", at=NOV_6),
        make_record(feature=None, state="error", input_tokens=0, output_tokens=0),
    ]


def test_cost_report_by_feature() -> None:
    report = cost_report(report_records(), "feature", Pricer(MARKUP_20))

    rows = {row.key: row for row in report.rows}
    assert list(rows) == ["chat", "search"]
    gpt_4o = (10_000 * GPT_4O_INPUT + 1_000 * GPT_4O_OUTPUT) / MTOK
    gpt_4o_mini = (10_000 * GPT_4O_MINI_INPUT + 1_000 * GPT_4O_MINI_OUTPUT) / MTOK
    sonnet = (10_000 * SONNET_4_INPUT + 1_000 * SONNET_4_OUTPUT) / MTOK
    assert rows["search"].cost_usd == gpt_4o + gpt_4o_mini
    assert rows["search"].billed_usd == (gpt_4o + gpt_4o_mini) * Decimal("1.2")
    assert rows["search"].margin_usd == (gpt_4o + gpt_4o_mini) * Decimal("0.2")
    assert rows["chat"].cost_usd == sonnet
    assert rows["chat"].records == 2
    assert rows["chat"].input_tokens == 20_000
    assert rows["chat"].unpriced_records == 1


def test_cost_report_lists_unpriced_models() -> None:
    report = cost_report(report_records(), "model", Pricer())

    assert [(item.provider, item.model, item.records) for item in report.unpriced] == [
        ("openai", "acme-private-1", 1)
    ]


def test_cost_report_by_day_and_subscription() -> None:
    by_day = cost_report(report_records(), "day", Pricer())
    by_subscription = cost_report(report_records(), "subscription", Pricer())

    assert [(row.key, row.records) for row in by_day.rows] == [("2025-11-05", 1), ("2025-11-06", 3)]
    assert [row.key for row in by_subscription.rows] == ["sub_acme", "sub_beta"]


def test_cost_report_by_state_counts_every_record() -> None:
    report = cost_report(report_records(), "state", Pricer())

    rows = {row.key: row for row in report.rows}
    gpt_4o = (10_000 * GPT_4O_INPUT + 1_000 * GPT_4O_OUTPUT) / MTOK
    gpt_4o_mini = (10_000 * GPT_4O_MINI_INPUT + 1_000 * GPT_4O_MINI_OUTPUT) / MTOK
    sonnet = (10_000 * SONNET_4_INPUT + 1_000 * SONNET_4_OUTPUT) / MTOK
    assert rows["complete"].records == 4
    assert rows["complete"].cost_usd == gpt_4o + gpt_4o_mini + sonnet
    assert rows["error"].records == 1
    assert rows["error"].cost_usd == 0


# --- commands ------------------------------------------------------------------------------


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.mark.usefixtures("wide_console")
def test_report_command_prints_cost_and_margin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(ledger_path)
    ledger.write(report_records())
    ledger.close()
    prices = tmp_path / "prices.toml"
    prices.write_text("[markup]\npercent = 20\n", encoding="utf-8")

    status = main(
        ["report", "--ledger", str(ledger_path), "--by", "feature", "--prices", str(prices)]
    )

    output = capsys.readouterr().out
    assert status == 0
    search = next(line for line in output.splitlines() if "search" in line)
    # gpt-4o 0.035 + gpt-4o-mini 0.0021 = 0.0371 cost; billed +20% = 0.04452; margin 0.00742.
    assert "0.0371" in search
    assert "0.04452" in search
    assert "0.00742" in search
    assert "acme-private-1" in output


@pytest.mark.usefixtures("wide_console")
def test_prices_command_shows_rates_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["prices", "claude-sonnet-4-5", "--provider", "anthropic", "--date", "2025-11-06"]
    )

    output = capsys.readouterr().out
    assert status == 0
    assert "3 (6 above 200,000 input tokens)" in output
    assert "Source: genai-prices" in output
    assert "cache_write_1h" in output


def test_model_rates_finds_provider_by_model() -> None:
    rates = model_rates("gpt-4o", at=NOV_6)

    assert rates.provider == "openai"
    assert rates.card.rates["input"].usd == GPT_4O_INPUT
    assert rates.missing == ("cache_write", "cache_write_1h")


def test_model_rates_unknown_model_has_reason() -> None:
    rates = model_rates("acme-private-1", at=NOV_6)

    assert rates.card.unpriced_reason is not None
    assert "matches no provider" in rates.card.unpriced_reason


@pytest.mark.usefixtures("wide_console")
def test_prices_command_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["prices", "acme-private-1", "--provider", "openai"])

    assert status == 1
    assert "[[prices]]" in capsys.readouterr().err


def test_prices_command_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text("[[prices]]\nmodel = 'm'\n", encoding="utf-8")

    status = main(["prices", "gpt-4o", "--prices", str(prices)])

    assert status == 2
    assert "prices[0] must set either price keys" in capsys.readouterr().err


PRICED_RESPONSE = {
    "id": "chatcmpl-9",
    "model": "gpt-4o-mini-2024-07-18",
    "usage": {"prompt_tokens": 1_000, "completion_tokens": 100, "total_tokens": 1_100},
}
UNPRICED_RESPONSE = {
    "id": "chatcmpl-10",
    "model": "acme-private-1",
    "usage": {"prompt_tokens": 5, "completion_tokens": 1},
}


def interaction_yaml(request: dict[str, object], response: dict[str, object]) -> str:
    """Return one vcrpy interaction whose bodies are the JSON of `request` and `response`."""
    return (
        "- request:\n"
        f"    body: '{json.dumps(request)}'\n"
        "    headers:\n      Content-Type:\n      - application/json\n"
        "    method: POST\n"
        "    uri: https://api.openai.com/v1/chat/completions\n"
        "  response:\n"
        f"    body:\n      string: '{json.dumps(response)}'\n"
        "    headers:\n      Content-Type:\n      - application/json\n"
        "    status:\n      code: 200\n      message: OK\n"
    )


CASSETTE = (
    "interactions:\n"
    + interaction_yaml({"model": "gpt-4o-mini", "messages": []}, PRICED_RESPONSE)
    + interaction_yaml({"model": "acme-private-1", "messages": []}, UNPRICED_RESPONSE)
    + "version: 1\n"
)


def test_replay_cost_adds_decimal_string(tmp_path: Path) -> None:
    path = tmp_path / "cassette.yaml"
    path.write_text(CASSETTE, encoding="utf-8")

    rows, errors = replay_rows([str(path)], pricer=Pricer())

    assert errors == []
    # gpt-4o-mini: 1,000 x 0.15 + 100 x 0.60 per million = 0.00021 USD.
    assert rows[0]["cost_usd"] == str((1_000 * GPT_4O_MINI_INPUT + 100 * GPT_4O_MINI_OUTPUT) / MTOK)
    assert rows[0]["cost_usd"] == "0.00021"
    assert rows[0]["cost_unpriced"] == []
    assert rows[1]["cost_usd"] is None
    assert rows[1]["cost_unpriced"] == ["input", "output"]


def test_replay_without_cost_flag_has_no_cost(tmp_path: Path) -> None:
    path = tmp_path / "cassette.yaml"
    path.write_text(CASSETTE, encoding="utf-8")

    rows, _ = replay_rows([str(path)])

    assert "cost_usd" not in rows[0]


def test_replay_command_jsonl_cost(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "cassette.yaml"
    path.write_text(CASSETTE, encoding="utf-8")

    status = main(["replay", str(path), "--format", "jsonl", "--cost"])

    lines = [json.loads(line) for line in capfdbinary.readouterr().out.splitlines()]
    assert status == 0
    assert [line["cost_usd"] for line in lines] == ["0.00021", None]
