"""Interleaved paired timing and the statistics the runner reports (standard library only).

One round times a batch of raw calls and a batch of metered calls back to
back, alternating which goes first, so that machine noise (other processes,
frequency changes, a neighbor's burst) hits both sides of a round alike. The
reported ratio is the median over rounds of metered/raw, the added time the
median of the paired differences, and the spread the 10th and 90th
percentiles of those per-round values.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PairedTiming",
    "interleave",
    "percentile",
    "summarize_latencies",
    "summarize_pairs",
    "timer_overhead_ns",
]


@dataclass
class PairedTiming:
    """Mean nanoseconds per call of each side, one value per round."""

    raw_ns: list[float]
    metered_ns: list[float]
    calls_per_round: int


def _run_batch(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - start) / calls


def interleave(
    raw: Callable[[], object],
    metered: Callable[[], object],
    *,
    rounds: int,
    calls: int,
    warmup_calls: int = 3,
    before_raw: Callable[[], object] | None = None,
    before_metered: Callable[[], object] | None = None,
) -> PairedTiming:
    """Time `rounds` batches of `calls` calls of each side, interleaved.

    `before_raw` and `before_metered` run untimed before each batch of their
    side, for peers that must switch instrumentation on and off globally.
    A garbage collection runs before each round so that one side does not
    pay for the other's garbage. Objects alive at the start are frozen
    (`gc.freeze()`) and never collected: call this once per scenario, not in a loop.
    """
    if rounds < 1 or calls < 1:
        raise ValueError(f"rounds and calls must be at least 1, got {rounds} and {calls}")

    sides = ((raw, before_raw), (metered, before_metered))
    for call, before in sides:
        if before is not None:
            before()
        for _ in range(warmup_calls):
            call()

    # Objects alive now (SDK modules, pydantic models, the clients) move to the
    # permanent generation, so the collection before each round scans only new
    # objects: a full collection of an SDK-laden heap takes 0.2 s.
    gc.collect()
    gc.freeze()

    raw_ns: list[float] = []
    metered_ns: list[float] = []
    for round_index in range(rounds):
        gc.collect()
        order = (0, 1) if round_index % 2 == 0 else (1, 0)
        results = [0.0, 0.0]
        for side in order:
            call, before = sides[side]
            if before is not None:
                before()
            results[side] = _run_batch(call, calls)
        raw_ns.append(results[0])
        metered_ns.append(results[1])
    return PairedTiming(raw_ns, metered_ns, calls)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the `fraction` quantile (0 to 1) of `values`, interpolated linearly."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_pairs(timing: PairedTiming, *, chunks_per_call: int | None = None) -> dict[str, Any]:
    """Return the ratio, added time and spread of a paired timing, in microseconds."""
    ratios = [metered / raw for raw, metered in zip(timing.raw_ns, timing.metered_ns, strict=True)]
    added_ns = [
        metered - raw for raw, metered in zip(timing.raw_ns, timing.metered_ns, strict=True)
    ]
    summary: dict[str, Any] = {
        "rounds": len(ratios),
        "calls_per_round": timing.calls_per_round,
        "raw_us": percentile(timing.raw_ns, 0.5) / 1e3,
        "metered_us": percentile(timing.metered_ns, 0.5) / 1e3,
        "ratio": percentile(ratios, 0.5),
        "ratio_p10": percentile(ratios, 0.1),
        "ratio_p90": percentile(ratios, 0.9),
        "added_us": percentile(added_ns, 0.5) / 1e3,
        "added_us_p10": percentile(added_ns, 0.1) / 1e3,
        "added_us_p90": percentile(added_ns, 0.9) / 1e3,
        "chunks_per_call": chunks_per_call,
        "added_us_per_chunk": None,
    }
    if chunks_per_call:
        summary["added_us_per_chunk"] = summary["added_us"] / chunks_per_call
    return summary


def timer_overhead_ns(samples: int = 20_000) -> float:
    """Return the median cost of two back-to-back `perf_counter_ns()` reads."""
    clock = time.perf_counter_ns
    costs = []
    for _ in range(samples):
        start = clock()
        costs.append(clock() - start)
    return percentile(costs, 0.5)


def summarize_latencies(latencies_ns: Sequence[float], overhead_ns: float) -> dict[str, Any]:
    """Return median, p90, p99 and max of single-call latencies, net of the timer's own cost."""
    return {
        "samples": len(latencies_ns),
        "timer_overhead_ns": overhead_ns,
        "median_us": max(0.0, percentile(latencies_ns, 0.5) - overhead_ns) / 1e3,
        "p90_us": max(0.0, percentile(latencies_ns, 0.9) - overhead_ns) / 1e3,
        "p99_us": max(0.0, percentile(latencies_ns, 0.99) - overhead_ns) / 1e3,
        "max_us": max(0.0, max(latencies_ns) - overhead_ns) / 1e3,
    }
