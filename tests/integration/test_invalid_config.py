"""An invalid environment never loses usage: records are held, then queued once it is fixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenwire.meter as meter_module
from tokenwire import Meter, Usage, UsageRecord
from tokenwire.delivery.ledger import Ledger
from tokenwire.testing.lago_server import DEFAULT_API_KEY, LagoServer


@pytest.fixture
def fresh_meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(meter_module, "_meter", None)
    yield
    meter = meter_module._meter
    if meter is not None:
        meter.shutdown(timeout_s=5, deliver=False)
    monkeypatch.setattr(meter_module, "_meter", None)


def _record(index: int) -> UsageRecord:
    return UsageRecord(
        provider="anthropic",
        api="messages",
        state="complete",
        usage=Usage(input_tokens=10 + index, output_tokens=3),
        response_id=f"msg_held_{index}",
        subscription="sub_acme",
    )


@pytest.mark.usefixtures("fresh_meter")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKENWIRE_LAGO_URL", "not a url"),
        ("TOKENWIRE_DURABILITY", "fast"),
        ("TOKENWIRE_PRICE_MODE", "bogus"),
    ],
)
def test_invalid_environment_holds_then_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("TOKENWIRE_LEDGER", str(ledger_path))
    monkeypatch.setenv("TOKENWIRE_LAGO_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv(name, value)

    held_meter = meter_module.get_meter()
    for index in range(3):
        held_meter.emit(_record(index))
    result = held_meter.shutdown(timeout_s=5)

    assert result.blocked is not None
    assert name in result.blocked
    ledger = Ledger(ledger_path)
    assert ledger.delivery_summary().records_by_delivery == {"held": 3}
    ledger.close()

    with LagoServer() as lago:
        fixed = Meter(ledger=ledger_path, lago_api_key=DEFAULT_API_KEY, lago_url=lago.url)
        delivered = fixed.shutdown(timeout_s=10)

        assert delivered.pending == 0
        assert len(lago.accepted) == 6  # two events (input, output) per record
    ledger = Ledger(ledger_path)
    assert ledger.delivery_summary().records_by_delivery == {"queued": 3}
    ledger.close()
