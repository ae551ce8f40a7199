"""A Lago-compatible loopback server for tests, with faults on command.

`LagoServer` serves Lago's batch events endpoint, `POST /api/v1/events/batch`,
on 127.0.0.1 (port 0 picks a free port) from an asyncio loop in a
background thread. It checks what Lago checks and responds as Lago does:

- `Authorization: Bearer <api_key>`, else 401;
- at most `max_batch_events` (100) events, else 422 `too_many_events`;
- per event: a non-empty `transaction_id`, `external_subscription_id` and
  `code`; a numeric `timestamp` if present; an object `properties` whose
  `value`, if present, is a number or a numeric string; a subscription from
  `subscriptions` when that set is given;
- a transaction id already accepted for the same subscription (or repeated
  in the batch) is rejected with `value_already_exist`.

Batches are atomic, as in Lago: if any event is invalid the response is 422
with `error_details` keyed by event index and nothing of the batch is stored.
Accepted events are kept in order (`accepted`, `accepted_ids()`), and every
request is logged (`requests`).

Faults, on command: `go_down()` / `come_up()` (connections refused),
`fail_next(count, status=..., headers=...)` (for 500s, 429 with
`Retry-After`, 401/403), `set_delay()` (slow responses, before or after the
batch is stored), `poison()` (reject events matching a rule) and a changed
`api_key`.

It speaks enough HTTP/1.1 for HTTP clients: keep-alive and `Content-Length`
bodies; a chunked request body gets a 411.

`LagoServerProcess` runs it as a separate process (for benchmarks), which
calls `main()`: it prints one JSON line with its `url` and serves until
SIGTERM or SIGINT. `GET /_tokenwire/stats` returns its counters.
"""

from __future__ import annotations

import argparse
import asyncio
import decimal
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import httpx2
import msgspec

__all__ = [
    "DEFAULT_API_KEY",
    "LagoServer",
    "LagoServerProcess",
    "ReceivedRequest",
    "main",
]

DEFAULT_API_KEY = "tokenwire-test-key"
BATCH_PATH = "/api/v1/events/batch"
STATS_PATH = "/_tokenwire/stats"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body read; 100 events are a few tens of kilobytes."""
MAX_HEAD_BYTES = 64 * 1024
"""Largest request line plus headers."""

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_encoder = msgspec.json.Encoder()


class ReceivedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One request the server responded to."""

    at: float
    """`time.monotonic()` when its body had arrived."""
    path: str
    status: int
    events: int
    """Events in the body (0 when it was not a readable batch)."""
    fault: str | None = None
    """The injected fault that produced the response, if any."""


class _CannedResponse(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]
    body: bytes


def _error_body(status: int, code: str | None = None, details: Any = None) -> bytes:
    body: dict[str, Any] = {"status": status, "error": _REASONS.get(status, "Error")}
    if code is not None:
        body["code"] = code
    if details is not None:
        body["error_details"] = details
    return _encoder.encode(body)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _check_event(event: Any, subscriptions: Collection[str] | None) -> dict[str, list[str]]:
    """Return Lago-style errors of one event, keyed by field (empty when valid)."""
    if not isinstance(event, dict):
        return {"event": ["invalid_format"]}
    errors: dict[str, list[str]] = {}
    for field in ("transaction_id", "external_subscription_id", "code"):
        value = event.get(field)
        if not isinstance(value, str) or not value:
            errors[field] = ["value_is_mandatory"]
    subscription = event.get("external_subscription_id")
    if (
        subscriptions is not None
        and "external_subscription_id" not in errors
        and subscription not in subscriptions
    ):
        errors["external_subscription_id"] = ["subscription_not_found"]
    timestamp = event.get("timestamp")
    if timestamp is not None and not _is_number(timestamp):
        errors["timestamp"] = ["invalid_format"]
    properties = event.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            errors["properties"] = ["invalid_format"]
        elif "value" in properties and not _is_number(properties["value"]):
            errors["properties"] = ["value_is_not_valid_number"]
    amount = event.get("precise_total_amount_cents")
    if amount is not None and not _is_amount(amount):
        errors["precise_total_amount_cents"] = ["value_is_not_valid_number"]
    return errors


