"""The sender thread: moves events from the ledger's outbox to Lago.

One daemon thread per meter runs delivery passes. A pass claims pending
events from the ledger (a lease, so other processes sharing the file skip
them) and posts them in batches of at most 100. A 2xx marks the batch sent,
in one ledger transaction per claim of up to ten batches. Per-event
rejections move those events to the dead-letter table, and the rest are
resent at once. A failure that may clear by itself (connection error,
timeout, 429, 5xx) ends the pass with the events released and a backoff
scheduled. A rejected API key or a wrong URL pauses delivery for `PAUSE_S`,
logged once. Nothing is dropped in any case.

Passes run when the meter writes new events (`wake()`), when `flush()`
requests one (`request_pass()` / `wait_for_pass()`), and every
`IDLE_POLL_S` to pick up events written by other processes or released by
expired leases.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import msgspec

from .events import MAX_BATCH_EVENTS
from .lago import LagoClient, Outcome, retry_delay_s
from .ledger import Ledger, lease_owner_id

__all__ = ["PAUSE_S", "EventSender", "SenderStatistics"]

logger = logging.getLogger("tokenwire.delivery")

IDLE_POLL_S = 1.0
"""How often an idle sender looks for events other processes or expired leases left."""
PAUSE_S = 300.0
"""How long delivery pauses after Lago rejects the key or the URL, before one quiet retry."""
CLAIM_EVENTS = 10 * MAX_BATCH_EVENTS
"""Events leased per ledger transaction: ten batches, to amortize the transaction."""
MAX_IN_FLIGHT = 2
"""Batch requests one sender has open at once, so that client and server work overlap."""
DEFAULT_RETRY_INITIAL_S = 0.5
DEFAULT_RETRY_MAX_S = 60.0
LOG_INTERVAL_S = 60.0
"""At most one retry or dead-letter warning per this many seconds; the rest are counted."""


class SenderStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one sender since it was made."""

    requests: int
    delivered: int
    """Events Lago accepted, including those it already had."""
    duplicates: int
    """Of `delivered`, events Lago reported it already had (sent before a crash or by a peer)."""
    retried: int
    """Requests that failed in a way that clears by itself and were scheduled again."""
    dead_lettered: int
    blocked: str | None
    """Reason delivery is paused, or None."""


class _Posting:
    """One batch handed to a helper thread, and its outcome once posted."""

    __slots__ = ("body", "done", "now", "outcome")

    def __init__(self, body: list[str], now: float) -> None:
        self.body = body
        self.now = now
        self.done = threading.Event()
        self.outcome = Outcome(kind="retry", reason="not sent")

    def result(self) -> Outcome:
        self.done.wait()
        return self.outcome


