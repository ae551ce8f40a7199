"""The meter: configuration, the ring and its soft bound, durability modes, flush results."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import msgspec
import pytest

import tokenwire.meter as meter_module
from tokenwire import Meter
from tokenwire.delivery.ledger import Ledger
from tokenwire.errors import ConfigurationError
from tokenwire.meter import MAX_BATCH_RECORDS, configure, get_meter
from tokenwire.testing.lago_server import DEFAULT_API_KEY, LagoServer
from tokenwire.usage import Usage, UsageRecord

SECRET_KEY = "lago-secret-key-xyz"


def make_record(index: int = 0, **overrides: object) -> UsageRecord:
    fields: dict[str, object] = {
        "provider": "openai",
        "api": "chat_completions",
        "state": "complete",
        "usage": Usage(input_tokens=100, output_tokens=index + 1),
        "subscription": "sub_a",
    }
    fields.update(overrides)
    return UsageRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def lago() -> Iterator[LagoServer]:
    with LagoServer() as server:
        yield server


@pytest.fixture
def process_meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore the process-wide meter after a test replaces it."""
    monkeypatch.setattr(meter_module, "_meter", None)
    yield
    current = meter_module._meter
    if current is not None:
        current.shutdown(timeout_s=2)


def stored_ids(path: Path) -> set[str]:
    ledger = Ledger(path)
    try:
        return {record.record_id for record in ledger.records()}
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"durability": "fast"}, "durability", id="durability"),
        pytest.param({"flush_interval_s": 0}, "flush_interval_s", id="interval-zero"),
        pytest.param({"flush_interval_s": -1.0}, "flush_interval_s", id="interval-negative"),
        pytest.param({"flush_interval_s": math.nan}, "flush_interval_s", id="interval-nan"),
        pytest.param({"max_ring_records": 0}, "max_ring_records", id="ring-zero"),
        pytest.param({"default_subscription": " "}, "default_subscription", id="default-blank"),
        pytest.param(
            {"lago_api_key": "k", "lago_url": "lago.example.com"}, "lago_url", id="url-no-scheme"
        ),
        pytest.param({"lago_url": "ftp://lago.example.com"}, "lago_url", id="url-without-key"),
        pytest.param({"lago_api_key": "a b"}, "lago_api_key", id="key-with-space"),
        pytest.param(
            {"lago_api_key": "k", "lago_timeout_s": -3}, "lago_timeout_s", id="timeout-negative"
        ),
        pytest.param({"lago_api_key": "k", "lease_s": 10}, "lease_s", id="lease-too-short"),
        pytest.param(
            {"retry_initial_s": 5, "retry_max_s": 1}, "retry_max_s", id="retry-max-below-initial"
        ),
        pytest.param({"retry_initial_s": -1}, "retry_initial_s", id="retry-negative"),
    ],
)
def test_meter_configuration_error_names_setting(options: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Meter(**options)  # type: ignore[arg-type]

    assert setting in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        pytest.param("TOKENWIRE_LAGO_URL", "not a url", "TOKENWIRE_LAGO_URL", id="url"),
        pytest.param("TOKENWIRE_LAGO_API_KEY", "two words", "TOKENWIRE_LAGO_API_KEY", id="key"),
        pytest.param("LAGO_API_KEY", "two words", "LAGO_API_KEY", id="fallback-key"),
        pytest.param("TOKENWIRE_DURABILITY", "eventually", "TOKENWIRE_DURABILITY", id="durability"),
    ],
)
def test_configure_environment_error_names_variable(
    monkeypatch: pytest.MonkeyPatch, process_meter: None, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as caught:
        configure()

    assert named in str(caught.value)


def test_get_meter_invalid_environment_keeps_records(
    monkeypatch: pytest.MonkeyPatch,
    process_meter: None,
    ledger_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TOKENWIRE_LAGO_URL", "not a url")
    monkeypatch.setenv("TOKENWIRE_LEDGER", str(ledger_path))

    with caplog.at_level(logging.ERROR, logger="tokenwire"):
        meter = get_meter()
    record = make_record()
    meter.emit(record)
    meter.flush(timeout_s=5)

    assert not meter.lago_enabled
    assert "TOKENWIRE_LAGO_URL" in caplog.text
    assert stored_ids(ledger_path) == {record.record_id}


def test_configure_reads_lago_environment(
    monkeypatch: pytest.MonkeyPatch, process_meter: None, ledger_path: Path
) -> None:
    monkeypatch.setenv("LAGO_API_KEY", SECRET_KEY)
    monkeypatch.setenv("TOKENWIRE_LAGO_URL", "https://lago.example.com/api/v1")
    monkeypatch.setenv("TOKENWIRE_DEFAULT_SUBSCRIPTION", "sub_default")

    meter = configure(ledger=ledger_path)
    plan = meter.plan(make_record(subscription=None))

    assert meter.lago_enabled
    assert {event.external_subscription_id for event in plan.events} == {"sub_default"}


def test_emit_default_mode_writes_within_interval(ledger_path: Path) -> None:
    interval_s = 0.05
    meter = Meter(ledger=ledger_path, flush_interval_s=interval_s)
    meter.emit(make_record())  # starts the writer thread
    assert meter.wait_for_written(1, timeout_s=5)

    started = time.monotonic()
    meter.emit(make_record(1))
    assert meter.wait_for_written(2, timeout_s=5)
    elapsed = time.monotonic() - started
    meter.shutdown(timeout_s=2)

    # The documented window: one flush interval plus the write of one batch.
    assert elapsed <= interval_s + 0.25


def test_emit_full_batch_wakes_writer(ledger_path: Path) -> None:
    meter = Meter(ledger=ledger_path, flush_interval_s=3600)

    for index in range(MAX_BATCH_RECORDS):
        meter.emit(make_record(index))
    written = meter.wait_for_written(MAX_BATCH_RECORDS, timeout_s=10)
    meter.shutdown(timeout_s=2)

    assert written, "a full batch did not wake the writer before its interval"


def test_emit_sync_mode_writes_before_return(ledger_path: Path) -> None:
    meter = Meter(ledger=ledger_path, durability="sync", flush_interval_s=3600)
    record = make_record()

    meter.emit(record)
    stored = stored_ids(ledger_path)
    statistics = meter.statistics()
    meter.shutdown(timeout_s=2)

    assert stored == {record.record_id}
    assert statistics.written == 1
    assert statistics.spilled == 0


def test_emit_over_ring_bound_spills_to_ledger(
    ledger_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meter = Meter(ledger=ledger_path, flush_interval_s=3600, max_ring_records=3)
    records = [make_record(index) for index in range(10)]

    with caplog.at_level(logging.WARNING, logger="tokenwire"):
        for record in records:
            meter.emit(record)
    before = meter.statistics()
    spilled_ids = stored_ids(ledger_path)
    result = meter.shutdown(timeout_s=5)

    assert before.produced == 10
    assert before.pending_records == 3
    assert before.spilled == 7
    assert before.ring_high_water == 3
    assert spilled_ids == {record.record_id for record in records[3:]}
    assert result.written == 3
    assert stored_ids(ledger_path) == {record.record_id for record in records}
    assert caplog.text.count("max_ring_records=3") == 1


def test_emit_ledger_failure_keeps_records(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the ledger's folder should be")
    meter = Meter(ledger=blocked / "ledger.sqlite3", durability="sync")
    records = [make_record(index) for index in range(3)]

    for record in records:
        meter.emit(record)
    result = meter.flush(timeout_s=0.5)
    statistics = meter.statistics()

    assert result.pending_records == 3
    assert statistics.produced == 3
    assert statistics.written == 0
    # Let the writer thread, which retries every interval, end with the test.
    meter._ring.clear()
    meter.shutdown(timeout_s=2)


def test_flush_without_lago(ledger_path: Path) -> None:
    meter = Meter(ledger=ledger_path)
    meter.emit(make_record())
    meter.emit(make_record(1, subscription=None))

    result = meter.shutdown(timeout_s=5)

    assert result.written == 2
    assert result.pending == 0
    assert result.delivered == 0
    ledger = Ledger(ledger_path)
    assert ledger.delivery_summary().records_by_delivery == {"ledger_only": 1, "unattributed": 1}
    ledger.close()


def test_flush_delivers_and_counts(ledger_path: Path, lago: LagoServer) -> None:
    meter = Meter(ledger=ledger_path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url)
    for index in range(30):
        meter.emit(make_record(index))
    meter.emit(make_record(99, subscription=None))
    meter.emit(make_record(98, state="error"))

    result = meter.shutdown(timeout_s=10)
    statistics = meter.statistics()

    assert result.written == 32
    assert result.delivered == 60
    assert result.pending == 0
    assert result.blocked is None
    assert statistics.delivered == 60
    assert len(lago.accepted_ids()) == 60
    assert {event["external_subscription_id"] for event in lago.accepted} == {"sub_a"}


def test_flush_twice_sends_nothing_new(ledger_path: Path, lago: LagoServer) -> None:
    meter = Meter(ledger=ledger_path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url)
    meter.emit(make_record())

    first = meter.flush(timeout_s=10)
    requests = len(lago.requests)
    second = meter.flush(timeout_s=10)
    meter.shutdown(timeout_s=2)

    assert first.delivered == 2
    assert second.delivered == 0
    assert len(lago.requests) == requests


def test_flush_auth_rejected_pauses_and_keeps(
    ledger_path: Path, lago: LagoServer, caplog: pytest.LogCaptureFixture
) -> None:
    lago.api_key = "the-right-key"
    meter = Meter(ledger=ledger_path, lago_api_key=SECRET_KEY, lago_url=lago.url)
    meter.emit(make_record())

    with caplog.at_level(logging.INFO):
        first = meter.flush(timeout_s=10)
        second = meter.flush(timeout_s=10)
    requests = len(lago.requests)
    meter.shutdown(timeout_s=2)

    assert first.blocked is not None and "401" in first.blocked
    assert first.pending_events == 2
    assert second.pending_events == 2
    assert requests == 1, "a paused sender must not retry at once"
    assert [r.levelname for r in caplog.records if "paused" in r.getMessage()] == ["ERROR"]
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY.encode() not in ledger_path.read_bytes()


def test_statistics_frozen(ledger_path: Path) -> None:
    statistics = Meter(ledger=ledger_path).statistics()

    with pytest.raises(AttributeError):
        statistics.produced = 5  # type: ignore[misc]
    assert msgspec.structs.asdict(statistics)["produced"] == 0


def test_emit_after_shutdown_writes_directly(ledger_path: Path) -> None:
    meter = Meter(ledger=ledger_path)
    meter.emit(make_record())
    meter.shutdown(timeout_s=5)
    late = make_record(1)

    meter.emit(late)

    assert late.record_id in stored_ids(ledger_path)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_starts_with_empty_ring(ledger_path: Path) -> None:
    meter = Meter(ledger=ledger_path, flush_interval_s=3600)
    parent_records = [make_record(index) for index in range(5)]
    for record in parent_records:
        meter.emit(record)
    child_record = make_record(99)
    reader, writer = os.pipe()

    pid = os.fork()
    if pid == 0:  # the child: report, write one record, leave without atexit
        try:
            inherited = meter.statistics().pending_records
            meter.emit(child_record)
            result = meter.flush(timeout_s=5)
            os.write(writer, f"{inherited} {result.written}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    _, status = os.waitpid(pid, 0)
    report = os.read(reader, 100).decode()
    os.close(reader)
    parent_result = meter.shutdown(timeout_s=5)

    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "0 1", "the child inherited the parent's ring or lost its record"
    assert parent_result.written == 5
    assert stored_ids(ledger_path) == {r.record_id for r in [*parent_records, child_record]}


def test_lago_client_is_not_metered() -> None:
    from tokenwire.delivery.lago import LagoClient, LagoConfig
    from tokenwire.transports.httpx import MeteredTransport

    client = LagoClient(LagoConfig(api_key="k"))._http()

    assert type(client) is httpx2.Client
    assert not isinstance(client._transport, MeteredTransport)
    assert not any(isinstance(t, MeteredTransport) for t in client._mounts.values())
    client.close()
