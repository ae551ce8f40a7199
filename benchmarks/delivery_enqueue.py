"""Enqueue cost of `Meter.emit`: what a transport pays per record on the caller's thread.

Three measurements on a real meter (writer thread running, temporary ledger,
no Lago key, so nothing but the ring and the ledger is involved):

- single calls: each `emit()` timed alone with `perf_counter_ns`, net of the
  timer's own cost (median, p99, max);
- amortized: 1,000 `emit()` calls timed together, divided by 1,000;
- contended: the single-call timing while three other threads emit about
  4,000 records/s each.

Records are built before timing and emitted in bursts of `BURST_RECORDS`.
The ring is drained (untimed) between bursts, so no record takes the
direct-write path of a full ring. Goal: median at most 1 µs.

    python -m benchmarks.delivery_enqueue [--records 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import percentile, summarize_latencies, timer_overhead_ns
from tokenwire import Meter, Usage, UsageRecord

BURST_RECORDS = 1_000
"""Records emitted back to back between drains; far below the ring's soft bound."""
CONTENDING_THREADS = 3
CONTENDING_RECORDS_PER_MS = 4
"""Per contending thread: about 4,000 records/s each, within what the writer sustains."""


def make_records(count: int) -> list[UsageRecord]:
    return [
        UsageRecord(
            provider="openai",
            api="chat_completions",
            state="complete",
            usage=Usage(input_tokens=400 + index % 7, cached_input_tokens=1024, output_tokens=96),
            response_id=f"chatcmpl-{index:010d}",
            response_model="gpt-4o-mini-2024-07-18",
            subscription="sub_bench",
            dimensions={"feature": "search"},
        )
        for index in range(count)
    ]


def single_calls(meter: Meter, records: list[UsageRecord]) -> list[int]:
    clock = time.perf_counter_ns
    emit = meter.emit
    latencies = []
    for start in range(0, len(records), BURST_RECORDS):
        for record in records[start : start + BURST_RECORDS]:
            began = clock()
            emit(record)
            latencies.append(clock() - began)
        meter.flush(deliver=False)
    return latencies


def amortized_ns(meter: Meter, records: list[UsageRecord]) -> list[float]:
    clock = time.perf_counter_ns
    emit = meter.emit
    per_record = []
    for start in range(0, len(records), BURST_RECORDS):
        burst = records[start : start + BURST_RECORDS]
        began = clock()
        for record in burst:
            emit(record)
        per_record.append((clock() - began) / len(burst))
        meter.flush(deliver=False)
    return per_record


def contended(meter: Meter, records: list[UsageRecord]) -> list[int]:
    stop = threading.Event()
    spare = make_records(CONTENDING_RECORDS_PER_MS)

    def other_producer() -> None:
        while not stop.is_set():
            for record in spare:
                meter.emit(record)
            time.sleep(0.001)

    others = [threading.Thread(target=other_producer) for _ in range(CONTENDING_THREADS)]
    for thread in others:
        thread.start()
    try:
        return single_calls(meter, records)
    finally:
        stop.set()
        for thread in others:
            thread.join()


def run(record_count: int) -> dict[str, Any]:
    overhead = timer_overhead_ns()
    results: dict[str, Any] = {"timer_overhead_ns": overhead}
    with tempfile.TemporaryDirectory(prefix="tokenwire-bench-") as folder:
        meter = Meter(ledger=Path(folder) / "ledger.sqlite3")
        meter.emit(make_records(1)[0])  # starts the writer thread, opens the ledger
        meter.flush(deliver=False)
        try:
            results["single"] = summarize_latencies(
                single_calls(meter, make_records(record_count)), overhead
            )
            amortized = amortized_ns(meter, make_records(record_count))
            results["amortized"] = {
                "median_us": percentile(amortized, 0.5) / 1e3,
                "p99_us": percentile(amortized, 0.99) / 1e3,
            }
            results["contended"] = summarize_latencies(
                contended(meter, make_records(record_count // 4)), overhead
            )
            results["statistics"] = meter.statistics()
        finally:
            meter.shutdown(timeout_s=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    results = run(args.records)
    print(f"timer overhead: {results['timer_overhead_ns']:.0f} ns (subtracted)")
    for name in ("single", "contended"):
        part = results[name]
        print(
            f"{name:>10}: median {part['median_us'] * 1000:.0f} ns, p90 "
            f"{part['p90_us'] * 1000:.0f} ns, p99 {part['p99_us'] * 1000:.0f} ns, "
            f"max {part['max_us']:.1f} µs ({part['samples']:,} calls)"
        )
    amortized = results["amortized"]
    print(
        f" amortized: median {amortized['median_us'] * 1000:.0f} ns, p99 "
        f"{amortized['p99_us'] * 1000:.0f} ns per record (bursts of {BURST_RECORDS:,})"
    )
    statistics = results["statistics"]
    print(f"spilled: {statistics.spilled}, ring high-water: {statistics.ring_high_water:,}")
    median_ns = results["single"]["median_us"] * 1000
    print(f"goal median <= 1000 ns: {'met' if median_ns <= 1000 else 'MISSED'}")


if __name__ == "__main__":
    main()
