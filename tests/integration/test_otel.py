"""OpenTelemetry export: exact metrics for a mixed OpenAI and Anthropic workload.

Records are made by the real SDKs through metered clients and written by a
real `Meter` to a SQLite ledger. They reach the exporter through the meter's
record observers, and the SDK's `InMemoryMetricReader` collects the export.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import msgspec
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import tokenwire
from tokenwire.delivery import otel
from tokenwire.meter import add_record_observer, remove_record_observer
from tokenwire.usage import UsageRecord

MESSAGES: Any = [{"role": "user", "content": "hi"}]

OPENAI_CACHED_CHAT = {
    "id": "chatcmpl-otel",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 1200,  # 1024 of them read from the cache, 176 fresh
        "completion_tokens": 50,
        "total_tokens": 1250,
        "prompt_tokens_details": {"cached_tokens": 1024},
    },
}
ANTHROPIC_CACHED_MESSAGE = {
    "id": "msg_otel",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 30,  # fresh input, cache reads and writes excluded
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 500,
        "output_tokens": 70,
    },
}
OPENAI_RATE_LIMITED = {"error": {"type": "rate_limit_error", "message": "slow down"}}

OPENAI_CALLS = 3
ANTHROPIC_CALLS = 2


def _respond(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/chat/completions"):
        if b"rate-limited" in request.content:
            return httpx2.Response(429, json=OPENAI_RATE_LIMITED)
        return httpx2.Response(200, json=OPENAI_CACHED_CHAT)
    return httpx2.Response(200, json=ANTHROPIC_CACHED_MESSAGE)


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    yield reader
    otel.disable_otel()


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[tokenwire.Meter]:
    meter = tokenwire.Meter(ledger=tmp_path / "ledger.sqlite3")
    yield meter
    meter.shutdown(deliver=False)


def _run_workload(meter: tokenwire.Meter) -> None:
    """Three cached OpenAI chats for sub_a, two cached Anthropic messages for sub_b, one 429."""
    http_client = tokenwire.MeteredClient(transport=httpx2.MockTransport(_respond), meter=meter)
    openai_client = openai.OpenAI(api_key="test", http_client=http_client, max_retries=0)
    anthropic_client = anthropic.Anthropic(api_key="test", http_client=http_client, max_retries=0)

    with tokenwire.attribute(subscription="sub_a", feature="search", user="u1"):
        for _ in range(OPENAI_CALLS):
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            openai_client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "rate-limited"}]
            )
    with tokenwire.attribute(subscription="sub_b", feature="chat", user="u2"):
        for _ in range(ANTHROPIC_CALLS):
            anthropic_client.messages.create(
                model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
            )
    meter.flush(deliver=False)


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:  # nothing was ever recorded through this reader's provider
        return []
    found = [
        metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == "tokenwire"
        for metric in scope.metrics
        if metric.name == name
    ]
    if not found:
        return []
    [metric] = found
    return list(metric.data.data_points)


def _by(points: list[Any], *keys: str) -> dict[tuple[Any, ...], Any]:
    table: dict[tuple[Any, ...], Any] = {}
    for point in points:
        key = tuple(point.attributes.get(name) for name in keys)
        assert key not in table, f"two points for {key}"
        table[key] = point
    return table


OPENAI_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "tokenwire.subscription": "sub_a",
}
ANTHROPIC_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.response.model": "claude-sonnet-4-5-20250929",
    "tokenwire.subscription": "sub_b",
}


def test_token_usage_histogram_exact(reader: InMemoryMetricReader, meter: tokenwire.Meter) -> None:
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)

    _run_workload(meter)

    points = _by(
        _points(reader, "gen_ai.client.token.usage"), "gen_ai.provider.name", "gen_ai.token.type"
    )
    # Input counts every input token: fresh, cache reads and cache writes.
    expected = {
        ("openai", "input"): (OPENAI_CALLS, OPENAI_CALLS * 1200, 1200, 1200),
        ("openai", "output"): (OPENAI_CALLS, OPENAI_CALLS * 50, 50, 50),
        ("anthropic", "input"): (ANTHROPIC_CALLS, ANTHROPIC_CALLS * 2530, 2530, 2530),
        ("anthropic", "output"): (ANTHROPIC_CALLS, ANTHROPIC_CALLS * 70, 70, 70),
    }
    assert {key: (p.count, p.sum, p.min, p.max) for key, p in points.items()} == expected
    for (provider, token_type), point in points.items():
        base = OPENAI_ATTRIBUTES if provider == "openai" else ANTHROPIC_ATTRIBUTES
        assert dict(point.attributes) == {**base, "gen_ai.token.type": token_type}
        assert list(point.explicit_bounds) == [
            1,
            4,
            16,
            64,
            256,
            1024,
            4096,
            16384,
            65536,
            262144,
            1048576,
            4194304,
            16777216,
            67108864,
        ]
    # 1200 and 2530 fall in the (1024, 4096] bucket, 50 and 70 in (16, 64] and (64, 256].
    assert points["openai", "input"].bucket_counts[6] == OPENAI_CALLS
    assert points["anthropic", "output"].bucket_counts[4] == ANTHROPIC_CALLS


def test_billing_class_counter_exact(reader: InMemoryMetricReader, meter: tokenwire.Meter) -> None:
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)

    _run_workload(meter)

    points = _by(
        _points(reader, "tokenwire.token.usage"), "gen_ai.provider.name", "tokenwire.token.class"
    )
    assert {key: point.value for key, point in points.items()} == {
        ("openai", "input"): OPENAI_CALLS * 176,
        ("openai", "cached_input"): OPENAI_CALLS * 1024,
        ("openai", "output"): OPENAI_CALLS * 50,
        ("anthropic", "input"): ANTHROPIC_CALLS * 30,
        ("anthropic", "cached_input"): ANTHROPIC_CALLS * 2000,
        ("anthropic", "cache_creation"): ANTHROPIC_CALLS * 500,
        ("anthropic", "output"): ANTHROPIC_CALLS * 70,
    }
    assert all(point.attributes.get("tokenwire.subscription") for point in points.values())


def test_records_counter_by_state(reader: InMemoryMetricReader, meter: tokenwire.Meter) -> None:
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)

    _run_workload(meter)

    points = _by(
        _points(reader, "tokenwire.records"), "gen_ai.provider.name", "tokenwire.record.state"
    )
    assert {key: point.value for key, point in points.items()} == {
        ("openai", "complete"): OPENAI_CALLS,
        ("openai", "error"): 1,
        ("anthropic", "complete"): ANTHROPIC_CALLS,
    }
    assert _points(reader, "tokenwire.cost") == []


class FlatCost(msgspec.Struct, frozen=True):
    cost_usd: Decimal
    priced: bool


def _flat_price(record: UsageRecord) -> FlatCost | None:
    """Price OpenAI records at 0.25 USD each; Anthropic ones have an unpriced class."""
    if record.provider == "openai":
        return FlatCost(Decimal("0.25"), priced=True)
    return FlatCost(Decimal("0.125"), priced=False)


def test_cost_counter_from_pricing(reader: InMemoryMetricReader, meter: tokenwire.Meter) -> None:
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=_flat_price)

    _run_workload(meter)

    points = _by(
        _points(reader, "tokenwire.cost"), "gen_ai.provider.name", "tokenwire.cost.complete"
    )
    assert {key: point.value for key, point in points.items()} == {
        ("openai", True): OPENAI_CALLS * 0.25,
        ("anthropic", False): ANTHROPIC_CALLS * 0.125,
    }


def test_default_pricing_matches_pricer(
    reader: InMemoryMetricReader, meter: tokenwire.Meter
) -> None:
    pricing = pytest.importorskip("tokenwire.pricing")
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]))
    records: list[UsageRecord] = []
    add_record_observer(records.extend)
    try:
        _run_workload(meter)
    finally:
        remove_record_observer(records.extend)

    expected: dict[str, float] = {}
    for record in records:
        if record.billable:
            cost = pricing.Pricer().price(record)
            expected[record.provider] = expected.get(record.provider, 0.0) + float(cost.cost_usd)
    points = _points(reader, "tokenwire.cost")
    exported = {point.attributes["gen_ai.provider.name"]: point.value for point in points}
    assert exported == pytest.approx(expected)
    assert expected["openai"] > 0


def test_dimensions_exported_only_when_named(
    reader: InMemoryMetricReader, meter: tokenwire.Meter
) -> None:
    tokenwire.enable_otel(
        MeterProvider(metric_readers=[reader]), pricing=None, dimensions=["feature"]
    )

    _run_workload(meter)

    points = _points(reader, "tokenwire.records")
    assert {point.attributes.get("tokenwire.dimension.feature") for point in points} == {
        "search",
        "chat",
    }
    assert all("tokenwire.dimension.user" not in point.attributes for point in points)


def test_enable_twice_counts_once(reader: InMemoryMetricReader, meter: tokenwire.Meter) -> None:
    stale = InMemoryMetricReader()
    tokenwire.enable_otel(MeterProvider(metric_readers=[stale]), pricing=None)
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)

    _run_workload(meter)

    assert sum(point.value for point in _points(reader, "tokenwire.records")) == 6
    assert _points(stale, "tokenwire.records") == []


def test_disable_stops_export(reader: InMemoryMetricReader, meter: tokenwire.Meter) -> None:
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)
    tokenwire.disable_otel()

    _run_workload(meter)

    assert _points(reader, "tokenwire.records") == []


def test_failing_observer_keeps_ledger_and_export(
    reader: InMemoryMetricReader, meter: tokenwire.Meter
) -> None:
    def broken(records: Any) -> None:
        raise RuntimeError("observer bug")

    add_record_observer(broken)
    try:
        tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)
        _run_workload(meter)
    finally:
        remove_record_observer(broken)

    assert sum(point.value for point in _points(reader, "tokenwire.records")) == 6
    assert meter.statistics().written == 6


def test_pricing_fault_keeps_token_metrics(
    reader: InMemoryMetricReader, meter: tokenwire.Meter
) -> None:
    def broken_price(record: UsageRecord) -> Any:
        raise ValueError("price table unreadable")

    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=broken_price)

    _run_workload(meter)

    histogram = _points(reader, "gen_ai.client.token.usage")
    assert sum(point.count for point in histogram) == 2 * (OPENAI_CALLS + ANTHROPIC_CALLS)
    assert _points(reader, "tokenwire.cost") == []


def test_sync_durability_exports_in_producing_thread(
    reader: InMemoryMetricReader, tmp_path: Path
) -> None:
    meter = tokenwire.Meter(ledger=tmp_path / "sync.sqlite3", durability="sync")
    tokenwire.enable_otel(MeterProvider(metric_readers=[reader]), pricing=None)
    try:
        _run_workload(meter)
    finally:
        meter.shutdown(deliver=False)

    points = _by(
        _points(reader, "tokenwire.records"), "gen_ai.provider.name", "tokenwire.record.state"
    )
    assert {key: point.value for key, point in points.items()} == {
        ("openai", "complete"): OPENAI_CALLS,
        ("openai", "error"): 1,
        ("anthropic", "complete"): ANTHROPIC_CALLS,
    }


def test_missing_opentelemetry_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)

    with pytest.raises(tokenwire.ConfigurationError, match=r"tokenwire\[otel\]"):
        tokenwire.enable_otel(pricing=None)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        pytest.param("openai", "openai", id="openai"),
        pytest.param("azure_openai", "azure.ai.openai", id="azure"),
        pytest.param("bedrock", "aws.bedrock", id="bedrock"),
        pytest.param("gemini", "gcp.gemini", id="gemini"),
        pytest.param("xai", "x_ai", id="xai"),
        pytest.param("openrouter", "openrouter", id="unlisted"),
    ],
)
def test_provider_name_mapping(provider: str, expected: str) -> None:
    assert otel.provider_name(provider) == expected
