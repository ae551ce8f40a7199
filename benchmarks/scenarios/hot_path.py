"""The hot path (`Meter.emit`, one record) and the delivery path (sustained events/s to Lago).

`Meter.emit` is timed call by call with `perf_counter_ns`, net of the timer's
own cost, on a real meter whose writer thread drains the ring to a temporary
ledger. Records arrive in bursts of `BURST_RECORDS`, and the ring is drained
between bursts (untimed), as when an application makes many calls at once and
then fewer. One burst never reaches the ring's soft bound, so no record takes
the direct-write path that only an overloaded writer triggers.

The delivery scenario sends records through a meter configured with a Lago API
key to `tokenwire.testing.lago_server` running in another process, and reports
the events Lago accepted per second of wall time, from the first `emit()` until
`flush()` returns with everything delivered.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

from ..core import Scenario, ScenarioSkipped, Settings, temporary_meter
from ..measure import summarize_latencies, timer_overhead_ns

__all__ = ["SCENARIOS"]

BURST_RECORDS = 200
"""Records emitted back to back before the ring is drained: well under its soft bound."""
MAX_RING_BACKLOG = 4_000
"""Records the delivery scenario lets wait in the ring, under the default soft bound (10,000)."""


def _record(index: int) -> Any:
    from tokenwire import Usage, UsageRecord

    return UsageRecord(
        provider="openai",
        api="chat_completions",
        state="complete",
        usage=Usage(
            input_tokens=408 + index % 7,
            cached_input_tokens=1024,
            output_tokens=96 + index % 13,
            total_tokens=1528 + index % 7 + index % 13,
        ),
        response_id=f"chatcmpl-bench{index:012d}",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        http_status=200,
        stream=False,
        subscription="sub_bench",
        dimensions={"feature": "search"},
    )


def _emit_latencies(settings: Settings, *, build: bool) -> dict[str, Any]:
    samples = settings.scaled(50_000, 1_000)
    clock = time.perf_counter_ns
    overhead = timer_overhead_ns(settings.scaled(20_000, 1_000))
    latencies: list[int] = []
    with temporary_meter() as meter:
        emit = meter.emit
        # Warm up: the first emit starts the writer thread and opens the ledger.
        emit(_record(-1))
        meter.flush(deliver=False)
        for burst_start in range(0, samples, BURST_RECORDS):
            burst = range(burst_start, min(samples, burst_start + BURST_RECORDS))
            if build:
                for index in burst:
                    start = clock()
                    emit(_record(index))
                    latencies.append(clock() - start)
            else:
                records = [_record(index) for index in burst]
                for record in records:
                    start = clock()
                    emit(record)
                    latencies.append(clock() - start)
            meter.flush(deliver=False)
        statistics = meter.statistics()
    result = summarize_latencies(latencies, overhead)
    result["written"] = statistics.written
    result["spilled"] = statistics.spilled
    return result


def run_emit(settings: Settings) -> dict[str, Any]:
    return _emit_latencies(settings, build=False)


def run_build_and_emit(settings: Settings) -> dict[str, Any]:
    return _emit_latencies(settings, build=True)


def run_delivery(settings: Settings) -> dict[str, Any]:
    if importlib.util.find_spec("tokenwire.testing.lago_server") is None:
        raise ScenarioSkipped("tokenwire.testing.lago_server does not exist yet")
    import tokenwire
    from tokenwire.testing.lago_server import LagoServerProcess

    record_count = settings.scaled(20_000, 300)
    records = [_record(index) for index in range(record_count)]
    with LagoServerProcess() as server, tempfile.TemporaryDirectory() as folder:
        meter = tokenwire.Meter(
            ledger=Path(folder) / "ledger.sqlite3",
            lago_api_key=server.api_key,
            lago_url=server.url,
        )
        try:
            start = time.perf_counter()
            for burst_start in range(0, record_count, BURST_RECORDS):
                # Stay under the ring's soft bound, as a steady producer does.
                meter.wait_for_written(burst_start - MAX_RING_BACKLOG, timeout_s=60.0)
                for record in records[burst_start : burst_start + BURST_RECORDS]:
                    meter.emit(record)
            flushed = meter.flush(timeout_s=300.0)
            elapsed = time.perf_counter() - start
        finally:
            meter.shutdown()
        accepted = server.statistics()["accepted"]
    if flushed.pending or flushed.blocked:
        raise RuntimeError(
            f"delivery did not finish: {flushed.pending} pending, blocked: {flushed.blocked}"
        )
    return {
        "records": record_count,
        "events": accepted,
        "seconds": elapsed,
        "events_per_s": accepted / elapsed,
        "records_per_s": record_count / elapsed,
    }


SCENARIOS = [
    Scenario(
        "emit",
        "latency",
        "Meter.emit of a ready UsageRecord (ring append)",
        run_emit,
        group="hot-path",
    ),
    Scenario(
        "build-and-emit",
        "latency",
        "UsageRecord(...) built (id, timestamp) and emitted",
        run_build_and_emit,
        group="hot-path",
    ),
    Scenario(
        "delivery",
        "flusher",
        "records to the loopback Lago server: ledger writes + batches of 100 events",
        run_delivery,
        group="hot-path",
    ),
]
