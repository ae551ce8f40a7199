"""The embedded SQLite ledger: the local record of every usage record and the delivery queue.

Three tables:

- `records`: one row per usage record, keyed by `record_id`, so writing the
  same record twice is a no-op. The full record is stored as JSON beside the
  columns reports group by, with its delivery status (see `DeliveryStatus`).
- `outbox`: the Lago events of each queued record, written in the same
  transaction as the record, so a crash never separates a record from its
  events. An event is unique per (subscription, transaction id), as in Lago.
  Its `status` is `pending`, `sent` (Lago returned a 2xx, or already had it)
  or `dead` (Lago rejected it; see `dead_letters`).
- `dead_letters`: events Lago rejected, with the error, until re-queued.

Several processes may share one ledger file. A sender claims pending events
by writing its owner id and a lease deadline in one transaction, and only
unleased or expired rows can be claimed, so no two live senders hold the same
event. A lease whose owner is a process on this host that no longer exists is
released at once, so a crashed process does not hold its events for the
whole lease.

The file is opened in WAL mode, created with mode 0600, and its schema is
versioned with `PRAGMA user_version` and migrated forward on open. It stores
counts, ids, model names and attribution; never prompt or completion text and
never an API key.

A `Ledger` object may be shared by threads: every statement runs under `lock`.
It survives `fork()`: SQLite connections must not cross a fork (the child's
SQLite would believe it holds the parent's file locks), so every ledger
closes its connection just before a fork, once the statement in progress has
finished, and parent and child each open a new one on next use.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import msgspec

from ..errors import ConfigurationError
from ..usage import UsageRecord
from .events import DeliveryPlan, LagoEvent, encode_event

__all__ = [
    "SCHEMA_VERSION",
    "DeadLetter",
    "DeliverySummary",
    "Ledger",
    "Written",
    "default_ledger_path",
    "lease_owner_id",
]

SCHEMA_VERSION = 2

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE records (
        record_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        state TEXT NOT NULL,
        provider TEXT NOT NULL,
        api TEXT NOT NULL,
        model TEXT,
        response_id TEXT,
        subscription TEXT,
        input_tokens INTEGER,
        cached_input_tokens INTEGER,
        cache_creation_tokens INTEGER,
        output_tokens INTEGER,
        reasoning_tokens INTEGER,
        total_tokens INTEGER,
        record TEXT NOT NULL
    );
    CREATE INDEX records_subscription ON records (subscription, created_at);
    CREATE INDEX records_created_at ON records (created_at);
    """,
    2: """
    ALTER TABLE records ADD COLUMN delivery TEXT;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        record_id TEXT NOT NULL,
        subscription TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        code TEXT NOT NULL,
        value INTEGER NOT NULL,
        event TEXT NOT NULL,
        timestamp REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until REAL,
        queued_at REAL NOT NULL,
        sent_at REAL,
        UNIQUE (subscription, transaction_id)
    );
    CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL REFERENCES outbox (id),
        error TEXT NOT NULL,
        http_status INTEGER,
        dead_at REAL NOT NULL,
        requeued_at REAL
    );
    CREATE INDEX dead_letters_active ON dead_letters (outbox_id) WHERE requeued_at IS NULL;
    """,
}

GroupBy = Literal["subscription", "model", "provider", "state"]
Synchronous = Literal["NORMAL", "FULL"]

_MAX_SQL_VARIABLES = 500
"""Ids per `IN (...)` list; SQLite before 3.32 allows 999 bound variables per statement."""

BUSY_TIMEOUT_S = 30.0
"""How long a statement waits for another connection's write lock before failing."""
FORK_LOCK_TIMEOUT_S = 10.0
"""How long `fork()` waits for a ledger statement in progress to finish."""

_encoder = msgspec.json.Encoder(enc_hook=str)
_record_decoder = msgspec.json.Decoder(UsageRecord)
_HOST = socket.gethostname()


def default_ledger_path() -> Path:
    """Return the ledger path: `TOKENWIRE_LEDGER`, else a per-user data directory."""
    configured = os.environ.get("TOKENWIRE_LEDGER")
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tokenwire" / "ledger.sqlite3"