class _Helpers:
    """Daemon threads that post batches beside the sender thread.

    Not a `concurrent.futures` pool: those refuse work once the interpreter
    starts to exit, which is when the exit-time flush needs them.
    """

    def __init__(self, client: LagoClient, count: int) -> None:
        self._client = client
        self._queue: queue.SimpleQueue[_Posting | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"tokenwire-sender-http-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, body: list[str], now: float) -> _Posting:
        posting = _Posting(body, now)
        self._queue.put(posting)
        return posting

    def _run(self) -> None:
        while (posting := self._queue.get()) is not None:
            try:
                posting.outcome = self._client.send(posting.body, now=posting.now)
            except Exception as exc:  # not an I/O error (send() catches those): log it as a retry
                posting.outcome = Outcome(kind="retry", reason=f"{type(exc).__name__}: {exc}")
            finally:
                posting.done.set()

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


class _EndPass(Exception):
    """Raised to end a pass after a response that stops sending for now."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class EventSender:
    """Delivers the outbox of one ledger to Lago from a background thread."""

    def __init__(
        self,
        ledger: Callable[[], Ledger],
        client: LagoClient,
        *,
        lease_s: float,
        retry_initial_s: float = DEFAULT_RETRY_INITIAL_S,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        report_fault: Callable[[str, BaseException], None],
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._lease_s = lease_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._report_fault = report_fault
        self._rng = random.Random()
        self._owner = lease_owner_id(uuid.uuid4().hex[:12])
        self._batch_events = MAX_BATCH_EVENTS
        self._accepted: list[int] = []
        """Ids Lago accepted (2xx, or already had) that the ledger does not yet mark sent."""
        self._accepted_duplicates = 0

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._requested = 0
        self._completed = 0
        self._thread: threading.Thread | None = None
        self._helpers: _Helpers | None = None
        self._start_lock = threading.Lock()

        self._retry_at = 0.0
        self._failures = 0
        self._paused_until = 0.0
        self._blocked: str | None = None
        self._last_warning = -LOG_INTERVAL_S
        self._suppressed = 0

        self._requests = 0
        self._delivered = 0
        self._duplicates = 0
        self._retried = 0
        self._dead_lettered = 0

    # Control, from any thread

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="tokenwire-sender", daemon=True
                )
                self._thread.start()

    def wake(self) -> None:
        """Ask for a pass soon (new events were written)."""
        if not self._wake.is_set():
            self._wake.set()

    def request_pass(self) -> int:
        """Ask for a pass that starts after this call; return its number for `wait_for_pass()`."""
        self.start()
        with self._progress:
            self._requested += 1
            target = self._requested
        self._wake.set()
        return target

    def wait_for_pass(self, target: int, deadline: float) -> bool:
        """Wait until pass `target` has finished or `deadline` (monotonic) passes."""
        with self._progress:
            return self._progress.wait_for(
                lambda: self._completed >= target or self._stop.is_set(),
                timeout=max(0.0, deadline - time.monotonic()),
            )

    @property
    def blocked(self) -> str | None:
        """Reason delivery is paused (rejected key or URL), or None."""
        return self._blocked if self._paused_until > time.monotonic() else None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float) -> None:
        """Stop after the request in flight, release leased events, and close the connection."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                return  # still in a request; the daemon thread ends with the process
        if self._helpers is not None:
            self._helpers.stop()
        self._client.close()

    def abandon_after_fork(self) -> None:
        """Forget the parent's thread and connections (the child calls this after `fork()`)."""
        self._client.abandon()
        self._thread = None
        self._helpers = None

    def statistics(self) -> SenderStatistics:
        return SenderStatistics(
            requests=self._requests,
            delivered=self._delivered,
            duplicates=self._duplicates,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            blocked=self.blocked,
        )

    # The thread

    def _run(self) -> None:
        idle = False
        while not self._stop.is_set():
            now = time.monotonic()
            if self._retry_at > now:
                self._stop.wait(self._retry_at - now)
                continue
            if idle:
                self._wake.wait(IDLE_POLL_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._progress:
                target = self._requested
            try:
                idle = self._pass()
            except Exception as exc:  # the thread must outlive any fault: back off, go on
                self._report_fault("delivery", exc)
                self._schedule_retry(None)
                idle = False
            with self._progress:
                self._completed = max(self._completed, target)
                self._progress.notify_all()
        self._release()
        with self._progress:
            self._progress.notify_all()

    def _pass(self) -> bool:
        """Run one delivery pass; return whether the sender may idle afterwards."""
        if self._paused_until > time.monotonic():
            return True
        try:
            while not self._stop.is_set():
                rows = self._ledger().claim(self._owner, limit=CLAIM_EVENTS, lease_s=self._lease_s)
                if not rows:
                    return True
                finished = self._send_claim(rows)
                self._mark_accepted()
                if not finished:
                    self._release()  # claimed again below, under a fresh lease
            return True
        except _EndPass as end:
            self._mark_accepted()
            self._release()
            self._end_pass(end.outcome)
            return end.outcome.kind == "paused"
        except Exception as exc:  # a ledger fault: keep everything, try again later
            self._report_fault("delivery", exc)
            self._accepted.clear()  # resent later; Lago reports them as duplicates
            self._accepted_duplicates = 0
            self._release()
            self._schedule_retry(None)
            return False
        finally:
            if self._stop.is_set():
                self._release()

    def _mark_accepted(self) -> None:
        """Mark what Lago accepted as sent, in one transaction for up to a claim of events.

        Marks trail the responses by at most one claim (`CLAIM_EVENTS`): after a
        crash those events are sent again, and Lago, which deduplicates on
        transaction id, reports them as already delivered.
        """
        if not self._accepted:
            return
        ids, self._accepted = self._accepted, []
        duplicates, self._accepted_duplicates = self._accepted_duplicates, 0
        self._delivered += self._ledger().mark_sent(ids)
        self._duplicates += duplicates

    def _release(self) -> None:
        try:
            self._ledger().release(self._owner)
        except Exception as exc:  # the lease expires on its own
            self._report_fault("delivery", exc)

    def _send_claim(self, rows: Sequence[tuple[int, str]]) -> bool:
        """Send claimed rows in batches, `MAX_IN_FLIGHT` requests at a time; may raise `_EndPass`.

        Every response is settled, so a batch accepted beside a failed one is
        still marked sent; the first failure then ends the pass. Returns False
        when it stopped early, with half the lease gone (a slow Lago) or on
        `stop()`, so that no other sender claims rows this one is still sending.
        """
        claimed_at = time.monotonic()
        size = self._batch_events
        batches = [rows[start : start + size] for start in range(0, len(rows), size)]
        end: Outcome | None = None
        for first in range(0, len(batches), MAX_IN_FLIGHT):
            if end is not None:
                break
            if self._stop.is_set() or time.monotonic() - claimed_at > self._lease_s / 2:
                return False
            group = batches[first : first + MAX_IN_FLIGHT]
            for batch, outcome in zip(group, self._post_all(group), strict=True):
                if outcome.kind in ("retry", "paused"):
                    end = _stricter(end, outcome)
                elif end is None or outcome.kind == "accepted":
                    try:
                        self._settle(batch, outcome)
                    except _EndPass as stopped:  # a resend inside failed: settle the rest
                        end = end or stopped.outcome
        if end is not None:
            raise _EndPass(end)
        return True

    def _post_all(self, batches: Sequence[Sequence[tuple[int, str]]]) -> list[Outcome]:
        """Post batches at once (one per connection); return their outcomes in order."""
        self._requests += len(batches)
        now = time.time()
        bodies = [[event for _, event in batch] for batch in batches]
        if len(bodies) == 1:
            return [self._client.send(bodies[0], now=now)]
        if self._helpers is None:
            self._helpers = _Helpers(self._client, MAX_IN_FLIGHT - 1)
        # The sender thread posts the first batch itself while helpers post the rest.
        waiting = [self._helpers.submit(body, now) for body in bodies[1:]]
        return [self._client.send(bodies[0], now=now), *(item.result() for item in waiting)]

    def _send(self, rows: Sequence[tuple[int, str]]) -> None:
        """Send rows as one batch and settle each in the ledger; may raise `_EndPass`."""
        [outcome] = self._post_all([rows])
        self._settle(rows, outcome)

    def _settle(self, rows: Sequence[tuple[int, str]], outcome: Outcome) -> None:
        """Record one batch's outcome in the ledger; may resend parts of it."""
        ids = [row_id for row_id, _ in rows]
        if outcome.kind == "accepted":
            self._accepted += ids
            self._recovered()
            return
        if outcome.kind in ("retry", "paused"):
            raise _EndPass(outcome)
        self._recovered()
        if outcome.kind == "per_event":
            self._settle_per_event(rows, outcome)
            return
        if outcome.kind == "too_large" and len(rows) > 1:
            self._batch_events = max(1, len(rows) // 2)
            logger.warning(
                "Lago rejected a batch of %d events as too large (%s); sending at most %d "
                "per request from now on",
                len(rows),
                outcome.reason,
                self._batch_events,
            )
        if len(rows) > 1:
            # The server did not say which event is at fault: halve until it is found.
            middle = len(rows) // 2
            self._send(rows[:middle])
            self._send(rows[middle:])
            return
        self._dead_letter([(ids[0], outcome.reason, outcome.status)])

    def _settle_per_event(self, rows: Sequence[tuple[int, str]], outcome: Outcome) -> None:
        duplicates = [rows[index][0] for index in sorted(outcome.duplicates)]
        rejected = [
            (
                rows[index][0],
                f"HTTP {outcome.status} {msgspec.json.encode(details).decode()}",
                outcome.status,
            )
            for index, details in sorted(outcome.errors.items())
            if index not in outcome.duplicates
        ]
        self._accepted += duplicates
        self._accepted_duplicates += len(duplicates)
        self._dead_letter(rejected)
        rest = [row for index, row in enumerate(rows) if index not in outcome.errors]
        if rest:
            # A 422 stores nothing of the batch, so the valid events go again at once.
            self._send(rest)

    def _dead_letter(self, rejected: list[tuple[int, str, int | None]]) -> None:
        if not rejected:
            return
        self._dead_lettered += self._ledger().dead_letter(rejected)
        self._warn(
            "Lago rejected %d event(s), set aside as dead letters (first: outbox id %d, %s); "
            "list them with `tokenwire dead-letters`",
            len(rejected),
            rejected[0][0],
            rejected[0][1],
        )

    def _end_pass(self, outcome: Outcome) -> None:
        now = time.monotonic()
        if outcome.kind == "paused":
            first = self._paused_until == 0.0 or self._blocked != outcome.reason
            self._paused_until = now + PAUSE_S
            self._blocked = outcome.reason
            if first:
                logger.error(
                    "tokenwire paused delivery to Lago: %s. Events stay in the ledger; "
                    "delivery is tried again in %.0f s, or fix the setting and restart "
                    "(or call tokenwire.configure())",
                    outcome.reason,
                    PAUSE_S,
                )
            return
        self._retried += 1
        delay = self._schedule_retry(outcome.server_delay_s)
        self._warn(
            "Lago delivery failed (%s), attempt %d; retrying in %.2f s, events stay in the ledger",
            outcome.reason,
            self._failures,
            delay,
        )

    def _schedule_retry(self, server_delay: float | None) -> float:
        """Count a failure and set when the next pass may run; return the delay in seconds."""
        self._failures += 1
        delay = retry_delay_s(
            self._failures,
            server_delay=server_delay,
            initial_s=self._retry_initial_s,
            max_s=self._retry_max_s,
            rng=self._rng,
        )
        self._retry_at = time.monotonic() + delay
        return delay

    def _recovered(self) -> None:
        if self._failures or self._blocked:
            logger.info("Lago delivery recovered after %d failed attempt(s)", self._failures)
        self._failures = 0
        self._paused_until = 0.0
        self._blocked = None

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning < LOG_INTERVAL_S:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} similar warning(s) suppressed)"
            self._suppressed = 0
        self._last_warning = now
        logger.warning(message, *args)


def _stricter(current: Outcome | None, new: Outcome) -> Outcome:
    """Return the outcome that ends a pass for longer: a pause, else the longer server delay.

    Two batches in flight can fail differently (a 500 beside a 429); the
    Retry-After of one must not be lost because the other failed first.
    """
    if current is None:
        return new
    if (current.kind == "paused") != (new.kind == "paused"):
        return current if current.kind == "paused" else new
    if (new.server_delay_s or 0.0) > (current.server_delay_s or 0.0):
        return new
    return current