def _is_amount(value: Any) -> bool:
    """Return whether `value` is a non-negative decimal amount, as Lago's dynamic charge needs."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    try:
        amount = decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        return False
    return amount.is_finite() and amount >= 0


class LagoServer:
    """Lago's batch events endpoint on loopback, in a background thread."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        port: int = 0,
        max_batch_events: int = 100,
        subscriptions: Collection[str] | None = None,
        keep_events: bool = True,
    ) -> None:
        self.api_key = api_key
        """The key requests must carry; change it to make the server return 401."""
        self.max_batch_events = max_batch_events
        self.subscriptions = subscriptions
        self._keep_events = keep_events
        self._requested_port = port
        self._port = 0

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._accepted: list[dict[str, Any]] = []
        self._accepted_ids: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self._requests: list[ReceivedRequest] = []
        self._received = 0
        self._duplicates_rejected = 0
        self._canned: list[_CannedResponse] = []
        self._delay_s = 0.0
        self._delay_after_processing = False
        self._poison: list[tuple[Callable[[Mapping[str, Any]], bool], dict[str, list[str]]]] = []
        self._ids = itertools.count(1)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # Lifecycle

    def __enter__(self) -> LagoServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a daemon thread; return once the port is bound."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop, ready), name="lago-server", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._call(self._listen())

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None, "the server is not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        """Close every connection and stop the thread."""
        loop = self._loop
        if loop is None:
            return
        self._call(self._close())
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self._port or self._requested_port
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL to configure as `TOKENWIRE_LAGO_URL`."""
        return f"http://127.0.0.1:{self._port}"

    # Faults

    def go_down(self) -> None:
        """Stop listening and drop open connections: clients get connection refused."""
        self._call(self._close())

    def come_up(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._call(self._listen())

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        """Answer the next `count` batch requests with `status`, storing nothing."""
        canned = _CannedResponse(status, dict(headers or {}), body or _error_body(status))
        with self._lock:
            self._canned.extend([canned] * count)

    def set_delay(self, seconds: float, *, after_processing: bool = False) -> None:
        """Wait `seconds` before responding; `after_processing` stores the batch first."""
        with self._lock:
            self._delay_s = seconds
            self._delay_after_processing = after_processing

    def poison(
        self,
        rule: Callable[[Mapping[str, Any]], bool],
        error: Mapping[str, list[str]] | None = None,
    ) -> None:
        """Reject every event for which `rule(event)` is true with `error` (a 422 entry)."""
        with self._lock:
            self._poison.append(
                (rule, dict(error or {"properties": ["value_is_not_valid_number"]}))
            )

    def clear_faults(self) -> None:
        """Remove canned responses, delays and poison rules."""
        with self._lock:
            self._canned.clear()
            self._delay_s = 0.0
            self._poison.clear()

    # What happened

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Accepted events, in order (empty when made with `keep_events=False`)."""
        with self._lock:
            return list(self._accepted)

    def accepted_ids(self) -> list[tuple[str, str]]:
        """Return (subscription, transaction id) of every accepted event, in order."""
        with self._lock:
            return list(self._accepted_ids)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def duplicates_rejected(self) -> int:
        """Events rejected because their transaction id was already accepted."""
        with self._lock:
            return self._duplicates_rejected

    def statistics(self) -> dict[str, int]:
        with self._lock:
            return {
                "accepted": len(self._accepted_ids),
                "distinct": len(self._seen),
                "requests": len(self._requests),
                "received": self._received,
                "duplicates_rejected": self._duplicates_rejected,
            }

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until `count` requests got a response; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._requests) >= count, timeout_s)

    def wait_for_received(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until `count` batch requests have arrived, responded to or not; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._received >= count, timeout_s)

    def wait_for_accepted(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until `count` events were accepted; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._accepted_ids) >= count, timeout_s)

    # HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                method, path, headers = _parse_head(head)
                close = headers.get("connection", "").lower() == "close"
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    await self._write(writer, 411, {}, _error_body(411), close=True)
                    return
                length = int(headers.get("content-length") or 0)
                if length > MAX_BODY_BYTES:
                    await self._write(writer, 413, {}, _error_body(413), close=True)
                    return
                body = await reader.readexactly(length) if length else b""
                status, extra, payload = await self._respond(method, path, headers, body)
                await self._write(writer, status, extra, payload, close=close)
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        close: bool,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
            f"Connection: {'close' if close else 'keep-alive'}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        arrived = time.monotonic()
        if path == STATS_PATH and method == "GET":
            return 200, {}, _encoder.encode(self.statistics())
        if path != BATCH_PATH:
            return self._log(arrived, path, 404, 0, None, {}, _error_body(404, "not_found"))
        if method != "POST":
            return self._log(arrived, path, 405, 0, None, {}, _error_body(405))

        with self._changed:
            self._received += 1
            self._changed.notify_all()
            canned = self._canned.pop(0) if self._canned else None
            delay, after = self._delay_s, self._delay_after_processing
        if canned is not None:
            return self._log(
                arrived,
                path,
                canned.status,
                0,
                f"HTTP {canned.status}",
                canned.headers,
                canned.body,
            )
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return self._log(arrived, path, 401, 0, None, {}, _error_body(401))
        if delay and not after:
            await asyncio.sleep(delay)
        status, count, payload = self._process(body)
        if delay and after:
            await asyncio.sleep(delay)
        return self._log(arrived, path, status, count, None, {}, payload)

    def _log(
        self,
        arrived: float,
        path: str,
        status: int,
        events: int,
        fault: str | None,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        with self._changed:
            self._requests.append(
                ReceivedRequest(at=arrived, path=path, status=status, events=events, fault=fault)
            )
            self._changed.notify_all()
        return status, headers, body

    def _process(self, body: bytes) -> tuple[int, int, bytes]:
        """Validate and store one batch; return (status, event count, response body)."""
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return 400, 0, _error_body(400, "bad_request")
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list) or not events:
            return 422, 0, _error_body(422, "validation_errors", {"events": ["no_events"]})
        if len(events) > self.max_batch_events:
            return (
                422,
                len(events),
                _error_body(422, "validation_errors", {"events": ["too_many_events"]}),
            )

        with self._changed:
            errors: dict[str, dict[str, list[str]]] = {}
            keys: list[tuple[str, str]] = []
            in_batch: set[tuple[str, str]] = set()
            duplicates = 0
            for index, event in enumerate(events):
                problems = _check_event(event, self.subscriptions)
                key = (
                    (event["external_subscription_id"], event["transaction_id"])
                    if not problems
                    else ("", "")
                )
                if not problems and (key in self._seen or key in in_batch):
                    problems = {"transaction_id": ["value_already_exist"]}
                    duplicates += 1
                if not problems:
                    for rule, error in self._poison:
                        if rule(event):
                            problems = error
                            break
                if problems:
                    errors[str(index)] = problems
                in_batch.add(key)
                keys.append(key)
            if errors:
                self._duplicates_rejected += duplicates
                return 422, len(events), _error_body(422, "validation_errors", errors)
            self._seen.update(keys)
            self._accepted_ids.extend(keys)
            if self._keep_events:
                self._accepted.extend(events)
            self._changed.notify_all()
        return 200, len(events), _encoder.encode({"events": [self._echo(e) for e in events]})

    def _echo(self, event: dict[str, Any]) -> dict[str, Any]:
        lago_id = f"00000000-0000-4000-8000-{next(self._ids):012x}"
        return {
            "lago_id": lago_id,
            "transaction_id": event["transaction_id"],
            "lago_customer_id": None,
            "code": event["code"],
            "timestamp": event.get("timestamp"),
            "lago_subscription_id": None,
            "external_subscription_id": event["external_subscription_id"],
            "properties": event.get("properties") or {},
            "precise_total_amount_cents": event.get("precise_total_amount_cents"),
        }


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    if len(head) > MAX_HEAD_BYTES:
        raise ValueError("request head too large")
    request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target.split("?", 1)[0], headers


class LagoServerProcess:
    """`LagoServer` in a child process, started with `main()`."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        port: int = 0,
        keep_events: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self._port = port
        self._keep_events = keep_events
        self._delay_s = delay_s
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> LagoServerProcess:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (package_root, env.get("PYTHONPATH")) if part
        )
        # Not `-m`: `tokenwire.testing` imports this module, which runpy warns about.
        command = [
            sys.executable,
            "-c",
            "from tokenwire.testing.lago_server import main; main()",
            "--port",
            str(self._port),
            "--api-key",
            self.api_key,
        ]
        if self._keep_events:
            command.append("--keep-events")
        if self._delay_s:
            command += ["--delay-s", str(self._delay_s)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(5)
            raise RuntimeError(
                f"the Lago server process exited with status {self._process.returncode} "
                f"before printing its URL"
            )
        self.url = msgspec.json.decode(line)["url"]
        return self

    def statistics(self) -> dict[str, int]:
        """Return the server's counters (`accepted`, `distinct`, `requests`, ...)."""
        with httpx2.Client(trust_env=False) as client:
            response = client.get(self.url + STATS_PATH)
        result: dict[str, int] = response.json()
        return result

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tokenwire.testing.lago_server",
        description="Serve a Lago-compatible batch events endpoint on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the accepted bearer key")
    parser.add_argument(
        "--keep-events",
        action="store_true",
        help="keep accepted event bodies in memory, not only their ids",
    )
    parser.add_argument(
        "--delay-s",
        type=float,
        default=0.0,
        help="seconds to wait before responding to each batch (a slow Lago)",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with LagoServer(api_key=args.api_key, port=args.port, keep_events=args.keep_events) as server:
        server.set_delay(args.delay_s)
        sys.stdout.write(_encoder.encode({"url": server.url}).decode() + "\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
