"""Memory under a producer faster than Lago: bounded by the ring, not by the backlog.

The loopback Lago server runs in its own process and waits `--lago-delay-s`
before responding to each batch, so it accepts at most about
`100 * MAX_IN_FLIGHT / delay` events per second (batches of 100, two in
flight). A producer emits records as fast as it can, several times more than
Lago accepts. The backlog must go to the ledger on
disk, and the process's memory must stay flat: the ring holds at most about
`max_ring_records` records (then producers write to the ledger themselves),
and the sender holds one claim of events.

Runs with two record counts, the second `--scale` times the first, and
prints the peak resident set size (from /proc, Linux only) and the meter's
ring high-water mark, spilled count and backlog for each. Bounded means the
peak does not grow with the count.

    python -m benchmarks.delivery_memory [--records 50000] [--scale 4]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tokenwire import Meter, Usage, UsageRecord
from tokenwire.delivery.sender import MAX_IN_FLIGHT
from tokenwire.testing.lago_server import LagoServerProcess

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MB = 1_000_000


def resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def make_record(index: int) -> UsageRecord:
    return UsageRecord(
        provider="anthropic",
        api="messages",
        state="complete",
        usage=Usage(input_tokens=300 + index % 11, cached_input_tokens=2048, output_tokens=120),
        response_id=f"msg_{index:012d}",
        response_model="claude-sonnet-4-5",
        subscription=f"sub_{index % 50}",
        dimensions={"feature": "chat"},
    )


def run(server: LagoServerProcess, folder: Path, record_count: int) -> dict[str, Any]:
    gc.collect()
    baseline = resident_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, resident_bytes())

    sampler = threading.Thread(target=sample)
    sampler.start()
    meter = Meter(
        ledger=folder / f"memory-{record_count}.sqlite3",
        lago_api_key=server.api_key,
        lago_url=server.url,
    )
    started = time.perf_counter()
    for index in range(record_count):
        meter.emit(make_record(index))
    produce_s = time.perf_counter() - started
    result = meter.flush(timeout_s=0.5)  # Lago is far behind: most events stay queued
    statistics = meter.statistics()
    meter.shutdown(timeout_s=1, deliver=False)
    done.set()
    sampler.join()
    return {
        "records": record_count,
        "records_per_s": record_count / produce_s,
        "peak_growth_mb": (peak - baseline) / MB,
        "peak_mb": peak / MB,
        "ring_high_water": statistics.ring_high_water,
        "spilled": statistics.spilled,
        "delivered": statistics.delivered,
        "pending_events": result.pending_events,
        "pending_records": result.pending_records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--lago-delay-s", type=float, default=0.05)
    args = parser.parse_args()
    with (
        LagoServerProcess(delay_s=args.lago_delay_s) as server,
        tempfile.TemporaryDirectory() as name,
    ):
        run(server, Path(name), 2_000)  # warm-up: imports, SQLite caches, first allocations
        for count in (args.records, args.records * args.scale):
            row = run(server, Path(name), count)
            print(
                f"{row['records']:>9,} records at {row['records_per_s']:,.0f}/s: peak RSS "
                f"{row['peak_mb']:.1f} MB (+{row['peak_growth_mb']:.1f} MB during the run), "
                f"ring high-water {row['ring_high_water']:,}, spilled {row['spilled']:,}; "
                f"after 0.5 s of flush: delivered {row['delivered']:,} events, "
                f"{row['pending_events']:,} queued in the ledger, "
                f"{row['pending_records']:,} records still in memory"
            )
    max_rate = 100 * MAX_IN_FLIGHT / args.lago_delay_s
    print(f"Lago accepts at most about {max_rate:,.0f} events/s here.")


if __name__ == "__main__":
    main()
