"""Tables and goals from the runner's JSON document (standard library only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["evaluate_goals", "format_table", "markdown_table", "print_report"]

NON_STREAMING = (
    "openai-chat-2k",
    "openai-chat-50k",
    "anthropic-messages-2k",
    "anthropic-messages-50k",
)
MAIN_STREAM = "openai-stream-500"
MEMORY_FLAT_GROWTH = 1.25
"""Largest peak-memory growth, for a response ten times larger, that still counts as flat."""


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a Markdown table: the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(headers) + " |", "|---" + "|---:" * (len(headers) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _spread(low: float, high: float, digits: int) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _ok(entries: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [entry for entry in entries if entry["kind"] == kind and entry["status"] == "ok"]


def _overhead_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            entry["name"],
            _number(entry["raw_us"]),
            _number(entry["metered_us"]),
            f"{entry['ratio']:.3f} {_spread(entry['ratio_p10'], entry['ratio_p90'], 3)}",
            f"{entry['added_us']:.1f} {_spread(entry['added_us_p10'], entry['added_us_p90'], 1)}",
            _number(entry["added_us_per_chunk"], 2),
            str(entry["chunks_per_call"] or "-"),
        ]
        for entry in entries
    ]


def _throughput_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        speedup = "-"
        if entry.get("speedup") is not None:
            speedup = (
                f"{entry['speedup']:.2f} {_spread(entry['speedup_p10'], entry['speedup_p90'], 2)}"
            )
        rows.append(
            [
                entry["name"],
                _number(entry["tokenwire_mb_s"]),
                _number(entry.get("baseline_mb_s")),
                speedup,
                entry.get("baseline", "-"),
            ]
        )
    return rows


def _peer_rows(document: dict[str, Any]) -> list[list[str]]:
    ours = {entry["name"]: entry for entry in _ok(document["results"], "overhead")}
    rows = []
    for peer in document["peers"]:
        if peer["status"] != "ok":
            continue
        for entry in peer["results"]:
            mine = ours.get(entry["scenario"])
            versus = "-"
            if mine is not None and mine["added_us"] > 0:
                versus = f"{entry['added_us'] / mine['added_us']:.1f}x"
            rows.append(
                [
                    peer["peer"],
                    entry["scenario"],
                    _number(entry["raw_us"]),
                    f"{entry['ratio']:.3f} {_spread(entry['ratio_p10'], entry['ratio_p90'], 3)}",
                    _number(entry["added_us"]),
                    _number(entry["added_us_per_chunk"], 2),
                    _number(mine["added_us"]) if mine else "-",
                    _number(mine["added_us_per_chunk"], 2) if mine else "-",
                    versus,
                ]
            )
    return rows


def print_report(document: dict[str, Any], out: TextIO, *, markdown: bool = False) -> None:
    """Print every table of `document`, then the goals and what was skipped or failed.

    `markdown` prints Markdown tables under `###` headings, for BENCHMARKS.md.
    """
    table = markdown_table if markdown else format_table
    heading = "### " if markdown else ""
    machine = document["machine"]
    out.write(
        f"\n{machine['cpu_model']}, {machine['cpu_count']} CPUs, {machine['python']}; "
        f"load average before {document['load_before']}, after {document['load_after']}\n"
    )
    if document["quick"]:
        out.write("QUICK MODE: a smoke run, the numbers below are not meaningful.\n")
    results = document["results"]

    overhead = _ok(results, "overhead")
    if overhead:
        out.write(
            f"\n{heading}Overhead: metered / raw, interleaved (median [p10, p90] over rounds)\n"
        )
        out.write(
            table(
                [
                    "scenario",
                    "raw us/call",
                    "metered us/call",
                    "ratio",
                    "added us/call",
                    "added us/chunk",
                    "chunks",
                ],
                _overhead_rows(overhead),
            )
            + "\n"
        )

    throughput = _ok(results, "throughput")
    if throughput:
        out.write(f"\n{heading}Decoder throughput (MB/s = 10^6 bytes/s, median over rounds)\n")
        out.write(
            table(
                ["scenario", "tokenwire MB/s", "baseline MB/s", "speedup", "baseline"],
                _throughput_rows(throughput),
            )
            + "\n"
        )

    latency = _ok(results, "latency")
    if latency:
        out.write(f"\n{heading}Hot path: one call, net of the timer's own cost\n")
        out.write(
            table(
                ["scenario", "median us", "p90 us", "p99 us", "max us", "samples", "spilled"],
                [
                    [
                        entry["name"],
                        _number(entry["median_us"], 3),
                        _number(entry["p90_us"], 3),
                        _number(entry["p99_us"], 3),
                        _number(entry["max_us"], 1),
                        str(entry["samples"]),
                        str(entry["spilled"]),
                    ]
                    for entry in latency
                ],
            )
            + "\n"
        )

    for entry in _ok(results, "flusher"):
        out.write(
            f"\nDelivery to the loopback Lago server: {entry['events_per_s']:,.0f} events/s "
            f"({entry['records_per_s']:,.0f} records/s; {entry['events']:,} events of "
            f"{entry['records']:,} records in {entry['seconds']:.2f} s)\n"
        )

    for entry in _ok(results, "memory"):
        out.write(f"\n{heading}Peak memory (tracemalloc) reading a chat stream to the end\n")
        out.write(
            table(
                [
                    "side",
                    f"{entry['small_bytes'] / 1e6:g} MB body",
                    f"{entry['large_bytes'] / 1e6:g} MB body",
                    "growth",
                ],
                [
                    [
                        "raw",
                        f"{entry['raw_small_peak_kib']:.1f} KiB",
                        f"{entry['raw_large_peak_kib']:.1f} KiB",
                        f"{entry['raw_growth']:.2f}x",
                    ],
                    [
                        "metered",
                        f"{entry['metered_small_peak_kib']:.1f} KiB",
                        f"{entry['metered_large_peak_kib']:.1f} KiB",
                        f"{entry['metered_growth']:.2f}x",
                    ],
                ],
            )
            + "\n"
        )

    peer_rows = _peer_rows(document)
    if peer_rows:
        out.write(
            f"\n{heading}Peers: each against its own interleaved raw baseline, same calls and "
            "mock\n"
        )
        out.write(
            table(
                [
                    "peer",
                    "scenario",
                    "raw us/call",
                    "ratio",
                    "added us/call",
                    "added us/chunk",
                    "tokenwire added us/call",
                    "tokenwire us/chunk",
                    "peer / tokenwire",
                ],
                peer_rows,
            )
            + "\n"
        )

    out.write(f"\n{heading}Goals\n")
    out.write(
        table(
            ["goal", "measured", "result"],
            [[goal["goal"], goal["measured"], goal["result"]] for goal in document["goals"]],
        )
        + "\n"
    )

    others = [entry for entry in results if entry["status"] != "ok"]
    others += [
        peer | {"name": f"peer {peer['peer']}"}
        for peer in document["peers"]
        if peer["status"] != "ok"
    ]
    if others:
        out.write(f"\n{heading}Not measured\n")
        for entry in others:
            out.write(f"  {entry['name']}: {entry['status']}: {entry['reason']}\n")


def _goal(goal: str, measured: str, met: bool | None) -> dict[str, Any]:
    results = {None: "not measured", True: "met", False: "MISSED"}
    return {"goal": goal, "measured": measured, "met": met, "result": results[met]}


def evaluate_goals(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare the results with the suite's goals; a goal without data is 'not measured'."""
    ok = {entry["name"]: entry for entry in document["results"] if entry["status"] == "ok"}
    goals = []

    ratios = {name: ok[name]["ratio"] for name in NON_STREAMING if name in ok}
    goals.append(
        _goal(
            "non-streaming metered/raw <= 1.01 (mock)",
            ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()) or "-",
            all(ratio <= 1.01 for ratio in ratios.values()) if ratios else None,
        )
    )

    stream = ok.get(MAIN_STREAM)
    goals.append(
        _goal(
            "500-chunk stream <= 1.01 and <= 1 us added per chunk",
            f"ratio {stream['ratio']:.3f}, {stream['added_us_per_chunk']:.2f} us/chunk"
            if stream
            else "-",
            (stream["ratio"] <= 1.01 and stream["added_us_per_chunk"] <= 1.0) if stream else None,
        )
    )

    peers = {
        peer["peer"]: {entry["scenario"]: entry for entry in peer["results"]}
        for peer in document["peers"]
        if peer["status"] == "ok"
    }
    lago = peers.get("lago-agent-sdk", {})
    multiples = {}
    for name in ("openai-chat-2k", "openai-chat-50k"):
        if name in lago and name in ok:
            ours = max(ok[name]["added_us"], 1e-3)
            multiples[name] = lago[name]["added_us"] / ours
    goals.append(
        _goal(
            "Lago Agent SDK added time >= 10x tokenwire's (non-streaming)",
            ", ".join(f"{name} {value:.1f}x" for name, value in multiples.items()) or "-",
            all(value >= 10 for value in multiples.values()) if multiples else None,
        )
    )

    per_chunk = {
        name: entries[MAIN_STREAM]["added_us_per_chunk"]
        for name, entries in peers.items()
        if MAIN_STREAM in entries
    }
    goals.append(
        _goal(
            "per streamed chunk, tokenwire below every peer",
            ", ".join(
                [f"tokenwire {stream['added_us_per_chunk']:.2f}" if stream else "tokenwire -"]
                + [f"{name} {value:.2f}" for name, value in per_chunk.items()]
            )
            + " us",
            all(stream["added_us_per_chunk"] < value for value in per_chunk.values())
            if stream and per_chunk
            else None,
        )
    )

    emit = ok.get("emit")
    goals.append(
        _goal(
            "producing a record (Meter.emit): median <= 1 us",
            f"median {emit['median_us']:.3f} us, p99 {emit['p99_us']:.3f} us" if emit else "-",
            emit["median_us"] <= 1.0 if emit else None,
        )
    )

    frames = ok.get("eventstream-decoder")
    goals.append(
        _goal(
            "event-stream decoding >= 3x botocore (small frames)",
            f"{frames['speedup']:.2f}x" if frames else "-",
            frames["speedup"] >= 3.0 if frames else None,
        )
    )

    memory = ok.get("memory-stream")
    goals.append(
        _goal(
            f"memory flat in response size (peak growth <= {MEMORY_FLAT_GROWTH}x for 10x body)",
            f"{memory['metered_growth']:.2f}x" if memory else "-",
            memory["metered_growth"] <= MEMORY_FLAT_GROWTH if memory else None,
        )
    )
    return goals