def _enable_wal(connection: sqlite3.Connection) -> None:
    """Switch a database to WAL mode, which is stored in the file, unless it already is.

    Switching needs an exclusive lock, and SQLite reports "database is
    locked" at once, without waiting, when another connection opens the new
    file at the same moment; so this retries for up to `BUSY_TIMEOUT_S`.
    """
    if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay_s = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def lease_owner_id(nonce: str) -> str:
    """Return the lease owner id of this process: host, pid and a per-sender nonce."""
    return f"{_HOST}/{os.getpid()}/{nonce}"


def _owner_is_dead(owner: str, own_pid: int) -> bool:
    """Return whether `owner` names a process on this host that no longer exists."""
    host, _, rest = owner.partition("/")
    pid_text, _, _ = rest.partition("/")
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == own_pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, owned by another user
        return False
    return False


class Written(NamedTuple):
    """Counts of what one `Ledger.write()` stored."""

    records: int
    """Records that were new to the ledger."""
    events: int
    """Events queued in the outbox for those records."""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """An event Lago rejected, with the reason."""

    id: int
    """The dead letter's id, as `tokenwire dead-letters --requeue` takes it."""
    transaction_id: str
    subscription: str
    code: str
    value: int
    record_id: str
    error: str
    http_status: int | None
    dead_at: float
    """Unix seconds."""
    requeued_at: float | None


class DeliverySummary(msgspec.Struct, frozen=True, kw_only=True):
    """Delivery status of everything in a ledger."""

    records_by_delivery: dict[str, int]
    """Record counts per delivery status; `unplanned` counts records written
    before the ledger queued events (schema version 1)."""
    pending_events: int
    sent_events: int
    dead_events: int
    """Events set aside and not re-queued."""
    leased_events: int
    """Pending events leased by a sender now."""
    oldest_pending_at: float | None
    """Unix seconds at which the oldest pending event was queued."""
    last_sent_at: float | None


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _MAX_SQL_VARIABLES):
        yield ids[start : start + _MAX_SQL_VARIABLES]


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


