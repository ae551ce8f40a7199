"""Delivery under real faults: outages, poison events, SIGKILL mid-send, fork with threads.

Every test runs the real meter against `LagoServer` on loopback and checks
the set of events Lago accepted against the set the produced records must
bill: nothing lost, nothing accepted twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tokenwire import Meter
from tokenwire.delivery.events import EventCodes, plan_delivery
from tokenwire.delivery.ledger import Ledger
from tokenwire.delivery.sender import MAX_IN_FLIGHT
from tokenwire.testing.lago_server import DEFAULT_API_KEY, LagoServer
from tokenwire.usage import Usage, UsageRecord

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses fork and SIGKILL")

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).with_name("apps.py")
FAST_RETRY: dict[str, float] = {"retry_initial_s": 0.01, "retry_max_s": 0.05}


class ProducedLine(msgspec.Struct):
    record: UsageRecord
    at: float


def make_record(index: int, **overrides: object) -> UsageRecord:
    fields: dict[str, object] = {
        "provider": "anthropic",
        "api": "messages",
        "state": "complete",
        "usage": Usage(input_tokens=20 + index, output_tokens=5),
        "response_id": f"msg_{index:04d}",
        "subscription": f"sub_{index % 4}",
    }
    fields.update(overrides)
    return UsageRecord(**fields)  # type: ignore[arg-type]


def expected_events(records: list[UsageRecord]) -> set[tuple[str, str]]:
    """Return the (subscription, transaction id) pairs these records bill."""
    keys = set()
    for record in records:
        plan = plan_delivery(
            record, codes=EventCodes(), default_subscription=None, lago_enabled=True
        )
        keys.update((event.external_subscription_id, event.transaction_id) for event in plan.events)
    return keys


def ledger_records(path: Path) -> list[UsageRecord]:
    ledger = Ledger(path)
    try:
        return list(ledger.records())
    finally:
        ledger.close()


def child_env(lago: LagoServer) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO_ROOT / "src"), env.get("PYTHONPATH")) if part
    )
    env["TOKENWIRE_LAGO_API_KEY"] = DEFAULT_API_KEY
    env["TOKENWIRE_LAGO_URL"] = lago.url
    return env


def assert_exactly_once(lago: LagoServer, expected: set[tuple[str, str]]) -> None:
    accepted = lago.accepted_ids()
    assert len(accepted) == len(set(accepted)), "an event was accepted twice"
    missing = expected - set(accepted)
    unexpected = set(accepted) - expected
    assert not missing, f"{len(missing)} events never delivered"
    assert not unexpected, f"{len(unexpected)} events delivered that no record bills"


@pytest.fixture
def lago() -> Iterator[LagoServer]:
    with LagoServer() as server:
        yield server


def test_outage_then_errors_then_rate_limit(tmp_path: Path, lago: LagoServer) -> None:
    meter = Meter(
        ledger=tmp_path / "ledger.sqlite3",
        lago_api_key=DEFAULT_API_KEY,
        lago_url=lago.url,
        flush_interval_s=0.02,
        **FAST_RETRY,
    )
    records = [make_record(index) for index in range(300)]
    lago.go_down()

    for record in records:
        meter.emit(record)
    while_down = meter.flush(timeout_s=0.3)

    lago.fail_next(3, status=500)
    lago.fail_next(1, status=429, headers={"Retry-After": "1"})
    lago.come_up()
    healthy = meter.flush(timeout_s=20)
    statistics = meter.statistics()
    meter.shutdown(timeout_s=2)

    requests = lago.requests
    statuses = [request.status for request in requests]
    rate_limited = statuses.index(429)
    assert while_down.delivered == 0
    assert while_down.pending_events == 600
    assert statuses[: rate_limited + 1] == [500, 500, 500, 429]
    assert set(statuses[rate_limited + 1 :]) == {200}
    # A request already in flight when the 429 came back may still arrive;
    # none may be sent until Retry-After has passed.
    too_soon = [
        request
        for request in requests[rate_limited + 1 :]
        if request.at - requests[rate_limited].at < 1.0
    ]
    assert len(too_soon) <= MAX_IN_FLIGHT - 1, "Retry-After was not honoured"
    assert healthy.pending == 0
    assert statistics.delivered == 600
    assert statistics.retried >= 6  # at least 2 refused connections, 3 errors, 1 rate limit
    assert_exactly_once(lago, expected_events(records))


def test_poison_event_dead_lettered(tmp_path: Path, lago: LagoServer) -> None:
    path = tmp_path / "ledger.sqlite3"
    meter = Meter(ledger=path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url, **FAST_RETRY)
    records = [make_record(index, usage=Usage(output_tokens=index + 1)) for index in range(250)]
    poison = records[137]
    [poison_key] = expected_events([poison])
    lago.poison(lambda event: event["transaction_id"] == poison_key[1])

    for record in records:
        meter.emit(record)
    result = meter.flush(timeout_s=20)
    ledger = Ledger(path)
    [letter] = ledger.dead_letters()
    ledger.close()
    meter.shutdown(timeout_s=2)

    assert result.delivered == 249
    assert result.dead_lettered == 1
    assert result.dead_letters == 1
    assert result.pending == 0
    assert letter.transaction_id == poison_key[1]
    assert letter.record_id == poison.record_id
    assert "value_is_not_valid_number" in letter.error
    assert letter.http_status == 422
    assert_exactly_once(lago, expected_events(records) - {poison_key})


def test_poison_requeued_after_fix(tmp_path: Path, lago: LagoServer) -> None:
    path = tmp_path / "ledger.sqlite3"
    meter = Meter(ledger=path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url, **FAST_RETRY)
    record = make_record(1)
    lago.poison(lambda event: event["code"] == "llm_output_tokens")
    meter.emit(record)
    meter.flush(timeout_s=10)

    lago.clear_faults()
    ledger = Ledger(path)
    ledger.requeue([letter.id for letter in ledger.dead_letters()])
    ledger.close()
    result = meter.flush(timeout_s=10)
    meter.shutdown(timeout_s=2)

    assert result.delivered == 1
    assert result.dead_letters == 0
    assert_exactly_once(lago, expected_events([record]))


def test_smaller_server_batch_limit_adapts(tmp_path: Path) -> None:
    records = [make_record(index) for index in range(60)]

    with LagoServer(max_batch_events=30) as small:
        meter = Meter(
            ledger=tmp_path / "ledger.sqlite3",
            lago_api_key=DEFAULT_API_KEY,
            lago_url=small.url,
            **FAST_RETRY,
        )
        for record in records:
            meter.emit(record)
        result = meter.shutdown(timeout_s=20)
        sizes = {request.events for request in small.requests if request.status == 200}

    assert result.delivered == 120
    assert result.dead_letters == 0
    assert max(sizes) <= 30
    assert_exactly_once(small, expected_events(records))


def test_unindexed_rejection_halves_batch(tmp_path: Path, lago: LagoServer) -> None:
    records = [make_record(index) for index in range(20)]
    lago.fail_next(1, status=400)
    meter = Meter(
        ledger=tmp_path / "ledger.sqlite3",
        lago_api_key=DEFAULT_API_KEY,
        lago_url=lago.url,
        **FAST_RETRY,
    )

    for record in records:
        meter.emit(record)
    result = meter.shutdown(timeout_s=20)

    assert [request.events for request in lago.requests[1:3]] == [20, 20]
    assert result.dead_letters == 0
    assert_exactly_once(lago, expected_events(records))


def test_unindexed_rejection_of_one_event(tmp_path: Path, lago: LagoServer) -> None:
    path = tmp_path / "ledger.sqlite3"
    record = make_record(1, usage=Usage(output_tokens=9))
    lago.fail_next(1, status=400)
    meter = Meter(ledger=path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url, **FAST_RETRY)

    meter.emit(record)
    result = meter.shutdown(timeout_s=10)
    ledger = Ledger(path)
    [letter] = ledger.dead_letters()
    ledger.close()

    assert result.dead_lettered == 1
    assert letter.http_status == 400
    assert letter.error.startswith("HTTP 400")
    assert lago.accepted_ids() == []


def test_delivered_elsewhere_counts_as_delivered(tmp_path: Path, lago: LagoServer) -> None:
    records = [make_record(index) for index in range(40)]
    first = Meter(ledger=tmp_path / "a.sqlite3", lago_api_key=DEFAULT_API_KEY, lago_url=lago.url)
    for record in records[:25]:
        first.emit(record)
    first.shutdown(timeout_s=10)

    second = Meter(ledger=tmp_path / "b.sqlite3", lago_api_key=DEFAULT_API_KEY, lago_url=lago.url)
    for record in records:
        second.emit(record)
    result = second.shutdown(timeout_s=10)
    statistics = second.statistics()

    assert result.delivered == 80
    assert statistics.duplicates == 50
    assert result.pending == 0
    assert_exactly_once(lago, expected_events(records))


def test_two_senders_one_ledger_no_double_send(tmp_path: Path, lago: LagoServer) -> None:
    path = tmp_path / "ledger.sqlite3"
    lago.set_delay(0.002)  # long enough for the two senders' passes to overlap
    meters = [
        Meter(ledger=path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url, **FAST_RETRY)
        for _ in range(2)
    ]
    records = [make_record(index) for index in range(600)]
    for index, record in enumerate(records):
        meters[index % 2].emit(record)

    flushed: list[Any] = [None, None]
    threads = [
        threading.Thread(target=lambda n=n: flushed.__setitem__(n, meters[n].flush(20)))
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statistics = [meter.statistics() for meter in meters]
    for meter in meters:
        meter.shutdown(timeout_s=2)

    assert [result.pending for result in flushed] == [0, 0]
    assert sum(s.delivered for s in statistics) == 1200
    assert lago.duplicates_rejected == 0
    assert_exactly_once(lago, expected_events(records))


def read_lines(process: subprocess.Popen[bytes], into: list[ProducedLine]) -> threading.Thread:
    decoder = msgspec.json.Decoder(ProducedLine)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.endswith(b"\n"):  # a line cut by the kill is not a produced record
                into.append(decoder.decode(line))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def kill_mid_send(
    tmp_path: Path, lago: LagoServer, durability: str, flush_interval_s: float
) -> tuple[list[ProducedLine], float, Path, int]:
    """Run a producer, SIGKILL it while a batch is in flight; return what it had produced."""
    path = tmp_path / "ledger.sqlite3"
    lago.set_delay(0.3, after_processing=True)  # stored, but the response comes late
    process = subprocess.Popen(
        [
            sys.executable,
            str(APPS),
            "produce",
            str(path),
            lago.url,
            durability,
            str(flush_interval_s),
        ],
        stdout=subprocess.PIPE,
        env=child_env(lago),
    )
    produced: list[ProducedLine] = []
    reader = read_lines(process, produced)
    try:
        assert lago.wait_for_received(3, timeout_s=30), "the producer never sent three batches"
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    reader.join(10)
    assert process.returncode == -signal.SIGKILL

    ledger = Ledger(path)
    sent_before = len(ledger.events(status="sent"))
    ledger.close()
    lago.clear_faults()
    return produced, killed_at, path, sent_before


def recover(lago: LagoServer, path: Path) -> None:
    """Deliver what the killed process left, from a new process on the same ledger."""
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenwire.cli",
            "flush",
            "--ledger",
            str(path),
            "--timeout-s",
            "30",
        ],
        env=child_env(lago),
        capture_output=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_sigkill_mid_send_sync_loses_nothing(tmp_path: Path, lago: LagoServer) -> None:
    produced, _, path, sent_before = kill_mid_send(tmp_path, lago, "sync", 0.05)
    accepted_before = len(lago.accepted_ids())

    recover(lago, path)
    stored = ledger_records(path)

    assert len(produced) > 0
    assert {line.record.record_id for line in produced} <= {r.record_id for r in stored}
    # Lago stored some batches whose response never reached the killed process.
    # The new process resent those, and Lago reported them as duplicates.
    assert lago.duplicates_rejected == accepted_before - sent_before
    assert_exactly_once(lago, expected_events(stored))
    assert expected_events([line.record for line in produced]) <= set(lago.accepted_ids())


def test_sigkill_mid_send_default_loss_within_window(tmp_path: Path, lago: LagoServer) -> None:
    flush_interval_s = 0.1
    produced, killed_at, path, sent_before = kill_mid_send(
        tmp_path, lago, "default", flush_interval_s
    )
    accepted_before = len(lago.accepted_ids())

    recover(lago, path)
    stored = ledger_records(path)
    stored_ids = {record.record_id for record in stored}
    lost = [line for line in produced if line.record.record_id not in stored_ids]
    oldest_lost_s = max((killed_at - line.at for line in lost), default=0.0)

    assert len(produced) > len(lost)
    # The window is one flush interval plus the write of one batch; the margin
    # covers scheduling on a loaded machine.
    assert oldest_lost_s <= flush_interval_s + 0.5, (
        f"lost {len(lost)} records, the oldest produced {oldest_lost_s:.3f} s before the kill"
    )
    assert lago.duplicates_rejected == accepted_before - sent_before
    assert_exactly_once(lago, expected_events(stored))


def test_fork_threads_asyncio_no_loss(tmp_path: Path, lago: LagoServer) -> None:
    path = tmp_path / "ledger.sqlite3"
    out_dir = tmp_path / "produced"
    out_dir.mkdir()

    finished = subprocess.run(
        [sys.executable, str(APPS), "fork-mix", str(path), lago.url, str(out_dir)],
        env=child_env(lago),
        capture_output=True,
        timeout=60,
    )

    assert finished.returncode == 0, finished.stderr.decode()
    files = sorted(out_dir.glob("produced-*.jsonl"))
    decoder = msgspec.json.Decoder(UsageRecord)
    produced = [decoder.decode(line) for file in files for line in file.read_bytes().splitlines()]
    expected_count = 50 + 3 * 150 + 8 * 100 + 4 * 50
    stored: dict[str, Any] = {record.record_id: record for record in ledger_records(path)}
    ledger = Ledger(path)
    pending = ledger.pending_count()
    ledger.close()

    assert len(files) == 4, "every process writes its produced records"
    assert len(produced) == expected_count
    assert {record.record_id for record in produced} == set(stored)
    assert pending == 0
    assert lago.duplicates_rejected == 0, "two senders sent the same event"
    assert_exactly_once(lago, expected_events(produced))
