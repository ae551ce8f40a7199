"""The benchmark suite runs end to end in quick mode. No timing is asserted: CI machines vary."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from benchmarks.measure import PairedTiming, percentile, summarize_pairs
from benchmarks.peers import PEERS, run_peer
from benchmarks.report import evaluate_goals
from benchmarks.scenarios import all_scenarios

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240
"""Generous: a quick run takes about 20 s on a busy 2-core machine; this only stops a hang."""

NUMBER_FIELDS = {
    "overhead": ("raw_us", "metered_us", "ratio", "ratio_p10", "ratio_p90", "added_us"),
    "throughput": ("tokenwire_mb_s", "tokenwire_us"),
    "latency": ("median_us", "p90_us", "p99_us", "max_us"),
    "flusher": ("events_per_s", "records_per_s", "seconds"),
    "memory": (
        "raw_small_peak_kib",
        "metered_small_peak_kib",
        "raw_large_peak_kib",
        "metered_large_peak_kib",
        "metered_growth",
    ),
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run `python -m benchmarks --quick --json` once; return its exit status, output and JSON."""
    output = tmp_path_factory.mktemp("bench") / "results.json"
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "src"), str(REPO_ROOT), environment.get("PYTHONPATH")])
    )
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(output)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    document = json.loads(output.read_text()) if output.exists() else None
    return {
        "status": completed.returncode,
        "stdout": completed.stdout,
        "stderr": completed.stderr,
        "document": document,
    }


def test_quick_run_exits_zero(quick_run: dict[str, Any]) -> None:
    assert quick_run["status"] == 0, quick_run["stderr"][-3000:]


def test_quick_run_covers_every_scenario(quick_run: dict[str, Any]) -> None:
    document = quick_run["document"]
    assert document is not None, quick_run["stderr"][-3000:]

    names = [entry["name"] for entry in document["results"]]

    assert names == [scenario.name for scenario in all_scenarios()]
    assert document["quick"] is True


def test_quick_run_no_scenario_failed(quick_run: dict[str, Any]) -> None:
    document = quick_run["document"]
    assert document is not None, quick_run["stderr"][-3000:]

    failed = {
        entry["name"]: entry.get("reason")
        for entry in document["results"]
        if entry["status"] == "failed"
    }

    assert failed == {}


def test_quick_run_skips_give_reason(quick_run: dict[str, Any]) -> None:
    document = quick_run["document"]
    assert document is not None

    for entry in document["results"]:
        if entry["status"] == "skipped":
            assert entry["reason"], entry["name"]


def test_quick_run_numbers_finite_and_positive(quick_run: dict[str, Any]) -> None:
    document = quick_run["document"]
    assert document is not None

    for entry in document["results"]:
        if entry["status"] != "ok":
            continue
        for field in NUMBER_FIELDS[entry["kind"]]:
            value = entry[field]
            assert isinstance(value, int | float) and math.isfinite(value), (entry["name"], field)
            if field not in ("added_us", "ratio_p10", "ratio_p90"):
                assert value > 0, (entry["name"], field, value)


def test_quick_run_metered_sides_recorded(quick_run: dict[str, Any]) -> None:
    document = quick_run["document"]
    assert document is not None

    for entry in document["results"]:
        if entry["status"] == "ok" and entry["kind"] == "overhead":
            assert entry["records"] > 0, entry["name"]


def test_quick_run_prints_tables_and_goals(quick_run: dict[str, Any]) -> None:
    stdout = quick_run["stdout"]

    assert "QUICK MODE" in stdout
    assert "Overhead: metered / raw" in stdout
    assert "Goals" in stdout
    for goal in quick_run["document"]["goals"]:
        assert goal["goal"] in stdout


def test_summarize_pairs_median_ratio_and_difference() -> None:
    timing = PairedTiming(
        raw_ns=[1000.0, 2000.0, 4000.0], metered_ns=[1100.0, 2100.0, 4800.0], calls_per_round=5
    )

    summary = summarize_pairs(timing, chunks_per_call=10)

    assert summary["ratio"] == pytest.approx(1.1)  # per-round ratios 1.1, 1.05, 1.2
    assert summary["added_us"] == pytest.approx(0.1)  # per-round differences 100, 100, 800 ns
    assert summary["added_us_per_chunk"] == pytest.approx(0.01)
    assert summary["raw_us"] == pytest.approx(2.0)


def test_percentile_interpolates_between_values() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.1) == pytest.approx(1.4)


def test_peer_without_virtualenv_skipped(tmp_path: Path) -> None:
    result = run_peer(PEERS[0], tmp_path, quick=True, rounds=3, only=None)

    assert result["status"] == "skipped"
    assert "--setup-peers" in result["reason"]


def test_goals_missing_data_not_measured() -> None:
    goals = evaluate_goals({"results": [], "peers": []})

    assert goals
    assert {goal["result"] for goal in goals} == {"not measured"}


def test_cli_bench_runs_checkout_runner(capsys: pytest.CaptureFixture[str]) -> None:
    from tokenwire.cli import main

    status = main(["bench", "--list"])

    assert status == 0
    listed = capsys.readouterr().out
    for scenario in all_scenarios():
        assert scenario.name in listed


def test_cli_bench_without_checkout_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tokenwire.cli

    monkeypatch.setattr(tokenwire.cli, "_checkout_benchmark_runner", lambda: None)

    status = tokenwire.cli.main(["bench", "--quick"])

    assert status == 2
    message = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "python -m benchmarks" in message