class Ledger:
    """A SQLite ledger file of usage records and their Lago events."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: Synchronous = "NORMAL"):
        self.path = Path(path)
        self.lock = threading.Lock()
        """Held around every statement of this connection."""
        self._synchronous = synchronous
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._fork_locked = False
        # Registered before connecting, and connected under `lock` (in _migrate),
        # so that a fork() meanwhile waits and closes the new connection too.
        _ledgers.add(self)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Create the file owner-only before SQLite opens it; SQLite gives
                # its -wal and -shm files the same mode.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise ConfigurationError(
                f"cannot open the ledger at {self.path}: {exc}; set TOKENWIRE_LEDGER "
                f"(or --ledger) to a writable file path"
            ) from exc

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use after creation or a fork; caller holds `lock`."""
        connection = self._connection
        if connection is None:
            if self._closed:
                raise sqlite3.ProgrammingError(f"the ledger at {self.path} is closed")
            connection = sqlite3.connect(
                self.path,
                check_same_thread=False,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_S,
            )
            try:
                _enable_wal(connection)
                connection.execute(f"PRAGMA synchronous={self._synchronous}")
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return connection

    def _close_for_fork(self) -> None:
        """Close the connection before `fork()`, once no statement is running."""
        self._fork_locked = self.lock.acquire(timeout=FORK_LOCK_TIMEOUT_S)
        if self._fork_locked and self._connection is not None:
            self._connection.close()
            self._connection = None

    def _resume_after_fork(self, *, child: bool) -> None:
        if self._fork_locked:
            self._fork_locked = False
            self.lock.release()
        elif child:
            # A statement was still running in another thread at fork time: its
            # connection and lock belong to the parent. The child starts afresh.
            # NOTE: the child's SQLite may still see the parent's locks on this
            # file until it exits; it only happens after a statement blocked
            # for FORK_LOCK_TIMEOUT_S.
            if self._connection is not None:
                _ABANDONED.append(self._connection)
                self._connection = None
            self.lock = threading.Lock()

    def _migrate(self) -> None:
        with self.lock:
            # Read the version inside the write transaction, so that two
            # processes opening a new file do not both run a migration.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise ConfigurationError(
                        f"the ledger at {self.path} has schema version {version}, newer than "
                        f"this tokenwire ({SCHEMA_VERSION}); upgrade tokenwire or use another "
                        f"ledger path"
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {target}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _transaction(self, work: Callable[[], Any]) -> Any:
        """Run `work` in one write transaction; the caller holds `lock`."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result

    # Writing records

    def write(
        self,
        records: Sequence[UsageRecord],
        planner: Callable[[UsageRecord], DeliveryPlan] | None = None,
    ) -> Written:
        """Store records, and the events `planner` gives them, in one transaction.

        A record already in the ledger (same `record_id`) is skipped, and an
        event already queued (same subscription and transaction id) is too,
        so writing a record twice, or two records of one response, queues
        each event once. Without a planner the records' delivery status stays
        empty and no events are queued.
        """
        if not records:
            return Written(0, 0)
        queued_at = time.time()
        rows = []
        events = []
        for record in records:
            plan = planner(record) if planner is not None else None
            rows.append(_row(record, None if plan is None else plan.status))
            if plan is not None:
                events += _outbox_rows(record, plan, queued_at)

        def insert() -> Written:
            before = self._db.total_changes
            self._db.executemany(_INSERT_RECORD, rows)
            middle = self._db.total_changes
            if events:
                self._db.executemany(_INSERT_EVENT, events)
            return Written(middle - before, self._db.total_changes - middle)

        with self.lock:
            result: Written = self._transaction(insert)
        return result

    # Delivery queue

    def claim(self, owner: str, *, limit: int, lease_s: float) -> list[tuple[int, str]]:
        """Lease up to `limit` pending events to `owner`; return (id, event JSON), oldest first.

        Expired leases, and leases of processes on this host that have
        exited, are claimable.
        """
        now = time.time()
        with self.lock:
            # A read first, so that an idle sender's polls never take the write lock.
            claimable = self._db.execute(
                "SELECT 1 FROM outbox WHERE status = 'pending' "
                "AND (lease_until IS NULL OR lease_until <= ?) LIMIT 1",
                (now,),
            ).fetchone()
            rows: list[tuple[int, str]] = []
            if claimable is not None:
                rows = self._transaction(lambda: self._claim(owner, limit, now, now + lease_s))
            if len(rows) < limit and self._release_dead_owners(owner):
                rows += self._transaction(
                    lambda: self._claim(owner, limit - len(rows), now, now + lease_s)
                )
        rows.sort()
        return rows

    def _claim(self, owner: str, limit: int, now: float, until: float) -> list[tuple[int, str]]:
        return self._db.execute(
            "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' "
            "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY id LIMIT ?) "
            "RETURNING id, event",
            (owner, until, now, limit),
        ).fetchall()

    def _release_dead_owners(self, own: str) -> int:
        """Release leases of exited processes on this host; return the row count.

        The caller holds `lock`.
        """
        owners = [
            owner
            for (owner,) in self._db.execute(
                "SELECT DISTINCT lease_owner FROM outbox "
                "WHERE status = 'pending' AND lease_owner IS NOT NULL"
            ).fetchall()
            if owner != own
        ]
        pid = os.getpid()
        dead = [owner for owner in owners if _owner_is_dead(owner, pid)]
        if not dead:
            return 0

        def release() -> int:
            cursor = self._db.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL "
                f"WHERE status = 'pending' AND lease_owner IN ({_placeholders(len(dead))})",
                dead,
            )
            return cursor.rowcount

        released: int = self._transaction(release)
        return released

    def mark_sent(self, ids: Sequence[int]) -> int:
        """Mark pending events as delivered; return how many changed."""
        if not ids:
            return 0
        now = time.time()

        def update() -> int:
            changed = 0
            for chunk in _chunks(ids):
                cursor = self._db.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, lease_owner = NULL, "
                    "lease_until = NULL "
                    f"WHERE status = 'pending' AND id IN ({_placeholders(len(chunk))})",
                    (now, *chunk),
                )
                changed += cursor.rowcount
            return changed

        with self.lock:
            result: int = self._transaction(update)
        return result

    def release(self, owner: str) -> int:
        """Drop `owner`'s leases on events still pending, so any sender may claim them."""
        with self.lock:
            cursor = self._db.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL "
                "WHERE status = 'pending' AND lease_owner = ?",
                (owner,),
            )
            return cursor.rowcount

    def dead_letter(self, rejected: Iterable[tuple[int, str, int | None]]) -> int:
        """Set aside pending events as (id, error, HTTP status); return how many moved."""
        entries = list(rejected)
        if not entries:
            return 0
        now = time.time()

        def move() -> int:
            moved = 0
            for outbox_id, error, http_status in entries:
                cursor = self._db.execute(
                    "UPDATE outbox SET status = 'dead', lease_owner = NULL, lease_until = NULL "
                    "WHERE id = ? AND status = 'pending'",
                    (outbox_id,),
                )
                if cursor.rowcount:
                    self._db.execute(
                        "INSERT INTO dead_letters (outbox_id, error, http_status, dead_at) "
                        "VALUES (?, ?, ?, ?)",
                        (outbox_id, error, http_status, now),
                    )
                    moved += 1
            return moved

        with self.lock:
            result: int = self._transaction(move)
        return result

    def dead_letters(self, *, include_requeued: bool = False) -> list[DeadLetter]:
        """Return dead letters, oldest first (only those not re-queued, unless asked)."""
        where = "" if include_requeued else "WHERE d.requeued_at IS NULL"
        with self.lock:
            rows = self._db.execute(
                "SELECT d.id, o.transaction_id, o.subscription, o.code, o.value, o.record_id, "
                "d.error, d.http_status, d.dead_at, d.requeued_at "
                f"FROM dead_letters d JOIN outbox o ON o.id = d.outbox_id {where} ORDER BY d.id"
            ).fetchall()
        names = DeadLetter.__struct_fields__
        return [DeadLetter(**dict(zip(names, row, strict=True))) for row in rows]

    def requeue(self, dead_letter_ids: Sequence[int]) -> list[int]:
        """Put dead letters back in the queue; return the ids that were re-queued."""
        now = time.time()

        def move() -> list[int]:
            done = []
            for dead_id in dead_letter_ids:
                row = self._db.execute(
                    "SELECT outbox_id FROM dead_letters WHERE id = ? AND requeued_at IS NULL",
                    (dead_id,),
                ).fetchone()
                if row is None:
                    continue
                self._db.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0 "
                    "WHERE id = ? AND status = 'dead'",
                    (row[0],),
                )
                self._db.execute(
                    "UPDATE dead_letters SET requeued_at = ? WHERE id = ?", (now, dead_id)
                )
                done.append(dead_id)
            return done

        with self.lock:
            result: list[int] = self._transaction(move)
        return result

    def pending_count(self) -> int:
        """Return how many events wait for delivery (leased or not)."""
        with self.lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'")
            return int(row.fetchone()[0])

    def dead_count(self) -> int:
        """Return how many events are set aside and not re-queued."""
        with self.lock:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'")
            return int(row.fetchone()[0])

    def delivery_summary(self) -> DeliverySummary:
        """Return record counts per delivery status and event counts per outbox status."""
        with self.lock:
            by_delivery = {
                status or "unplanned": count
                for status, count in self._db.execute(
                    "SELECT delivery, count(*) FROM records GROUP BY delivery ORDER BY delivery"
                ).fetchall()
            }
            by_status = dict(
                self._db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
            )
            leased, oldest = self._db.execute(
                "SELECT count(lease_owner), min(queued_at) FROM outbox WHERE status = 'pending'"
            ).fetchone()
            (last_sent,) = self._db.execute(
                "SELECT max(sent_at) FROM outbox WHERE status = 'sent'"
            ).fetchone()
        return DeliverySummary(
            records_by_delivery=by_delivery,
            pending_events=by_status.get("pending", 0),
            sent_events=by_status.get("sent", 0),
            dead_events=by_status.get("dead", 0),
            leased_events=leased,
            oldest_pending_at=oldest,
            last_sent_at=last_sent,
        )

    def events(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Return outbox rows (id, transaction id, subscription, code, value, status, attempts)."""
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        with self.lock:
            rows = self._db.execute(
                "SELECT id, transaction_id, subscription, code, value, status, attempts, record_id "
                f"FROM outbox {where} ORDER BY id",
                params,
            ).fetchall()
        names = (
            "id",
            "transaction_id",
            "subscription",
            "code",
            "value",
            "status",
            "attempts",
            "record_id",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    # Reading records

    def queue_held(self, planner: Callable[[UsageRecord], DeliveryPlan]) -> int:
        """Plan the records held while the configuration was invalid; return how many queued."""
        with self.lock:
            held = [
                _record_decoder.decode(text)
                for (text,) in self._db.execute(
                    "SELECT record FROM records WHERE delivery = 'held'"
                ).fetchall()
            ]
        if not held:
            return 0
        queued_at = time.time()
        plans = [(record, planner(record)) for record in held]
        events = [row for record, plan in plans for row in _outbox_rows(record, plan, queued_at)]
        statuses = [(plan.status, record.record_id) for record, plan in plans]

        def update() -> int:
            self._db.executemany(_INSERT_EVENT, events)
            self._db.executemany(
                "UPDATE records SET delivery = ? WHERE record_id = ? AND delivery = 'held'",
                statuses,
            )
            return sum(1 for status, _ in statuses if status == "queued")

        with self.lock:
            result: int = self._transaction(update)
        return result

    def records(self) -> Iterator[UsageRecord]:
        """Yield every stored record, oldest first."""
        with self.lock:
            rows = self._db.execute("SELECT record FROM records ORDER BY created_at").fetchall()
        for (text,) in rows:
            yield _record_decoder.decode(text)

    def count(self) -> int:
        with self.lock:
            return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    def summary(self, by: GroupBy = "subscription") -> list[dict[str, Any]]:
        """Return token totals per group.

        Grouped by state, every record counts; otherwise only billable states
        (`complete` and `partial`) do.
        """
        column = {
            "subscription": "subscription",
            "model": "model",
            "provider": "provider",
            "state": "state",
        }[by]
        where = "" if by == "state" else "WHERE state IN ('complete', 'partial')"
        query = f"""
            SELECT {column} AS key, count(*) AS records,
                   coalesce(sum(input_tokens), 0), coalesce(sum(cached_input_tokens), 0),
                   coalesce(sum(cache_creation_tokens), 0), coalesce(sum(output_tokens), 0),
                   coalesce(sum(reasoning_tokens), 0)
            FROM records
            {where}
            GROUP BY {column} ORDER BY {column}
        """
        with self.lock:
            rows = self._db.execute(query).fetchall()
        names = (
            "key",
            "records",
            "input_tokens",
            "cached_input_tokens",
            "cache_creation_tokens",
            "output_tokens",
            "reasoning_tokens",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    def schema_version(self) -> int:
        with self.lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self.lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        _ledgers.discard(self)


_INSERT_RECORD = (
    "INSERT OR IGNORE INTO records (record_id, created_at, state, provider, api, model, "
    "response_id, subscription, input_tokens, cached_input_tokens, cache_creation_tokens, "
    "output_tokens, reasoning_tokens, total_tokens, record, delivery) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_EVENT = (
    "INSERT OR IGNORE INTO outbox (record_id, subscription, transaction_id, code, value, event, "
    "timestamp, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(record: UsageRecord, delivery: str | None) -> tuple[Any, ...]:
    usage = record.usage
    return (
        record.record_id,
        record.created_at.isoformat(),
        record.state,
        record.provider,
        record.api,
        record.model,
        record.response_id,
        record.subscription,
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_creation_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
        _encoder.encode(record).decode(),
        delivery,
    )


_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()
_ABANDONED: list[object] = []
"""Connections a child inherited while in use; never used or closed."""


def _before_fork() -> None:
    for ledger in list(_ledgers):
        ledger._close_for_fork()


def _after_fork_in_parent() -> None:
    for ledger in list(_ledgers):
        ledger._resume_after_fork(child=False)


def _after_fork_in_child() -> None:
    for ledger in list(_ledgers):
        ledger._resume_after_fork(child=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _outbox_rows(
    record: UsageRecord, plan: DeliveryPlan, queued_at: float
) -> list[tuple[Any, ...]]:
    """Return the outbox rows (`_INSERT_EVENT` parameters) of a record's planned events."""
    return [
        (
            record.record_id,
            event.external_subscription_id,
            event.transaction_id,
            event.code,
            _event_value(event),
            encode_event(event),
            event.timestamp,
            queued_at,
        )
        for event in plan.events
    ]


def _event_value(event: LagoEvent) -> int:
    """Return the token count an outbox row shows: a token event's value, a cost event's tokens."""
    properties = event.properties
    value = properties.get("value", properties.get("tokens", 0))
    return int(value)
