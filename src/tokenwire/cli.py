"""The `tokenwire` command: demo, replay and report."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from .delivery.ledger import Ledger, default_ledger_path
from .errors import TokenwireError

__all__ = ["main"]

REPLAY_KEYS = (
    "source",
    "interaction",
    "metered",
    "provider",
    "api",
    "model",
    "request_model",
    "response_model",
    "response_id",
    "stream",
    "http_status",
    "state",
    "input_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "record_id",
    "problem",
)

_TOKEN_COLUMNS = (
    ("input_tokens", "input"),
    ("cached_input_tokens", "cached"),
    ("cache_creation_tokens", "cache write"),
    ("output_tokens", "output"),
    ("reasoning_tokens", "reasoning"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenwire", description="Meter LLM token usage on the wire."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="run the real SDKs against a loopback server and report the usage"
    )
    demo.add_argument(
        "--ledger", type=Path, help="ledger file to write (default: a new temporary file)"
    )

    replay = commands.add_parser(
        "replay", help="meter recorded traffic (vcrpy cassettes) through the real transport"
    )
    replay.add_argument("paths", nargs="+", help="cassette files or folders (searched recursively)")
    replay.add_argument("--format", choices=("table", "jsonl"), default="table")

    report = commands.add_parser("report", help="token usage stored in the ledger")
    report.add_argument("--ledger", type=Path, help="ledger file (default: TOKENWIRE_LEDGER or "
                        "the per-user data directory)")
    report.add_argument("--by", choices=("subscription", "model", "provider", "state"),
                        default="subscription", help="group rows by this field")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "replay":
            return _replay(args, console)
        return _report(args, console)
    except TokenwireError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        return 2


def _summary_table(title: str, key_name: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    table.add_column(key_name)
    table.add_column("records", justify="right")
    for _, label in _TOKEN_COLUMNS:
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(
            str(row["key"] if row["key"] is not None else "(unattributed)"),
            str(row["records"]),
            *(f"{row[name]:,}" for name, _ in _TOKEN_COLUMNS),
        )
    return table


def _demo(args: argparse.Namespace, console: Console) -> int:
    try:
        import anthropic  # noqa: F401
        import openai  # noqa: F401
    except ImportError:
        Console(stderr=True).print(
            "[red]error:[/red] the demo runs the real openai and anthropic SDKs; install them "
            "with `pip install 'tokenwire[demo]'`"
        )
        return 2
    from .demo import run_demo

    with tempfile.TemporaryDirectory(prefix="tokenwire-demo-") as scratch:
        ledger_path = args.ledger or Path(scratch) / "ledger.sqlite3"
        result = run_demo(ledger_path)
        console.print(_summary_table("Usage by subscription", "subscription", result.summary))
        for subscription, expected in sorted(result.expected_totals.items()):
            actual = result.actual_totals.get(subscription, 0)
            mark = "[green]matches[/green]" if actual == expected else "[red]DIFFERS[/red]"
            console.print(
                f"{subscription}: {actual:,} tokens in the ledger, {expected:,} in the "
                f"fixtures' usage: {mark}"
            )
        where = args.ledger or "a temporary ledger (removed on exit)"
        console.print(f"Ledger: {where}. Nothing was sent to Lago.")
    return 0 if result.ok else 1


def replay_rows(paths: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Replay cassettes; return one row per interaction and one error line per bad file."""
    from .testing.cassettes import CassetteError, find_cassettes, load_cassette
    from .testing.replay import replay_interaction

    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        files = find_cassettes(paths)
    except CassetteError as exc:
        return rows, [str(exc)]
    for path in files:
        try:
            interactions = load_cassette(path)
        except CassetteError as exc:
            errors.append(str(exc))
            continue
        for interaction in interactions:
            record = replay_interaction(interaction)
            row: dict[str, Any] = dict.fromkeys(REPLAY_KEYS)
            row.update(source=str(path), interaction=interaction.index, metered=False,
                       http_status=interaction.response.status)
            if record is not None:
                usage = msgspec.structs.asdict(record.usage)
                row.update({key: usage[key] for key in REPLAY_KEYS if key in usage})
                row.update(
                    metered=True,
                    provider=record.provider,
                    api=record.api,
                    model=record.model,
                    request_model=record.request_model,
                    response_model=record.response_model,
                    response_id=record.response_id,
                    stream=record.stream,
                    http_status=record.http_status,
                    state=record.state,
                    record_id=record.record_id,
                    problem=record.problem,
                )
            rows.append(row)
    return rows, errors


def _replay(args: argparse.Namespace, console: Console) -> int:
    rows, errors = replay_rows(args.paths)
    stderr = Console(stderr=True)
    for error in errors:
        stderr.print(f"[red]error:[/red] {error}", highlight=False)
    if args.format == "jsonl":
        encoder = msgspec.json.Encoder()
        out = sys.stdout.buffer
        for row in rows:
            out.write(encoder.encode(row) + b"\n")
        out.flush()
    else:
        table = Table(title=f"Replayed {len(rows)} interactions")
        for column in ("source", "#", "provider", "api", "model", "state", "input", "cached",
                       "cache write", "output", "reasoning", "total"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                Path(row["source"]).name, str(row["interaction"]), row["provider"] or "-",
                row["api"] or "-", row["model"] or "-", row["state"] or "not metered",
                *(_count(row[key]) for key in ("input_tokens", "cached_input_tokens",
                  "cache_creation_tokens", "output_tokens", "reasoning_tokens", "total_tokens")),
            )
        console.print(table)
    return 1 if errors else 0


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _report(args: argparse.Namespace, console: Console) -> int:
    path = args.ledger or default_ledger_path()
    if not Path(path).exists():
        Console(stderr=True).print(
            f"[red]error:[/red] no ledger at {path}; pass --ledger PATH or set TOKENWIRE_LEDGER"
        )
        return 2
    ledger = Ledger(path)
    try:
        rows = ledger.summary(args.by)
    finally:
        ledger.close()
    console.print(_summary_table(f"Usage by {args.by} ({path})", args.by, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
