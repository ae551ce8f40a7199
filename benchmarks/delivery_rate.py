"""Sustained delivery rate: Lago events accepted per second by the loopback server.

The server (`tokenwire.testing.lago_server`) runs in its own process, as Lago
would, and validates and stores every event. Two measurements:

- drain: the ledger already contains the records (written untimed); the time is
  from `flush()` to its return with nothing pending. This is the sender alone:
  ledger claims, batches of 100, HTTP, marking events sent.
- end to end: a producer thread emits the records as fast as the ring's soft
  bound lets it while the writer and sender run; the time is from the first
  `emit()` until `flush()` returns with nothing pending.

Each record bills 3 events (input, cached input, output). After each run the
server's counts are checked: accepted equals distinct equals expected, so
every event arrived exactly once. Goal: at least 50,000 events/s.

    python -m benchmarks.delivery_rate [--records 30000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from tokenwire import Meter, Usage, UsageRecord
from tokenwire.testing.lago_server import LagoServerProcess

EVENTS_PER_RECORD = 3


def make_records(count: int, tag: str) -> list[UsageRecord]:
    return [
        UsageRecord(
            provider="openai",
            api="chat_completions",
            state="complete",
            usage=Usage(input_tokens=400 + index % 7, cached_input_tokens=1024, output_tokens=96),
            response_id=f"chatcmpl-{tag}-{index:010d}",
            response_model="gpt-4o-mini-2024-07-18",
            subscription=f"sub_{index % 10}",
            dimensions={"feature": "search"},
        )
        for index in range(count)
    ]


def _check(server: LagoServerProcess, expected: int, before: int) -> int:
    counts = server.statistics()
    accepted = counts["accepted"] - before
    if accepted != expected or counts["distinct"] != counts["accepted"]:
        raise RuntimeError(f"expected {expected} events exactly once, server counts {counts}")
    return accepted


def drain(server: LagoServerProcess, folder: Path, records: list[UsageRecord]) -> dict[str, Any]:
    meter = Meter(ledger=folder / "drain.sqlite3", lago_api_key=server.api_key, lago_url=server.url)
    meter.ledger.write(records, meter.plan)
    before = server.statistics()["accepted"]
    started = time.perf_counter()
    result = meter.flush(timeout_s=600)
    elapsed = time.perf_counter() - started
    meter.shutdown(timeout_s=10)
    if result.pending:
        raise RuntimeError(f"drain did not finish: {result}")
    accepted = _check(server, len(records) * EVENTS_PER_RECORD, before)
    return {"events": accepted, "seconds": elapsed, "events_per_s": accepted / elapsed}


def end_to_end(
    server: LagoServerProcess, folder: Path, records: list[UsageRecord]
) -> dict[str, Any]:
    meter = Meter(ledger=folder / "e2e.sqlite3", lago_api_key=server.api_key, lago_url=server.url)
    before = server.statistics()["accepted"]
    started = time.perf_counter()
    for record in records:
        meter.emit(record)
    produced = time.perf_counter() - started
    result = meter.flush(timeout_s=600)
    elapsed = time.perf_counter() - started
    statistics = meter.statistics()
    meter.shutdown(timeout_s=10)
    if result.pending:
        raise RuntimeError(f"delivery did not finish: {result}")
    accepted = _check(server, len(records) * EVENTS_PER_RECORD, before)
    return {
        "events": accepted,
        "seconds": elapsed,
        "produce_seconds": produced,
        "events_per_s": accepted / elapsed,
        "records_per_s": len(records) / elapsed,
        "spilled": statistics.spilled,
        "ring_high_water": statistics.ring_high_water,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with LagoServerProcess() as server, tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for round_number in range(args.rounds):
            tag = f"r{round_number}"
            drained = drain(server, folder, make_records(args.records, f"{tag}d"))
            both = end_to_end(server, folder, make_records(args.records, f"{tag}e"))
            print(
                f"round {round_number + 1}: drain {drained['events_per_s']:,.0f} events/s "
                f"({drained['events']:,} in {drained['seconds']:.2f} s); end to end "
                f"{both['events_per_s']:,.0f} events/s = {both['records_per_s']:,.0f} records/s "
                f"({both['seconds']:.2f} s, producer done after {both['produce_seconds']:.2f} s, "
                f"spilled {both['spilled']:,}, ring high-water {both['ring_high_water']:,})"
            )
            (folder / "drain.sqlite3").unlink()
            (folder / "e2e.sqlite3").unlink()
    print("goal: drain >= 50,000 events/s")


if __name__ == "__main__":
    main()
