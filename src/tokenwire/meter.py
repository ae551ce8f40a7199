"""The meter: where transports hand records, and what moves them to the ledger.

Producing a record is an append to a `collections.deque` (atomic, no lock)
and at most an `Event.set()`. A daemon flusher thread, started on the first
record, drains the deque every `flush_interval_s` (or sooner when a batch
fills) and writes each batch to the SQLite ledger in one transaction. In the
default durability mode a record reaches the ledger within one flush interval;
a hard kill inside that window loses what was not yet written.
`durability="sync"` writes each record to the ledger in the producing thread
before the response is handed back closed, which closes that window.

Configuration comes from the environment (`TOKENWIRE_LEDGER`,
`TOKENWIRE_DURABILITY`, `TOKENWIRE_DISABLED`) and `configure()` overrides it.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from .delivery.ledger import Ledger, default_ledger_path
from .errors import ConfigurationError
from .usage import UsageRecord

__all__ = [
    "FlushResult",
    "Meter",
    "MeterStatistics",
    "RecordSink",
    "configure",
    "flush",
    "get_meter",
    "shutdown",
]

logger = logging.getLogger("tokenwire")

Durability = Literal["default", "sync"]

DEFAULT_FLUSH_INTERVAL_S = 0.5
"""How long a record may wait in memory before the flusher writes it to the ledger."""
MAX_BATCH_RECORDS = 500
"""Records written per ledger transaction; a full batch wakes the flusher early."""


class _FlushMarker:
    """Put in the ring by `flush()`; set once every record ahead of it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class RecordSink(Protocol):
    """Anything transports can hand records to."""

    @property
    def disabled(self) -> bool: ...

    def emit(self, record: UsageRecord) -> None: ...


class FlushResult(msgspec.Struct, frozen=True):
    """What `flush()` achieved; true at the moment it returns."""

    written: int
    """Records written to the ledger by this flush."""
    pending: int
    """Records still waiting in memory (non-zero only when the timeout ran out)."""


class MeterStatistics(msgspec.Struct, frozen=True):
    produced: int
    written: int
    pending: int
    ring_high_water: int
    faults: int


class Meter:
    """Collects records and writes them to a ledger from a background thread."""

    def __init__(
        self,
        *,
        ledger: Ledger | str | os.PathLike[str] | None = None,
        durability: Durability = "default",
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        disabled: bool = False,
    ) -> None:
        if durability not in ("default", "sync"):
            raise ConfigurationError(
                f"durability must be 'default' or 'sync', got {durability!r}"
            )
        if not flush_interval_s > 0:
            raise ConfigurationError(
                f"flush_interval_s must be a positive number of seconds, got {flush_interval_s!r}"
            )
        self._ledger_arg = ledger
        self._ledger: Ledger | None = ledger if isinstance(ledger, Ledger) else None
        self.durability: Durability = durability
        self.flush_interval_s = flush_interval_s
        self._disabled = disabled
        self._ring: collections.deque[UsageRecord | _FlushMarker] = collections.deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pid = os.getpid()
        self._produced = 0
        self._written = 0
        self._high_water = 0

    @property
    def disabled(self) -> bool:
        return self._disabled

    @property
    def ledger(self) -> Ledger:
        """The ledger, opened on first use."""
        if self._ledger is None:
            path = self._ledger_arg if self._ledger_arg is not None else default_ledger_path()
            self._ledger = Ledger(path)  # type: ignore[arg-type]
        return self._ledger

    def emit(self, record: UsageRecord) -> None:
        """Hand a record over; returns at once (sync durability: after the ledger write)."""
        self._produced += 1
        if self.durability == "sync":
            self._written += self.ledger.write([record])
            return
        ring = self._ring
        ring.append(record)
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if len(ring) >= MAX_BATCH_RECORDS:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="tokenwire-flusher", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._drain()
            if self._stopping and not self._ring:
                return

    def _drain(self) -> None:
        ring = self._ring
        self._high_water = max(self._high_water, len(ring))
        while ring:
            taken: list[UsageRecord | _FlushMarker] = []
            try:
                while len(taken) < MAX_BATCH_RECORDS:
                    taken.append(ring.popleft())
            except IndexError:
                pass
            batch = [item for item in taken if not isinstance(item, _FlushMarker)]
            try:
                self._written += self.ledger.write(batch)
            except Exception as exc:  # keep the records and retry later
                ring.extendleft(reversed(taken))
                report_fault("ledger", exc)
                return
            for item in taken:
                if isinstance(item, _FlushMarker):
                    item.done.set()

    def flush(self, timeout_s: float = 10.0) -> FlushResult:
        """Write every record produced so far to the ledger, waiting up to `timeout_s`."""
        before = self._written
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            self._drain()
        else:
            marker = _FlushMarker()
            self._ring.append(marker)
            self._wake.set()
            marker.done.wait(timeout_s)
        return FlushResult(written=self._written - before, pending=self._pending())

    def _pending(self) -> int:
        return sum(1 for item in list(self._ring) if not isinstance(item, _FlushMarker))

    def shutdown(self, timeout_s: float = 10.0) -> FlushResult:
        """Flush, then stop the flusher thread."""
        result = self.flush(timeout_s)
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout_s)
        return result

    def statistics(self) -> MeterStatistics:
        return MeterStatistics(
            produced=self._produced,
            written=self._written,
            pending=self._pending(),
            ring_high_water=max(self._high_water, len(self._ring)),
            faults=_faults.total,
        )


