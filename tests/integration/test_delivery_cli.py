"""The delivery commands, `tokenwire flush`, `dead-letters`, `report` and `demo`, against Lago."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tokenwire import Meter
from tokenwire.cli import main
from tokenwire.delivery.ledger import Ledger
from tokenwire.testing.lago_server import DEFAULT_API_KEY, LagoServer
from tokenwire.usage import Usage, UsageRecord


def make_record(index: int, **overrides: object) -> UsageRecord:
    fields: dict[str, object] = {
        "provider": "openai",
        "api": "responses",
        "state": "complete",
        "usage": Usage(input_tokens=50, output_tokens=index + 1),
        "response_id": f"resp_{index}",
        "subscription": "sub_cli",
    }
    fields.update(overrides)
    return UsageRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def lago() -> Iterator[LagoServer]:
    with LagoServer() as server:
        yield server


@pytest.fixture
def queued_ledger(tmp_path: Path) -> Path:
    """A ledger with 3 records (6 events) queued and never sent: the sender's key is wrong."""
    path = tmp_path / "ledger.sqlite3"
    meter = Meter(ledger=path, lago_api_key="unused", lago_url="http://127.0.0.1:9")
    for index in range(3):
        meter.emit(make_record(index))
    meter.flush(timeout_s=5, deliver=False)
    meter.shutdown(timeout_s=1, deliver=False)
    return path


@pytest.fixture
def lago_env(monkeypatch: pytest.MonkeyPatch, lago: LagoServer) -> LagoServer:
    monkeypatch.setenv("TOKENWIRE_LAGO_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("TOKENWIRE_LAGO_URL", lago.url)
    return lago


def test_flush_command_delivers(
    queued_ledger: Path, lago_env: LagoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["flush", "--ledger", str(queued_ledger), "--timeout-s", "10"])

    assert status == 0
    assert "Delivered 6 event(s)" in capsys.readouterr().out
    assert len(lago_env.accepted_ids()) == 6


def test_flush_command_lago_down_exits_1(
    queued_ledger: Path, lago_env: LagoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    lago_env.go_down()

    status = main(["flush", "--ledger", str(queued_ledger), "--timeout-s", "0.3"])

    assert status == 1
    assert "6 pending" in capsys.readouterr().out


def test_flush_command_rejected_key_exits_1(
    queued_ledger: Path, lago_env: LagoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    lago_env.api_key = "another-key"

    status = main(["flush", "--ledger", str(queued_ledger), "--timeout-s", "10"])

    captured = capsys.readouterr()
    assert status == 1
    assert "delivery blocked" in captured.err
    assert "401" in captured.err
    assert DEFAULT_API_KEY not in captured.out + captured.err


def test_flush_command_without_key(
    queued_ledger: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOKENWIRE_LAGO_API_KEY", raising=False)
    monkeypatch.delenv("LAGO_API_KEY", raising=False)

    status = main(["flush", "--ledger", str(queued_ledger)])

    assert status == 1
    assert "no Lago API key" in capsys.readouterr().err


def test_flush_command_nothing_pending(tmp_path: Path, lago_env: LagoServer) -> None:
    path = tmp_path / "empty.sqlite3"
    Ledger(path).close()

    assert main(["flush", "--ledger", str(path)]) == 0


def test_flush_command_no_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["flush", "--ledger", str(tmp_path / "missing.sqlite3")])

    assert status == 2
    assert "no ledger at" in capsys.readouterr().err


def test_flush_command_invalid_url(
    queued_ledger: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKENWIRE_LAGO_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("TOKENWIRE_LAGO_URL", "lago.example.com")

    status = main(["flush", "--ledger", str(queued_ledger)])

    assert status == 2
    assert "TOKENWIRE_LAGO_URL" in capsys.readouterr().err


def test_dead_letters_list_and_requeue(
    queued_ledger: Path,
    lago_env: LagoServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    lago_env.poison(lambda event: event["properties"]["value"] == 2)
    main(["flush", "--ledger", str(queued_ledger), "--timeout-s", "10"])
    capsys.readouterr()

    listed = main(["dead-letters", "--ledger", str(queued_ledger)])
    listing = capsys.readouterr().out
    ledger = Ledger(queued_ledger)
    [letter] = ledger.dead_letters()
    ledger.close()
    lago_env.clear_faults()
    requeued = main(["dead-letters", "--ledger", str(queued_ledger), "--requeue", str(letter.id)])
    delivered = main(["flush", "--ledger", str(queued_ledger), "--timeout-s", "10"])

    assert listed == 0
    assert "1 dead letter(s)" in listing
    assert letter.transaction_id in listing
    assert "value_is_not_valid_number" in listing
    assert requeued == 0
    assert delivered == 0
    assert len(lago_env.accepted_ids()) == 6


def test_dead_letters_requeue_unknown_id(
    queued_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["dead-letters", "--ledger", str(queued_ledger), "--requeue", "41"])

    assert status == 1
    assert "no dead letter waiting with id [41]" in capsys.readouterr().err


def test_report_shows_delivery_status(
    queued_ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")

    status = main(["report", "--ledger", str(queued_ledger)])

    out = capsys.readouterr().out
    assert status == 0
    assert "Delivery to Lago" in out
    assert "events queued for Lago" in out
    assert "events: pending" in out


def test_demo_prints_valid_payload_and_sends_nothing(lago: LagoServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "TOKENWIRE_LAGO_API_KEY": DEFAULT_API_KEY,
        "TOKENWIRE_LAGO_URL": lago.url,
    }

    done = subprocess.run(
        [sys.executable, "-m", "tokenwire.cli", "demo", "--ledger", str(tmp_path / "d.sqlite3")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    start = done.stdout.index("{", done.stdout.index("POST /api/v1/events/batch"))
    end = done.stdout.index("Ledger:")
    payload = json.loads(done.stdout[start:end])

    assert done.returncode == 0, done.stderr
    assert lago.requests == [], "the demo sent something to Lago"
    assert {event["external_subscription_id"] for event in payload["events"]} == {
        "sub_acme",
        "sub_globex",
    }
    with httpx2.Client(trust_env=False) as client:
        answer = client.post(
            f"{lago.url}/api/v1/events/batch",
            json=payload,
            headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
        )
    assert answer.status_code == 200, answer.text
