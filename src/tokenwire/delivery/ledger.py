"""The embedded SQLite ledger: the local record of every usage record.

One row per record, keyed by `record_id`, so writing the same record twice
is a no-op. The full record is stored as JSON beside the columns reports
group by. The file is opened in WAL mode, created with mode 0600, and its
schema is versioned with `PRAGMA user_version` and migrated forward on open.
It stores counts, ids, model names and attribution; never prompt or
completion text.

A `Ledger` object may be shared by threads: every statement runs under one lock.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..errors import ConfigurationError
from ..usage import UsageRecord

__all__ = ["SCHEMA_VERSION", "Ledger", "default_ledger_path"]

SCHEMA_VERSION = 1

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
}

GroupBy = Literal["subscription", "model", "provider", "state"]

_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(UsageRecord)


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


class Ledger:
    """A SQLite ledger file of usage records."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Create the file owner-only before SQLite opens it.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"cannot open the ledger at {self.path}: {exc}; set TOKENWIRE_LEDGER "
                f"(or --ledger) to a writable file path"
            ) from exc
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the ledger at {self.path} has schema version {version}, newer than this "
                    f"tokenwire ({SCHEMA_VERSION}); upgrade tokenwire or use another ledger path"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                self._db.execute("BEGIN IMMEDIATE")
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")
                self._db.execute("COMMIT")

    def write(self, records: Sequence[UsageRecord]) -> int:
        """Store records in one transaction; return how many were new."""
        if not records:
            return 0
        rows = [_row(record) for record in records]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO records VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def records(self) -> Iterator[UsageRecord]:
        """Yield every stored record, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM records ORDER BY created_at").fetchall()
        for (text,) in rows:
            yield _record_decoder.decode(text)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])

    def summary(self, by: GroupBy = "subscription") -> list[dict[str, Any]]:
        """Return token totals per group.

        Grouped by state, every record counts; otherwise only billable states
        (`complete` and `partial`) do.
        """
        column = {"subscription": "subscription", "model": "model",
                  "provider": "provider", "state": "state"}[by]
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
        with self._lock:
            rows = self._db.execute(query).fetchall()
        names = ("key", "records", "input_tokens", "cached_input_tokens",
                 "cache_creation_tokens", "output_tokens", "reasoning_tokens")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(record: UsageRecord) -> tuple[Any, ...]:
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
    )