class _FaultLog:
    """Counts caught faults by stage and logs at most one line per stage per minute."""

    INTERVAL_S = 60.0

    def __init__(self) -> None:
        self.by_stage: dict[str, int] = {}
        self.total = 0
        self._last: dict[str, float] = {}

    def report(self, stage: str, exc: BaseException) -> None:
        self.total += 1
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1
        now = time.monotonic()
        if now - self._last.get(stage, -self.INTERVAL_S) >= self.INTERVAL_S:
            self._last[stage] = now
            logger.warning(
                "tokenwire caught a fault in %s (%d so far): %s: %s",
                stage, self.by_stage[stage], type(exc).__name__, exc,
            )


_faults = _FaultLog()


def report_fault(stage: str, exc: BaseException) -> None:
    """Count and log (rate-limited) a fault caught inside tokenwire."""
    _faults.report(stage, exc)


_meter: Meter | None = None
_meter_lock = threading.Lock()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _durability_from_env() -> Durability:
    value = os.environ.get("TOKENWIRE_DURABILITY", "default").strip().lower() or "default"
    if value not in ("default", "sync"):
        raise ConfigurationError(
            f"TOKENWIRE_DURABILITY must be 'default' or 'sync', got {value!r}"
        )
    return "sync" if value == "sync" else "default"


def get_meter() -> Meter:
    """Return the process-wide meter, built from the environment on first use."""
    global _meter
    meter = _meter
    if meter is None:
        with _meter_lock:
            if _meter is None:
                _meter = Meter(
                    durability=_durability_from_env(),
                    disabled=_env_flag("TOKENWIRE_DISABLED"),
                )
            meter = _meter
    return meter


def configure(
    *,
    ledger: str | os.PathLike[str] | None = None,
    durability: Durability | None = None,
    flush_interval_s: float | None = None,
    disabled: bool | None = None,
) -> Meter:
    """Replace the process-wide meter; unset arguments come from the environment.

    The previous meter is flushed and stopped first, so no record is lost.
    """
    global _meter
    new = Meter(
        ledger=Path(ledger) if ledger is not None else None,
        durability=durability if durability is not None else _durability_from_env(),
        flush_interval_s=(
            flush_interval_s if flush_interval_s is not None else DEFAULT_FLUSH_INTERVAL_S
        ),
        disabled=disabled if disabled is not None else _env_flag("TOKENWIRE_DISABLED"),
    )
    with _meter_lock:
        old, _meter = _meter, new
    if old is not None:
        old.shutdown()
    return new


def flush(timeout_s: float = 10.0) -> FlushResult:
    """Write every record produced so far by the process-wide meter to its ledger."""
    return get_meter().flush(timeout_s)


def shutdown(timeout_s: float = 10.0) -> FlushResult:
    """Flush and stop the process-wide meter."""
    return get_meter().shutdown(timeout_s)


@atexit.register
def _flush_at_exit() -> None:
    meter = _meter
    if meter is not None and (meter._ring or meter._thread is not None):
        try:
            meter.shutdown(timeout_s=5.0)
        except Exception as exc:  # interpreter is exiting
            logger.warning("tokenwire could not flush at exit: %s", exc)
