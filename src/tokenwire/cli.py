"""The `tokenwire` command: demo, replay, report, prices, flush, dead-letters and bench."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .delivery import commands as delivery_commands
from .delivery.ledger import Ledger, default_ledger_path
from .errors import TokenwireError
from .pricing import Pricer
from .pricing import commands as pricing_commands
from .pricing.report import REPORT_GROUPS

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
    replay.add_argument(
        "--cost",
        action="store_true",
        help="add cost_usd (a decimal string, null when unpriced) and cost_unpriced to every row",
    )
    pricing_commands.add_pricing_file_argument(replay)

    report = commands.add_parser(
        "report", help="token usage, provider cost, billed amount and margin from the ledger"
    )
    report.add_argument(
        "--ledger",
        type=Path,
        help="ledger file (default: TOKENWIRE_LEDGER or the per-user data directory)",
    )
    report.add_argument(
        "--by",
        choices=REPORT_GROUPS,
        default="subscription",
        help="group rows by this field; feature is "
        "the attribution dimension set with attribute(feature=...)",
    )
    pricing_commands.add_pricing_file_argument(report)

    prices = commands.add_parser(
        "prices", help="the rates that apply to a model, with their source"
    )
    pricing_commands.add_prices_arguments(prices)

    flush = commands.add_parser(
        "flush", help="deliver the ledger's pending events to Lago; exit 0 only when none remain"
    )
    delivery_commands.add_flush_arguments(flush)

    dead_letters = commands.add_parser(
        "dead-letters", help="list the events Lago rejected, or re-queue them"
    )
    delivery_commands.add_dead_letters_arguments(dead_letters)

    # Listed for --help only: main() hands `bench` and its options to the runner unparsed.
    commands.add_parser(
        "bench",
        add_help=False,
        help="run the overhead benchmarks of a source checkout (options: tokenwire bench --help)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        return _bench(arguments[1:])
    args = _parser().parse_args(arguments)
    console = Console()
    try:
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "replay":
            return _replay(args, console)
        if args.command == "prices":
            return pricing_commands.run_prices(args, console)
        if args.command == "flush":
            return delivery_commands.run_flush(args, console)
        if args.command == "dead-letters":
            return delivery_commands.run_dead_letters(args, console)
        return _report(args, console)
    except TokenwireError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
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
        # The demo sends nothing, even when a Lago key is set in the environment.
        with delivery_commands.lago_environment_removed():
            result = run_demo(ledger_path)
        console.print(_summary_table("Usage by subscription", "subscription", result.summary))
        for subscription, expected in sorted(result.expected_totals.items()):
            actual = result.actual_totals.get(subscription, 0)
            mark = "[green]matches[/green]" if actual == expected else "[red]DIFFERS[/red]"
            console.print(
                f"{subscription}: {actual:,} tokens in the ledger, {expected:,} in the "
                f"fixtures' usage: {mark}"
            )
        ledger = Ledger(ledger_path)
        try:
            payload = delivery_commands.demo_payload(ledger)
        finally:
            ledger.close()
        console.print("The Lago batch tokenwire would send (POST /api/v1/events/batch):")
        console.print_json(data=payload)
        where = args.ledger or "a temporary ledger (removed on exit)"
        console.print(f"Ledger: {where}. Nothing was sent to Lago.")
    return 0 if result.ok else 1


def replay_rows(
    paths: Sequence[str], *, pricer: Pricer | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Replay cassettes; return one row per interaction and one error line per bad file.

    With a `pricer`, every row also gets the `replay --cost` fields.
    """
    from .testing.bedrock_replay import is_bedrock_runtime_interaction, replay_bedrock_interaction
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
            if is_bedrock_runtime_interaction(interaction):
                # Bedrock is metered by botocore hooks, so it is replayed through a real client.
                try:
                    record = replay_bedrock_interaction(interaction)
                except ImportError as exc:
                    errors.append(
                        f"cassette {path}: interaction {interaction.index} needs botocore to be "
                        f"replayed; install it with `pip install 'tokenwire[bedrock]'` ({exc})"
                    )
                    continue
            else:
                record = replay_interaction(interaction)
            row: dict[str, Any] = dict.fromkeys(REPLAY_KEYS)
            row.update(
                source=str(path),
                interaction=interaction.index,
                metered=False,
                http_status=interaction.response.status,
            )
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
            if pricer is not None:
                row.update(pricing_commands.cost_fields(pricer, record))
            rows.append(row)
    return rows, errors


def _replay(args: argparse.Namespace, console: Console) -> int:
    pricer = pricing_commands.pricer_from_args(args) if args.cost else None
    rows, errors = replay_rows(args.paths, pricer=pricer)
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
        for column in (
            "source",
            "#",
            "provider",
            "api",
            "model",
            "state",
            "input",
            "cached",
            "cache write",
            "output",
            "reasoning",
            "total",
        ):
            table.add_column(column)
        if args.cost:
            table.add_column("cost USD", justify="right")
        for row in rows:
            cost = [row["cost_usd"] or ("unpriced" if row["metered"] else "-")] if args.cost else []
            table.add_row(
                Path(row["source"]).name,
                str(row["interaction"]),
                row["provider"] or "-",
                row["api"] or "-",
                row["model"] or "-",
                row["state"] or "not metered",
                *(
                    _count(row[key])
                    for key in (
                        "input_tokens",
                        "cached_input_tokens",
                        "cache_creation_tokens",
                        "output_tokens",
                        "reasoning_tokens",
                        "total_tokens",
                    )
                ),
                *cost,
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
        status = pricing_commands.run_report(args, console, ledger.records(), source=str(path))
        console.print(delivery_commands.delivery_table(ledger.delivery_summary()))
        return status
    finally:
        ledger.close()


def _bench(arguments: list[str]) -> int:
    """Run `python -m benchmarks` of the source checkout; the wheel does not ship benchmarks/."""
    run = _checkout_benchmark_runner()
    if run is None:
        Console(stderr=True).print(
            "[red]error:[/red] no tokenwire source checkout found: the benchmarks are not "
            "installed with the package. Clone the repository and run `python -m benchmarks` "
            "(or `tokenwire bench`) from its root; BENCHMARKS.md explains the results."
        )
        return 2
    return run(arguments)


def _checkout_benchmark_runner() -> Callable[[Sequence[str]], int] | None:
    """Return `benchmarks.runner.main` of the checkout this package was installed from
    (an editable install), else of the working directory, else None."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / "benchmarks" / "runner.py").is_file():
            sys.path.insert(0, str(root))
            module = importlib.import_module("benchmarks.runner")
            run: Callable[[Sequence[str]], int] = module.main
            return run
    return None


if __name__ == "__main__":
    raise SystemExit(main())
