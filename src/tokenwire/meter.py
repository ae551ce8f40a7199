"""The meter: where transports hand records, and what moves them to the ledger and Lago.

Producing a record (`Meter.emit`) appends it to a ring and at most sets an
`Event`. The ring is a `collections.deque` without `maxlen`, whose `append`
is atomic, so the hot path takes no lock. The ring's bound
(`max_ring_records`) is soft: when the ring is over it, the producing thread
writes its record to the ledger itself (slower, counted as `spilled`, logged
once), so back-pressure replaces loss.

Two daemon threads, started on the first record, do the rest:

- the writer drains the ring every `flush_interval_s` (sooner when a batch of
  `MAX_BATCH_RECORDS` is waiting) and writes each batch to the SQLite ledger
  in one transaction, together with the Lago events of the billable records;
- the sender (only with a Lago API key) posts those events to Lago in
  batches of at most 100 and marks them sent after a 2xx (see
  `tokenwire.delivery.sender`).

Durability. In the default mode a record reaches the ledger within one flush
interval (0.5 s by default) plus the time to write one batch, a few
milliseconds. A hard kill (SIGKILL, power loss, `os._exit`) inside that
window loses the records not yet written. A normal exit writes them
(`atexit`, and a `multiprocessing` finalizer in forked workers).
`durability="sync"` writes each record to the ledger in the producing
thread, before the response is handed back closed, and syncs it to disk
(`PRAGMA synchronous=FULL`), which closes that window. A record in the
ledger stays there, and its unsent events are resent after a restart, by
this or any process using the file.

After `fork()` the child gets a fresh ring, threads, ledger connection and
HTTP connections (`os.register_at_fork`, with a pid check as a fallback); the
parent keeps the records it had produced.

Configuration comes from the environment (`TOKENWIRE_LEDGER`,
`TOKENWIRE_DURABILITY`, `TOKENWIRE_DISABLED`, `TOKENWIRE_LAGO_API_KEY` or
`LAGO_API_KEY`, `TOKENWIRE_LAGO_URL`, `TOKENWIRE_DEFAULT_SUBSCRIPTION`) and
`configure()` overrides it.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from .attribution import UnattributedPolicy, configure_attribution, unattributed_policy
from .delivery.events import DeliveryPlan, EventCodes, LagoEvent, PriceMode, plan_delivery
from .delivery.lago import (
    CONNECT_TIMEOUT_S,
    DEFAULT_LAGO_URL,
    REQUEST_TIMEOUT_S,
    LagoClient,
    LagoConfig,
)
from .delivery.ledger import Ledger, default_ledger_path
from .delivery.sender import DEFAULT_RETRY_INITIAL_S, DEFAULT_RETRY_MAX_S, EventSender
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
"""How long a record may wait in memory before the writer puts it in the ledger."""
MAX_BATCH_RECORDS = 500
"""Records written per ledger transaction; a full batch wakes the writer early."""
DEFAULT_MAX_RING_RECORDS = 10_000
"""Soft bound of the ring: a few megabytes of records. Past it producers write directly."""
EXIT_FLUSH_TIMEOUT_S = 5.0
"""How long the exit-time flush may take, writing and delivering, for all meters together."""
FLUSH_POLL_S = 0.05
"""How often `flush()` looks again while events are leased by another process."""


class RecordSink(Protocol):
    """Anything transports can hand records to."""

    @property
    def disabled(self) -> bool: ...

    def emit(self, record: UsageRecord) -> None: ...


class FlushResult(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of one `flush()`, true at the moment it returns."""

    written: int
    """Records written to the ledger during this flush."""
    delivered: int = 0
    """Events Lago accepted during this flush (including ones it already had)."""
    dead_lettered: int = 0
    """Events Lago rejected during this flush, now in the dead-letter table."""
    pending_records: int = 0
    """Records still in memory, not in the ledger (non-zero only if the ledger failed)."""
    pending_events: int = 0
    """Events in the ledger waiting for delivery, from any process sharing it."""
    dead_letters: int = 0
    """Events in the ledger's dead-letter table, from any flush, not re-queued."""
    blocked: str | None = None
    """Reason delivery could not proceed (no API key, key rejected, wrong URL), or None."""

    @property
    def pending(self) -> int:
        """Records not yet in the ledger plus events not yet delivered."""
        return self.pending_records + self.pending_events


class MeterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one meter since it was made (or since `fork()`, in a child)."""

    produced: int
    """Records handed to `emit()`."""
    written: int
    """Records written to the ledger."""
    spilled: int
    """Of `written`, records the producing thread wrote itself because the ring was full."""
    pending_records: int
    """Records in the ring now."""
    ring_high_water: int
    """Most records seen in the ring at once."""
    delivered: int
    """Events Lago accepted (including those it already had)."""
    duplicates: int
    """Of `delivered`, events Lago already had (sent before a crash, or by another process)."""
    retried: int
    """Requests to Lago that failed and were scheduled again."""
    dead_lettered: int
    """Events Lago rejected, set aside."""
    faults: int
    """Faults caught inside tokenwire, in this process, all meters."""
    delivery_blocked: str | None
    """Reason delivery is paused, or None."""


def _positive_seconds(name: str, value: object, *, zero_allowed: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero_allowed)
    ):
        kind = "non-negative" if zero_allowed else "positive"
        raise ConfigurationError(
            f"{name} must be a {kind}, finite number of seconds, got {value!r}"
        )
    return float(value)


class Meter:
    """Collects records, writes them to a ledger and delivers their events to Lago.

    `lago_api_key` turns delivery on; without it records stay in the ledger.
    `lago_url` is the Lago API base (`https://api.getlago.com` by default;
    `/api/v1/events/batch` is appended). Records with no subscription of
    their own are billed to `default_subscription` under the
    `default_subscription` unattributed policy; otherwise they are kept in the
    ledger as unattributed and never sent. `price_mode` chooses what a
    billable record is sent as: token events (`"tokens"`), one `llm_cost`
    event priced by `tokenwire.pricing` (`"cost"`), or both (`"both"`). In
    `"cost"` mode an unpriced record is sent as token events instead.
    """

    def __init__(
        self,
        *,
        ledger: Ledger | str | os.PathLike[str] | None = None,
        durability: Durability = "default",
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        disabled: bool = False,
        lago_api_key: str | None = None,
        lago_url: str | None = None,
        default_subscription: str | None = None,
        event_codes: EventCodes | None = None,
        max_ring_records: int = DEFAULT_MAX_RING_RECORDS,
        lago_timeout_s: float = REQUEST_TIMEOUT_S,
        retry_initial_s: float = DEFAULT_RETRY_INITIAL_S,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        lease_s: float | None = None,
        price_mode: PriceMode = "tokens",
        configuration_problem: str | None = None,
    ) -> None:
        if price_mode not in ("tokens", "cost", "both"):
            raise ConfigurationError(
                f"price_mode must be 'tokens', 'cost' or 'both', got {price_mode!r}"
            )
        if durability not in ("default", "sync"):
            raise ConfigurationError(f"durability must be 'default' or 'sync', got {durability!r}")
        self.flush_interval_s = _positive_seconds("flush_interval_s", flush_interval_s)
        if (
            isinstance(max_ring_records, bool)
            or not isinstance(max_ring_records, int)
            or (max_ring_records < 1)
        ):
            raise ConfigurationError(
                f"max_ring_records must be a positive integer, got {max_ring_records!r}"
            )
        if default_subscription is not None and (
            not isinstance(default_subscription, str) or not default_subscription.strip()
        ):
            raise ConfigurationError(
                f"default_subscription must be a non-empty Lago external subscription id, "
                f"got {default_subscription!r}"
            )
        if event_codes is not None and not isinstance(event_codes, EventCodes):
            raise ConfigurationError(
                f"event_codes must be a tokenwire.EventCodes, got {type(event_codes).__name__}"
            )
        retry_initial_s = _positive_seconds("retry_initial_s", retry_initial_s)
        retry_max_s = _positive_seconds("retry_max_s", retry_max_s)
        if retry_max_s < retry_initial_s:
            raise ConfigurationError(
                f"retry_max_s ({retry_max_s}) must be at least retry_initial_s ({retry_initial_s})"
            )
        lago = None
        if lago_api_key is not None:
            lago = LagoConfig(
                base_url=lago_url if lago_url is not None else DEFAULT_LAGO_URL,
                api_key=lago_api_key,
                timeout_s=_positive_seconds("lago_timeout_s", lago_timeout_s),
            )
        elif lago_url is not None:
            LagoConfig(base_url=lago_url, api_key="unused")  # validates the URL
        if lease_s is None:
            lease_s = max(120.0, 4 * lago_timeout_s)
        lease_s = _positive_seconds("lease_s", lease_s)
        # One request may wait for a connection, connect, write and read.
        longest_request_s = 3 * lago_timeout_s + CONNECT_TIMEOUT_S
        if lago is not None and lease_s <= longest_request_s:
            raise ConfigurationError(
                f"lease_s ({lease_s}) must be more than 3 * lago_timeout_s + "
                f"{CONNECT_TIMEOUT_S:g} s ({longest_request_s:g} s), so that a lease never "
                f"expires while its request is in flight"
            )

        self._ledger: Ledger | None = ledger if isinstance(ledger, Ledger) else None
        self._ledger_path: Path | None = (
            ledger.path
            if isinstance(ledger, Ledger)
            else Path(ledger)
            if ledger is not None
            else None
        )
        self.durability: Durability = durability
        self._disabled = disabled
        self._max_ring_records = max_ring_records
        self._direct = durability == "sync"
        self._codes = event_codes if event_codes is not None else EventCodes()
        self._default_subscription = default_subscription
        self._lago = lago
        self._price_mode: PriceMode = price_mode
        self._configuration_problem = configuration_problem
        self._held_queued = False
        self._pricer: Any = None
        self._sender_options = (lease_s, retry_initial_s, retry_max_s)
        self._init_state()
        _meters.add(self)

    def _init_state(self, ring: collections.deque[UsageRecord] | None = None) -> None:
        """Create the ring, locks and counters (again in a child after `fork()`)."""
        self._pid = os.getpid()
        self._ring: collections.deque[UsageRecord] = (
            ring if ring is not None else collections.deque()
        )
        self._wake = threading.Event()
        self._ledger_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._written_changed = threading.Condition()
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._sender: EventSender | None = None
        if self._lago is not None:
            lease_s, retry_initial_s, retry_max_s = self._sender_options
            self._sender = EventSender(
                lambda: self.ledger,
                LagoClient(self._lago),
                lease_s=lease_s,
                retry_initial_s=retry_initial_s,
                retry_max_s=retry_max_s,
                report_fault=report_fault,
            )
        self._ring_written = 0
        self._direct_written = 0
        self._spilled = 0
        self._spill_logged = False
        self._high_water = 0

    @property
    def disabled(self) -> bool:
        return self._disabled

    @property
    def lago_enabled(self) -> bool:
        """Whether this meter sends events to Lago (an API key was configured)."""
        return self._lago is not None

    @property
    def ledger(self) -> Ledger:
        """The ledger, opened on first use."""
        ledger = self._ledger
        if ledger is None:
            with self._ledger_lock:
                if self._ledger is None:
                    self._ledger = Ledger(
                        self._ledger_path or default_ledger_path(),
                        synchronous="FULL" if self.durability == "sync" else "NORMAL",
                    )
                ledger = self._ledger
        if self._lago is not None and not self._held_queued:
            self._held_queued = True
            self._queue_held(ledger)
        return ledger

    def _queue_held(self, ledger: Ledger) -> None:
        """Queue the events of records held while the configuration was invalid."""
        try:
            queued = ledger.queue_held(self.plan)
        except Exception as exc:  # they stay held and are queued by the next meter
            report_fault("ledger", exc)
            return
        if queued:
            logger.info(
                "tokenwire queued %d record(s) held while its configuration was invalid", queued
            )

    def plan(self, record: UsageRecord) -> DeliveryPlan:
        """Return the delivery status and Lago events this meter gives `record`."""
        # Under `keep_local` an unattributed record stays in the ledger even
        # when a default subscription exists.
        default = (
            self._default_subscription if unattributed_policy() == "default_subscription" else None
        )
        try:
            plan = plan_delivery(
                record,
                codes=self._codes,
                default_subscription=default,
                lago_enabled=self._lago is not None or self._configuration_problem is not None,
                price_mode=self._price_mode,
                cost_event=self._cost_event,
            )
            if self._configuration_problem is not None and plan.status == "queued":
                # Kept for the first meter with a valid configuration to queue.
                return DeliveryPlan("held", plan.subscription)
            return plan
        except Exception as exc:  # one faulty record must not block the ledger
            report_fault("delivery-plan", exc)
            return DeliveryPlan("plan_failed", record.subscription or default)

    def _cost_event(self, record: UsageRecord, subscription: str) -> LagoEvent | None:
        """Return the `llm_cost` event of a record, or None when it is unpriced."""
        # Imported on first use: pricing loads the price database.
        from .pricing import cost_event, default_pricer

        try:
            if self._pricer is None:
                self._pricer = default_pricer()
            cost = self._pricer.price(record)
            if not cost.priced:
                return None
            return msgspec.convert(cost_event(record, cost, subscription=subscription), LagoEvent)
        except Exception as exc:  # token events are sent instead
            report_fault("pricing", exc)
            return None

    # The hot path

    def emit(self, record: UsageRecord) -> None:
        """Hand a record over; returns at once (sync durability: after the ledger write)."""
        ring = self._ring
        if self._direct or len(ring) >= self._max_ring_records:
            self._write_directly(record)
            return
        ring.append(record)
        if self._writer is None:
            self._start()
        elif len(ring) >= MAX_BATCH_RECORDS:
            self._nudge()

    def _nudge(self) -> None:
        """Wake the writer for a full batch; restart it if it is gone (a fork without hooks)."""
        if self._pid != os.getpid() or self._writer is None or not self._writer.is_alive():
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def _write_directly(self, record: UsageRecord) -> None:
        """Write one record in the caller's thread (sync mode, a full ring, or after shutdown)."""
        spilling = not self._direct
        if spilling:
            self._note_spill()
        try:
            written = self.ledger.write([record], self.plan)
        except Exception as exc:  # never dropped: the writer thread tries again
            report_fault("ledger", exc)
            self._ring.append(record)
            self._start()
            return
        _notify_record_observers([record])
        with self._count_lock:
            self._direct_written += 1
            if spilling:
                self._spilled += 1
        self._written_notify()
        if written.events and self._sender is not None:
            self._sender.start()
            self._sender.wake()

    def _note_spill(self) -> None:
        depth = len(self._ring)
        if depth > self._high_water:
            self._high_water = depth
        if not self._spill_logged:
            self._spill_logged = True
            logger.warning(
                "tokenwire's record ring contains %d records (max_ring_records=%d): the ledger "
                "writer is behind, so producing threads now write records to the ledger "
                "themselves until it catches up; nothing is dropped",
                depth,
                self._max_ring_records,
            )

    # Threads

    def _start(self) -> None:
        if self._pid != os.getpid():
            # A fork that skipped the at-fork hooks: keep the ring, whose records
            # the ledger deduplicates by record_id, rather than drop the child's.
            self._reset_after_fork(keep_ring=True)
        with self._start_lock:
            if self._writer is None or not self._writer.is_alive():
                self._stopping = False
                self._writer = threading.Thread(
                    target=self._run_writer, name="tokenwire-writer", daemon=True
                )
                self._writer.start()
        if self._sender is not None:
            self._sender.start()

    def _run_writer(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            drained = self._drain()
            if self._stopping and (drained or not self._ring):
                return

    def _drain(self, lock_timeout_s: float = -1) -> bool:
        """Write everything in the ring to the ledger; return False if the ledger failed."""
        if not self._drain_lock.acquire(timeout=lock_timeout_s):
            return False
        try:
            ring = self._ring
            depth = len(ring)
            if depth > self._high_water:
                self._high_water = depth
            while ring:
                batch: list[UsageRecord] = []
                try:
                    while len(batch) < MAX_BATCH_RECORDS:
                        batch.append(ring.popleft())
                except IndexError:
                    pass
                try:
                    written = self.ledger.write(batch, self.plan)
                except Exception as exc:  # keep the records and try again later
                    ring.extendleft(reversed(batch))
                    report_fault("ledger", exc)
                    return False
                _notify_record_observers(batch)
                self._ring_written += len(batch)
                self._written_notify()
                if written.events and self._sender is not None:
                    self._sender.wake()
            return True
        finally:
            self._drain_lock.release()

    def _written_notify(self) -> None:
        with self._written_changed:
            self._written_changed.notify_all()

    def _written(self) -> int:
        return self._ring_written + self._direct_written

    def wait_for_written(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` records have been written to the ledger; False on timeout."""
        with self._written_changed:
            return self._written_changed.wait_for(lambda: self._written() >= count, timeout_s)

    # Lifecycle

    def flush(self, timeout_s: float = 10.0, *, deliver: bool = True) -> FlushResult:
        """Write every record produced so far to the ledger, then deliver pending events.

        Waits up to `timeout_s` in all. Delivery covers every pending event
        in the ledger, including those of other processes and earlier runs;
        it stops early when it is blocked (see `FlushResult.blocked`).
        `deliver=False` only writes to the ledger.
        """
        return self._flush(timeout_s, deliver=deliver, wait_for_others=True)

    def _flush(self, timeout_s: float, *, deliver: bool, wait_for_others: bool) -> FlushResult:
        """Flush; `wait_for_others=False` runs one delivery pass and skips others' leases."""
        deadline = time.monotonic() + _positive_seconds("timeout_s", timeout_s, zero_allowed=True)
        if self._pid != os.getpid():
            self._reset_after_fork(keep_ring=True)
        written_before = self._written()
        sender_before = self._sender.statistics() if self._sender is not None else None

        self._drain(lock_timeout_s=max(0.0, deadline - time.monotonic()))
        if deliver and self._sender is not None:
            self._deliver_until(self._sender, deadline, wait_for_others=wait_for_others)

        pending_events = dead_letters = 0
        if self._ledger is not None or self._sender is not None:
            ledger = self.ledger
            pending_events = ledger.pending_count()
            dead_letters = ledger.dead_count()
        blocked = None
        delivered = dead_lettered = 0
        if self._sender is not None and sender_before is not None:
            after = self._sender.statistics()
            delivered = after.delivered - sender_before.delivered
            dead_lettered = after.dead_lettered - sender_before.dead_lettered
            blocked = after.blocked
        elif self._configuration_problem is not None:
            blocked = f"the configuration is invalid: {self._configuration_problem}"
        elif pending_events:
            blocked = "no Lago API key is configured (TOKENWIRE_LAGO_API_KEY)"
        return FlushResult(
            written=self._written() - written_before,
            delivered=delivered,
            dead_lettered=dead_lettered,
            pending_records=len(self._ring),
            pending_events=pending_events,
            dead_letters=dead_letters,
            blocked=blocked,
        )

    def _deliver_until(
        self, sender: EventSender, deadline: float, *, wait_for_others: bool
    ) -> None:
        while time.monotonic() < deadline:
            target = sender.request_pass()
            if not sender.alive:
                return  # stopped by shutdown()
            if not sender.wait_for_pass(target, deadline) or sender.blocked:
                return
            if not wait_for_others or self.ledger.pending_count() == 0:
                return
            # Pending events are leased by another process, or a backoff is running.
            time.sleep(min(FLUSH_POLL_S, max(0.0, deadline - time.monotonic())))

    def shutdown(self, timeout_s: float = 10.0, *, deliver: bool = True) -> FlushResult:
        """Flush, then stop the threads; records emitted later are written directly."""
        return self._shutdown(timeout_s, deliver=deliver, wait_for_others=True)

    def _shutdown(self, timeout_s: float, *, deliver: bool, wait_for_others: bool) -> FlushResult:
        deadline = time.monotonic() + _positive_seconds("timeout_s", timeout_s, zero_allowed=True)
        result = self._flush(timeout_s, deliver=deliver, wait_for_others=wait_for_others)
        self._direct = True
        self._stopping = True
        self._wake.set()
        writer = self._writer
        if writer is not None and writer.is_alive():
            writer.join(max(0.0, deadline - time.monotonic()))
        if self._sender is not None:
            self._sender.stop(max(0.0, deadline - time.monotonic()))
        if self._ring:
            self._drain(lock_timeout_s=max(0.0, deadline - time.monotonic()))
        return result

    def statistics(self) -> MeterStatistics:
        """Return the meter's counters; exact when no thread is producing at the same time."""
        sender = self._sender.statistics() if self._sender is not None else None
        pending = len(self._ring)
        written = self._written()
        return MeterStatistics(
            produced=written + pending,
            written=written,
            spilled=self._spilled,
            pending_records=pending,
            ring_high_water=max(self._high_water, pending),
            delivered=sender.delivered if sender else 0,
            duplicates=sender.duplicates if sender else 0,
            retried=sender.retried if sender else 0,
            dead_lettered=sender.dead_lettered if sender else 0,
            faults=_faults.total,
            delivery_blocked=sender.blocked if sender else None,
        )

    def _has_work(self) -> bool:
        return (
            bool(self._ring)
            or self._writer is not None
            or (self._sender is not None and self._sender.alive)
        )

    # fork()

    def _reset_after_fork(self, *, keep_ring: bool = False) -> None:
        """In a child: start over with nothing inherited in use, and no records unless kept.

        The ledger object stays: it closed its connection before the fork and
        opens a new one on next use.
        """
        if self._sender is not None:
            self._sender.abandon_after_fork()
        self._init_state(self._ring if keep_ring else None)
        _register_multiprocessing_exit()


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
                stage,
                self.by_stage[stage],
                type(exc).__name__,
                exc,
            )


_faults = _FaultLog()


def report_fault(stage: str, exc: BaseException) -> None:
    """Count and log (rate-limited) a fault caught inside tokenwire."""
    _faults.report(stage, exc)


# Record observers: callbacks that receive each batch of records once the ledger has
# written it (the OpenTelemetry export is one). They run on the writer thread, or on
# the producing thread after a direct ledger write (sync durability, a full ring),
# never on the hot path. A fault in an observer is counted and logged, never raised.

RecordObserver = Callable[[Sequence[UsageRecord]], None]
_record_observers: tuple[RecordObserver, ...] = ()


def add_record_observer(callback: RecordObserver) -> None:
    """Call `callback(records)` with every batch of records written to the ledger."""
    global _record_observers
    _record_observers = (*_record_observers, callback)


def remove_record_observer(callback: RecordObserver) -> None:
    """Stop calling `callback`; does nothing if it was not added."""
    global _record_observers
    _record_observers = tuple(item for item in _record_observers if item is not callback)


def _notify_record_observers(records: Sequence[UsageRecord]) -> None:
    for callback in _record_observers:
        try:
            callback(records)
        except Exception as exc:  # an observer never stops the ledger or delivery
            report_fault("record-observer", exc)


# Process-wide state: every meter, for fork() and exit handling.

_meters: weakref.WeakSet[Meter] = weakref.WeakSet()
_meter: Meter | None = None
_meter_lock = threading.Lock()
_multiprocessing_exit_pid = 0


def _after_fork_in_child() -> None:
    global _meter_lock
    _meter_lock = threading.Lock()
    for meter in list(_meters):
        meter._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _ForkToken:
    """A live object for `multiprocessing.util.register_after_fork`, which keeps weak references."""


_FORK_TOKEN = _ForkToken()


def _register_multiprocessing_exit() -> None:
    """Flush at exit in `multiprocessing` workers, which leave with `os._exit()`, skipping atexit.

    A forked worker runs `multiprocessing`'s after-fork callbacks and, on exit,
    its finalizers; this registers a finalizer from such a callback.
    """
    global _multiprocessing_exit_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None or _multiprocessing_exit_pid == os.getpid():
        return
    _multiprocessing_exit_pid = os.getpid()

    def register(_: object) -> None:
        util.Finalize(None, _flush_at_exit, exitpriority=100)

    util.register_after_fork(_FORK_TOKEN, register)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_text(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _durability_from_env() -> Durability:
    value = os.environ.get("TOKENWIRE_DURABILITY", "default").strip().lower() or "default"
    if value not in ("default", "sync"):
        raise ConfigurationError(f"TOKENWIRE_DURABILITY must be 'default' or 'sync', got {value!r}")
    return "sync" if value == "sync" else "default"


def lago_settings(api_key: str | None, url: str | None) -> tuple[str | None, str | None]:
    """Return the Lago (API key, URL): arguments first, then the environment.

    Raises `ConfigurationError` naming the argument or the environment
    variable the invalid value came from.
    """
    key_setting = "lago_api_key"
    if api_key is None:
        key_setting = (
            "TOKENWIRE_LAGO_API_KEY" if _env_text("TOKENWIRE_LAGO_API_KEY") else "LAGO_API_KEY"
        )
        api_key = _env_text(key_setting)
    url_setting = "lago_url"
    if url is None:
        url_setting = "TOKENWIRE_LAGO_URL"
        url = _env_text(url_setting)
    if api_key is not None or url is not None:
        LagoConfig(
            base_url=url or DEFAULT_LAGO_URL,
            api_key=api_key if api_key is not None else "unused",
            url_setting=url_setting,
            key_setting=key_setting,
        )
    return api_key, url


def _price_mode_from_env() -> PriceMode:
    value = os.environ.get("TOKENWIRE_PRICE_MODE", "").strip().lower() or "tokens"
    if value not in ("tokens", "cost", "both"):
        raise ConfigurationError(
            f"TOKENWIRE_PRICE_MODE must be 'tokens', 'cost' or 'both', got {value!r}"
        )
    return value  # type: ignore[return-value]


def _meter_from_env() -> Meter:
    api_key, url = lago_settings(None, None)
    return Meter(
        durability=_durability_from_env(),
        disabled=_env_flag("TOKENWIRE_DISABLED"),
        lago_api_key=api_key,
        lago_url=url,
        default_subscription=_env_text("TOKENWIRE_DEFAULT_SUBSCRIPTION"),
        price_mode=_price_mode_from_env(),
    )


def get_meter() -> Meter:
    """Return the process-wide meter, built from the environment on first use.

    An invalid environment is logged as an error and gives a meter that keeps
    records in the ledger without sending them, so that nothing is lost while
    the setting is fixed. `configure()` raises instead.
    """
    global _meter
    meter = _meter
    if meter is None:
        with _meter_lock:
            if _meter is None:
                try:
                    _meter = _meter_from_env()
                except ConfigurationError as exc:
                    logger.error(
                        "tokenwire's environment configuration is invalid: %s. Records are "
                        "held in the ledger and queued for Lago once it is fixed",
                        exc,
                    )
                    _meter = Meter(
                        disabled=_env_flag("TOKENWIRE_DISABLED"), configuration_problem=str(exc)
                    )
            meter = _meter
    return meter


def configure(
    *,
    ledger: str | os.PathLike[str] | None = None,
    durability: Durability | None = None,
    flush_interval_s: float | None = None,
    disabled: bool | None = None,
    lago_api_key: str | None = None,
    lago_url: str | None = None,
    default_subscription: str | None = None,
    event_codes: EventCodes | None = None,
    max_ring_records: int | None = None,
    unattributed: UnattributedPolicy | None = None,
    price_mode: PriceMode | None = None,
) -> Meter:
    """Replace the process-wide meter; unset arguments come from the environment.

    `unattributed` sets what happens to calls without a subscription (see
    `tokenwire.configure_attribution`). Raises `ConfigurationError` naming the
    setting and the fix, before anything changes. The previous meter writes
    its records to its ledger and stops first, so no record is lost. Its
    pending events are delivered by whichever meter uses that ledger.
    """
    configure_attribution(unattributed=unattributed, default_subscription=default_subscription)
    api_key, url = lago_settings(lago_api_key, lago_url)
    subscription = (
        default_subscription
        if default_subscription is not None
        else _env_text("TOKENWIRE_DEFAULT_SUBSCRIPTION")
    )
    new = Meter(
        ledger=Path(ledger) if ledger is not None else None,
        durability=durability if durability is not None else _durability_from_env(),
        flush_interval_s=(
            flush_interval_s if flush_interval_s is not None else DEFAULT_FLUSH_INTERVAL_S
        ),
        disabled=disabled if disabled is not None else _env_flag("TOKENWIRE_DISABLED"),
        lago_api_key=api_key,
        lago_url=url,
        default_subscription=subscription,
        event_codes=event_codes,
        max_ring_records=(
            max_ring_records if max_ring_records is not None else DEFAULT_MAX_RING_RECORDS
        ),
        price_mode=price_mode if price_mode is not None else _price_mode_from_env(),
    )
    global _meter
    with _meter_lock:
        old, _meter = _meter, new
    if old is not None:
        old.shutdown(deliver=False)
    return new


def flush(timeout_s: float = 10.0) -> FlushResult:
    """Write the process-wide meter's records to its ledger and deliver pending events."""
    return get_meter().flush(timeout_s)


def shutdown(timeout_s: float = 10.0) -> FlushResult:
    """Flush and stop the process-wide meter."""
    return get_meter().shutdown(timeout_s)


@atexit.register
def _flush_at_exit() -> None:
    deadline = time.monotonic() + EXIT_FLUSH_TIMEOUT_S
    for meter in list(_meters):
        if meter._pid != os.getpid() or not meter._has_work():
            continue
        try:
            # One delivery pass: events leased by other processes, or waiting out
            # a Lago outage, are delivered later by whichever process runs next.
            meter._shutdown(
                max(0.001, deadline - time.monotonic()), deliver=True, wait_for_others=False
            )
        except Exception as exc:  # the interpreter is exiting
            logger.warning("tokenwire could not flush at exit: %s: %s", type(exc).__name__, exc)
