"""The ledger as a delivery queue: schema migration, outbox, leases, dead letters."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenwire.delivery.events import DeliveryPlan, EventCodes, plan_delivery
from tokenwire.delivery.ledger import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    Ledger,
    lease_owner_id,
)
from tokenwire.errors import ConfigurationError
from tokenwire.usage import Usage, UsageRecord


def make_record(index: int, **overrides: object) -> UsageRecord:
    fields: dict[str, object] = {
        "provider": "openai",
        "api": "chat_completions",
        "state": "complete",
        "usage": Usage(input_tokens=100 + index, output_tokens=10),
        "response_id": f"chatcmpl-{index}",
        "subscription": "sub_a",
    }
    fields.update(overrides)
    return UsageRecord(**fields)  # type: ignore[arg-type]


def planner(record: UsageRecord) -> DeliveryPlan:
    return plan_delivery(record, codes=EventCodes(), default_subscription=None, lago_enabled=True)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path / "ledger.sqlite3")
    yield opened
    opened.close()


def test_ledger_files_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    ledger.write([make_record(1)], planner)

    modes = {
        name: stat.S_IMODE(path.with_name(name).stat().st_mode)
        for name in (path.name, path.name + "-wal")
    }
    ledger.close()

    assert modes == {path.name: 0o600, path.name + "-wal": 0o600}


def test_migration_from_version_1_keeps_records(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(_MIGRATIONS[1])
    old.execute(
        "INSERT INTO records VALUES ('r1', '2025-01-01T00:00:00+00:00', 'complete', 'openai', "
        "'chat_completions', 'gpt', 'chatcmpl-1', 'sub_a', 5, 0, 0, 3, 0, 8, ?)",
        (
            '{"provider":"openai","api":"chat_completions","state":"complete",'
            '"record_id":"r1","created_at":"2025-01-01T00:00:00Z"}',
        ),
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    ledger = Ledger(path)
    summary = ledger.delivery_summary()
    version = ledger.schema_version()
    [record] = list(ledger.records())
    ledger.close()

    assert version == SCHEMA_VERSION == 2
    assert record.record_id == "r1"
    assert summary.records_by_delivery == {"unplanned": 1}
    assert summary.pending_events == 0


def test_migration_rejects_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.commit()
    newer.close()

    with pytest.raises(ConfigurationError, match="newer than this tokenwire"):
        Ledger(path)


def test_migration_runs_once_with_two_openers(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_ledger() -> None:
        start.wait()
        try:
            Ledger(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_ledger) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Ledger(path).schema_version() == SCHEMA_VERSION


def test_write_queues_events_with_record(ledger: Ledger) -> None:
    written = ledger.write([make_record(1), make_record(2, subscription=None)], planner)

    summary = ledger.delivery_summary()
    events = ledger.events()

    assert written == (2, 2)
    assert summary.records_by_delivery == {"queued": 1, "unattributed": 1}
    assert [(event["code"], event["value"]) for event in events] == [
        ("llm_input_tokens", 101),
        ("llm_output_tokens", 10),
    ]


def test_write_same_record_twice_queues_once(ledger: Ledger) -> None:
    record = make_record(1)

    first = ledger.write([record], planner)
    second = ledger.write([record], planner)

    assert first == (1, 2)
    assert second == (0, 0)
    assert ledger.pending_count() == 2


def test_write_same_response_twice_bills_once(ledger: Ledger) -> None:
    first = make_record(1)
    second = make_record(1)

    written = ledger.write([first, second], planner)

    assert first.record_id != second.record_id
    assert written == (2, 2)
    assert ledger.count() == 2


def test_write_without_planner_queues_nothing(ledger: Ledger) -> None:
    ledger.write([make_record(1)])

    assert ledger.delivery_summary().records_by_delivery == {"unplanned": 1}
    assert ledger.pending_count() == 0


def test_write_rolls_back_whole_batch(ledger: Ledger) -> None:
    def failing(record: UsageRecord) -> DeliveryPlan:
        if record.response_id == "chatcmpl-2":
            raise RuntimeError("planner failed")
        return planner(record)

    with pytest.raises(RuntimeError):
        ledger.write([make_record(1), make_record(2)], failing)

    assert ledger.count() == 0
    assert ledger.pending_count() == 0


def test_claim_leases_are_exclusive(ledger: Ledger) -> None:
    ledger.write([make_record(index) for index in range(5)], planner)

    first = ledger.claim("host/1/a", limit=6, lease_s=60)
    second = ledger.claim("host/2/b", limit=6, lease_s=60)
    third = ledger.claim("host/2/b", limit=6, lease_s=60)

    assert len(first) == 6
    assert len(second) == 4
    assert third == []
    assert {row_id for row_id, _ in first}.isdisjoint(row_id for row_id, _ in second)
    assert [row_id for row_id, _ in first] == sorted(row_id for row_id, _ in first)


def test_claim_expired_lease(ledger: Ledger) -> None:
    ledger.write([make_record(1)], planner)

    first = ledger.claim("host/1/a", limit=10, lease_s=0)
    again = ledger.claim("host/2/b", limit=10, lease_s=60)

    assert len(first) == 2
    assert again == first


def test_claim_releases_exited_process(ledger: Ledger) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead_owner = lease_owner_id("gone").replace(f"/{os.getpid()}/", f"/{child.pid}/")
    ledger.write([make_record(1)], planner)
    ledger.claim(dead_owner, limit=10, lease_s=3600)

    claimed = ledger.claim(lease_owner_id("alive"), limit=10, lease_s=60)

    assert len(claimed) == 2


def test_claim_keeps_live_process_lease(ledger: Ledger) -> None:
    ledger.write([make_record(1)], planner)
    ledger.claim(lease_owner_id("other-sender"), limit=10, lease_s=3600)

    claimed = ledger.claim(lease_owner_id("mine"), limit=10, lease_s=60)

    assert claimed == []


def test_claim_concurrent_connections_disjoint(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    writer = Ledger(path)
    writer.write([make_record(index) for index in range(200)], planner)
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def claim_all(name: str) -> None:
        connection = Ledger(path)
        start.wait()
        ids: list[int] = []
        while rows := connection.claim(f"host/{name}/x", limit=7, lease_s=60):
            ids += [row_id for row_id, _ in rows]
        claimed[name] = ids
        connection.close()

    threads = [threading.Thread(target=claim_all, args=(str(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [row_id for ids in claimed.values() for row_id in ids]
    assert len(every) == 400
    assert len(set(every)) == 400


def test_mark_sent_and_release(ledger: Ledger) -> None:
    ledger.write([make_record(1), make_record(2)], planner)
    owner = "host/1/a"
    rows = ledger.claim(owner, limit=10, lease_s=60)

    sent = ledger.mark_sent([rows[0][0], rows[1][0]])
    released = ledger.release(owner)
    again = ledger.claim("host/2/b", limit=10, lease_s=60)
    summary = ledger.delivery_summary()

    assert sent == 2
    assert released == 2
    assert [row_id for row_id, _ in again] == [rows[2][0], rows[3][0]]
    assert summary.sent_events == 2
    assert summary.pending_events == 2
    assert summary.leased_events == 2
    assert summary.last_sent_at is not None


def test_dead_letter_and_requeue(ledger: Ledger) -> None:
    ledger.write([make_record(1)], planner)
    rows = ledger.claim("host/1/a", limit=10, lease_s=60)

    moved = ledger.dead_letter([(rows[0][0], "HTTP 422 bad value", 422)])
    [letter] = ledger.dead_letters()
    requeued = ledger.requeue([letter.id, 999])
    after = ledger.dead_letters()
    history = ledger.dead_letters(include_requeued=True)

    assert moved == 1
    assert letter.error == "HTTP 422 bad value"
    assert letter.http_status == 422
    assert letter.code == "llm_input_tokens"
    assert letter.value == 101
    assert requeued == [letter.id]
    assert after == []
    assert history[0].requeued_at is not None
    assert ledger.pending_count() == 2
    assert ledger.dead_count() == 0


def test_dead_letter_skips_sent_event(ledger: Ledger) -> None:
    ledger.write([make_record(1)], planner)
    rows = ledger.claim("host/1/a", limit=10, lease_s=60)
    ledger.mark_sent([rows[0][0]])

    moved = ledger.dead_letter([(rows[0][0], "late error", 422)])

    assert moved == 0
    assert ledger.dead_letters() == []
