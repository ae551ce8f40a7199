"""Application processes the fault tests start, kill and inspect.

Run as `python tests/faults/apps.py SCENARIO ...` with `tokenwire` importable:

- `produce LEDGER LAGO_URL DURABILITY FLUSH_INTERVAL_S`: emits records until
  killed, printing one JSON line per record once `emit()` has returned:
  `{"record": ..., "at": <time.monotonic()>}`.
- `fork-mix LEDGER LAGO_URL OUT_DIR`: a parent with a running meter forks
  `multiprocessing` workers, then produces from 8 threads and an asyncio loop
  while they run. Every process writes the records it produced to
  `OUT_DIR/produced-<pid>.jsonl`. The parent exits without calling `flush()`,
  relying on the exit-time flush.

The Lago key is `tokenwire.testing.lago_server.DEFAULT_API_KEY`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import msgspec

import tokenwire
from tokenwire.testing.lago_server import DEFAULT_API_KEY
from tokenwire.usage import Usage, UsageRecord

FORK_WORKERS = 3
RECORDS_PER_WORKER = 150
THREADS = 8
RECORDS_PER_THREAD = 100
ASYNC_TASKS = 4
RECORDS_PER_TASK = 50

_encoder = msgspec.json.Encoder()


def make_record(tag: str, index: int) -> UsageRecord:
    """Return a billable record; its response id is unique per (tag, index)."""
    return UsageRecord(
        provider="openai",
        api="chat_completions",
        state="complete",
        usage=Usage(input_tokens=100 + index, cached_input_tokens=index % 3, output_tokens=7),
        response_id=f"chatcmpl-{tag}-{index}",
        subscription=f"sub_{index % 3}",
        dimensions={"feature": "faults"},
    )


def produce(ledger: str, lago_url: str, durability: str, flush_interval_s: str) -> None:
    meter = tokenwire.Meter(
        ledger=ledger,
        lago_api_key=DEFAULT_API_KEY,
        lago_url=lago_url,
        durability=durability,  # type: ignore[arg-type]
        flush_interval_s=float(flush_interval_s),
        retry_initial_s=0.01,
        retry_max_s=0.05,
    )
    out = sys.stdout.buffer
    for index in range(10**9):
        record = make_record("kill", index)
        meter.emit(record)
        at = time.monotonic()
        out.write(_encoder.encode({"record": record, "at": at}) + b"\n")
        out.flush()
        time.sleep(0.001)


class _Produced:
    """Records produced in this process, written to one file per process."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._lock = threading.Lock()
        self.records: list[UsageRecord] = []

    def add(self, record: UsageRecord) -> None:
        with self._lock:
            self.records.append(record)

    def save(self) -> None:
        path = self._out_dir / f"produced-{os.getpid()}.jsonl"
        with path.open("wb") as file:
            for record in self.records:
                file.write(_encoder.encode(record) + b"\n")


def _emit(produced: _Produced, tag: str, index: int) -> None:
    record = make_record(tag, index)
    tokenwire.get_meter().emit(record)
    produced.add(record)


def _worker(out_dir: str, number: int) -> None:
    produced = _Produced(Path(out_dir))
    for index in range(RECORDS_PER_WORKER):
        _emit(produced, f"worker{number}", index)
    produced.save()


async def _async_producers(produced: _Produced) -> None:
    async def task(number: int) -> None:
        for index in range(RECORDS_PER_TASK):
            _emit(produced, f"task{number}", index)
            await asyncio.sleep(0)

    await asyncio.gather(*(task(number) for number in range(ASYNC_TASKS)))


def fork_mix(ledger: str, lago_url: str, out_dir: str) -> None:
    tokenwire.configure(
        ledger=ledger, lago_api_key=DEFAULT_API_KEY, lago_url=lago_url, flush_interval_s=0.05
    )
    produced = _Produced(Path(out_dir))
    for index in range(50):  # the meter's threads are running before the fork
        _emit(produced, "parent", index)

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(out_dir, n)) for n in range(FORK_WORKERS)]
    for worker in workers:
        worker.start()

    threads = [
        threading.Thread(
            target=lambda n=n: [_emit(produced, f"thread{n}", i) for i in range(RECORDS_PER_THREAD)]
        )
        for n in range(THREADS)
    ]
    loop_thread = threading.Thread(target=lambda: asyncio.run(_async_producers(produced)))
    for thread in [*threads, loop_thread]:
        thread.start()
    for thread in [*threads, loop_thread]:
        thread.join()

    for worker in workers:
        worker.join(60)
    failed = [worker.exitcode for worker in workers if worker.exitcode != 0]
    produced.save()
    if failed:
        raise SystemExit(f"workers exited with {failed}")


if __name__ == "__main__":
    scenario, *arguments = sys.argv[1:]
    if scenario == "produce":
        produce(*arguments)
    elif scenario == "fork-mix":
        fork_mix(*arguments)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
