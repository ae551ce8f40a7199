"""The delivery parts of the `tokenwire` command: flush, dead-letters, report status, demo payload.

`tokenwire.cli` adds these subcommands and calls the `run_...` functions,
which print with rich and return the exit status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .events import MAX_BATCH_EVENTS, EventCodes, plan_delivery
from .ledger import DeliverySummary, Ledger, default_ledger_path

__all__ = [
    "add_dead_letters_arguments",
    "add_flush_arguments",
    "delivery_table",
    "demo_payload",
    "lago_environment_removed",
    "run_dead_letters",
    "run_flush",
]

LAGO_KEY_VARIABLES = ("TOKENWIRE_LAGO_API_KEY", "LAGO_API_KEY")


def _ledger_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger",
        type=Path,
        help="ledger file (default: TOKENWIRE_LEDGER or the per-user data directory)",
    )


def add_flush_arguments(parser: argparse.ArgumentParser) -> None:
    _ledger_argument(parser)
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=30.0,
        help="seconds to keep trying before giving up (default: 30)",
    )


def add_dead_letters_arguments(parser: argparse.ArgumentParser) -> None:
    _ledger_argument(parser)
    parser.add_argument(
        "--requeue",
        type=int,
        nargs="+",
        metavar="ID",
        help="put these dead letters back in the delivery queue",
    )
    parser.add_argument(
        "--all", action="store_true", help="also list dead letters that were re-queued"
    )


def _open_existing(path: Path | None) -> Ledger | None:
    where = path or default_ledger_path()
    if not Path(where).exists():
        Console(stderr=True).print(
            f"[red]error:[/red] no ledger at {escape(str(where))}; pass --ledger PATH or set "
            f"TOKENWIRE_LEDGER"
        )
        return None
    return Ledger(where)


def run_flush(args: argparse.Namespace, console: Console) -> int:
    """Deliver the ledger's pending events; exit 0 only when nothing is left pending."""
    from ..meter import Meter, lago_settings

    ledger = _open_existing(args.ledger)
    if ledger is None:
        return 2
    api_key, url = lago_settings(None, None)
    pending = ledger.pending_count()
    if api_key is None:
        ledger.close()
        if pending:
            Console(stderr=True).print(
                f"[red]error:[/red] {pending:,} event(s) wait for delivery but no Lago API key "
                f"is configured; set TOKENWIRE_LAGO_API_KEY (or LAGO_API_KEY)"
            )
            return 1
        console.print("Nothing to deliver.")
        return 0
    meter = Meter(ledger=ledger, lago_api_key=api_key, lago_url=url)
    try:
        result = meter.flush(timeout_s=args.timeout_s)
    finally:
        meter.shutdown(timeout_s=5.0, deliver=False)
        ledger.close()
    console.print(
        f"Delivered {result.delivered:,} event(s) to Lago; {result.pending_events:,} pending, "
        f"{result.dead_lettered:,} newly dead-lettered, {result.dead_letters:,} dead letter(s) "
        f"in the ledger."
    )
    if result.blocked:
        Console(stderr=True).print(f"[red]delivery blocked:[/red] {escape(result.blocked)}")
    return 0 if result.pending == 0 else 1


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_dead_letters(args: argparse.Namespace, console: Console) -> int:
    """List dead letters, or re-queue the ones named by `--requeue`."""
    ledger = _open_existing(args.ledger)
    if ledger is None:
        return 2
    try:
        if args.requeue:
            done = ledger.requeue(args.requeue)
            console.print(f"Re-queued {len(done)} dead letter(s): {done}")
            missing = sorted(set(args.requeue) - set(done))
            if missing:
                Console(stderr=True).print(
                    f"[red]error:[/red] no dead letter waiting with id {missing} (list them "
                    f"with `tokenwire dead-letters --all`)"
                )
                return 1
            return 0
        letters = ledger.dead_letters(include_requeued=args.all)
    finally:
        ledger.close()
    if not letters:
        console.print("No dead letters.")
        return 0
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in (
        "id",
        "transaction id",
        "subscription",
        "code",
        "value",
        "error",
        "set aside",
        "re-queued",
    ):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.transaction_id,
            escape(letter.subscription),
            letter.code,
            f"{letter.value:,}",
            escape(letter.error),
            _when(letter.dead_at),
            _when(letter.requeued_at),
        )
    console.print(table)
    if letters and not args.all:
        console.print(
            "Re-queue with `tokenwire dead-letters --requeue ID ...` once the cause "
            "is fixed in Lago (for example a missing billable metric)."
        )
    return 0


_DELIVERY_LABELS = {
    "queued": "events queued for Lago",
    "zero_usage": "billable, all counts zero",
    "not_billable": "not billable (missing, error, no counts)",
    "unattributed": "unattributed (no subscription, no default): kept, not sent",
    "ledger_only": "written without a Lago API key: kept, not sent",
    "unplanned": "written before delivery existed: kept, not sent",
    "plan_failed": "building its events failed (see the logs): kept, not sent",
    "held": "written while the configuration was invalid: queued once it is fixed",
}


def delivery_table(summary: DeliverySummary) -> Table:
    """Return the delivery status of a ledger as a table."""
    table = Table(title="Delivery to Lago")
    table.add_column("status")
    table.add_column("count", justify="right")
    for status, count in summary.records_by_delivery.items():
        table.add_row(f"records: {_DELIVERY_LABELS.get(status, status)}", f"{count:,}")
    table.add_row("events: sent", f"{summary.sent_events:,}")
    table.add_row("events: pending", f"{summary.pending_events:,}")
    table.add_row("events: pending, leased by a sender now", f"{summary.leased_events:,}")
    table.add_row("events: dead letters (see `tokenwire dead-letters`)", f"{summary.dead_events:,}")
    table.add_row("oldest pending event queued", _when(summary.oldest_pending_at))
    table.add_row("last event sent", _when(summary.last_sent_at))
    return table


@contextmanager
def lago_environment_removed() -> Iterator[None]:
    """Hide the Lago API key variables for the duration, so nothing can be sent."""
    saved = {name: os.environ.pop(name) for name in LAGO_KEY_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def demo_payload(ledger: Ledger) -> dict[str, Any]:
    """Return the first Lago batch tokenwire would send for the ledger's records.

    An event whose (subscription, transaction id) came earlier is left out, as
    the outbox leaves it out: two records of one response are billed once.
    """
    events: list[Any] = []
    seen: set[tuple[str, str]] = set()
    for record in ledger.records():
        plan = plan_delivery(
            record, codes=EventCodes(), default_subscription=None, lago_enabled=True
        )
        for event in plan.events:
            key = (event.external_subscription_id, event.transaction_id)
            if key not in seen:
                seen.add(key)
                events.append(msgspec.to_builtins(event))
    return {"events": events[:MAX_BATCH_EVENTS]}
