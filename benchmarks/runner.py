"""The benchmark runner: `python -m benchmarks` (or `tokenwire bench`) from a checkout.

It runs the selected scenarios one after the other in this process, each
metered side interleaved with its raw baseline. Then it runs the peers
(`--peers`) in their own virtualenvs and prints one table per kind of result
and the goals met or missed. `--json PATH` also writes everything, machine
and load included, as one JSON document (`-` writes it to standard output and
the tables to standard error), and `--markdown PATH` writes the tables as
Markdown. `--quick` runs a few rounds only: it checks that every scenario
works, and its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from .core import Scenario, ScenarioSkipped, Settings
from .report import evaluate_goals, print_report

__all__ = ["machine_info", "main", "run"]

VERSIONED_PACKAGES = (
    "tokenwire",
    "httpx2",
    "msgspec",
    "openai",
    "anthropic",
    "google-genai",
    "botocore",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """Return the facts a reader needs to compare two runs: CPU, Python, package versions."""
    versions: dict[str, str | None] = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": versions,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks (or tokenwire bench)",
        description="Measure tokenwire's overhead against unmetered calls and against peers.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 short rounds per scenario: checks that everything runs; the "
        "numbers are not meaningful",
    )
    parser.add_argument(
        "--rounds", type=int, default=30, help="interleaved rounds per paired scenario (default 30)"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these scenarios or groups (see --list)"
    )
    parser.add_argument(
        "--skip", nargs="+", metavar="NAME", default=[], help="leave out these scenarios or groups"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results as JSON to PATH ('-' for standard output)",
    )
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        help="also write the tables as Markdown to PATH, for BENCHMARKS.md",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run the peers (Lago Agent SDK, OpenLLMetry) in their virtualenvs",
    )
    parser.add_argument(
        "--peer-venvs",
        type=Path,
        metavar="DIR",
        help="folder of the peers' virtualenvs (default: TOKENWIRE_BENCH_VENVS, "
        "else bench-venvs beside the checkout)",
    )
    parser.add_argument(
        "--setup-peers",
        action="store_true",
        help="create the peers' virtualenvs from PyPI and exit",
    )
    return parser


def _selected(
    scenarios: Sequence[Scenario], only: list[str] | None, skip: list[str]
) -> list[Scenario]:
    known = {scenario.name for scenario in scenarios} | {scenario.group for scenario in scenarios}
    unknown = [name for name in (only or []) + skip if name not in known]
    if unknown:
        raise SystemExit(
            f"error: unknown scenario or group {', '.join(unknown)}; "
            "see `python -m benchmarks --list`"
        )
    chosen = [
        scenario
        for scenario in scenarios
        if only is None or scenario.name in only or scenario.group in only
    ]
    return [
        scenario for scenario in chosen if scenario.name not in skip and scenario.group not in skip
    ]


def _run_scenario(scenario: Scenario, settings: Settings, log: TextIO) -> dict[str, Any]:
    log.write(f"  {scenario.name} ... ")
    log.flush()
    started = time.perf_counter()
    entry: dict[str, Any] = {
        "name": scenario.name,
        "kind": scenario.kind,
        "group": scenario.group,
        "description": scenario.description,
    }
    try:
        entry.update(scenario.run(settings))
        entry["status"] = "ok"
    except ScenarioSkipped as skipped:
        entry["status"] = "skipped"
        entry["reason"] = str(skipped)
    except Exception as exc:
        entry["status"] = "failed"
        entry["reason"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=log)
    entry["seconds"] = time.perf_counter() - started
    log.write(f"{entry['status']} ({entry['seconds']:.1f} s)\n")
    return entry


def run(
    scenarios: Sequence[Scenario],
    settings: Settings,
    *,
    peers: bool,
    peer_root: Path,
    log: TextIO,
    command: str = "python -m benchmarks",
) -> dict[str, Any]:
    """Run `scenarios` (and the peers) and return the whole JSON document."""
    from .peers import PEERS, run_peer

    document: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": settings.quick,
        "rounds": settings.paired_rounds,
        "machine": machine_info(),
        "load_before": _load(),
    }
    log.write(
        f"Running {len(scenarios)} scenarios"
        f"{' (quick: the numbers are not meaningful)' if settings.quick else ''}:\n"
    )
    document["results"] = [_run_scenario(scenario, settings, log) for scenario in scenarios]

    document["peers"] = []
    if peers:
        for spec in PEERS:
            log.write(f"  peer {spec.name} ... ")
            log.flush()
            result = run_peer(
                spec, peer_root, quick=settings.quick, rounds=settings.rounds, only=None
            )
            log.write(f"{result['status']}\n")
            document["peers"].append(result)
    document["load_after"] = _load()
    document["goals"] = evaluate_goals(document)
    return document


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(arguments)
    if args.rounds < 1:
        raise SystemExit("error: --rounds must be at least 1")
    from .peers import PEERS, default_venv_root, setup_peer
    from .scenarios import all_scenarios

    peer_root = args.peer_venvs or default_venv_root()
    if args.setup_peers:
        for spec in PEERS:
            print(f"creating {peer_root / spec.venv} with {', '.join(spec.packages)}")
            setup_peer(spec, peer_root)
        return 0

    scenarios = all_scenarios()
    if args.list:
        for scenario in scenarios:
            print(f"{scenario.name:<32} {scenario.group:<10} {scenario.description}")
        return 0

    chosen = _selected(scenarios, args.only, args.skip)
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout
    settings = Settings(quick=args.quick, rounds=args.rounds)
    document = run(
        chosen,
        settings,
        peers=args.peers,
        peer_root=peer_root,
        log=sys.stderr,
        command=" ".join(["python -m benchmarks", *arguments]),
    )
    print_report(document, out)

    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as markdown:
            print_report(document, markdown, markdown=True)
    if args.json:
        text = json.dumps(document, indent=2)
        if to_stdout:
            sys.stdout.write(text + "\n")
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    failed = [entry["name"] for entry in document["results"] if entry["status"] == "failed"]
    failed += [peer["peer"] for peer in document["peers"] if peer["status"] == "failed"]
    if failed:
        sys.stderr.write(f"failed: {', '.join(failed)}\n")
        return 1
    return 0
