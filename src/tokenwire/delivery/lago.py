"""Lago's batch events API: settings, one request, and what its response means.

`LagoConfig` validates the base URL and API key once, at configuration
time. `LagoClient.send()` posts one batch to `POST /api/v1/events/batch`
with a plain `httpx2.Client` (never a metered one, so tokenwire does not
meter itself) and returns an `Outcome`; it raises nothing for HTTP or
network failures. `classify_response()` and `retry_delay_s()` are the pure
parts, kept apart so they can be tested without a server.

What a response means (Lago batches are atomic: a 422 stores none of the batch):

- 2xx: every event is stored.
- 422 with `error_details` keyed by event index: those events are invalid and
  the others were not stored. An index whose only error is an existing
  transaction id (`value_already_exist`) was delivered earlier.
- 422 `too_many_events` or 413: the batch is too large for this server.
- Other 4xx except 401/403/404/405: the batch as a whole was rejected without
  saying which event is at fault.
- 401/403 (the key), 404/405 and 3xx (the URL): configuration problems that
  resending cannot fix, so delivery pauses.
- 408, 425, 429, 5xx, timeouts and connection errors: try again later,
  after `Retry-After` or `X-RateLimit-Reset` when the server sends one.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx2
import msgspec

from ..errors import ConfigurationError
from .events import batch_payload

__all__ = [
    "BATCH_PATH",
    "DEFAULT_LAGO_URL",
    "LagoClient",
    "LagoConfig",
    "Outcome",
    "batch_endpoint",
    "classify_response",
    "retry_delay_s",
    "server_delay_s",
]

DEFAULT_LAGO_URL = "https://api.getlago.com"
BATCH_PATH = "/api/v1/events/batch"

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
"""Per read/write/pool phase; a batch of 100 events is a few tens of kilobytes."""
MAX_SERVER_DELAY_S = 600.0
"""Longest `Retry-After` / `X-RateLimit-Reset` wait honoured; larger values are taken as this."""
_EPOCH_SECONDS_FLOOR = 1_000_000_000
"""`X-RateLimit-Reset` values above this are Unix times, below it a number of seconds."""
_EPOCH_MILLISECONDS_FLOOR = 1_000_000_000_000

OutcomeKind = Literal["accepted", "retry", "paused", "too_large", "per_event", "rejected"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result of one batch request, and the sender's next step."""

    kind: OutcomeKind
    status: int | None = None
    """HTTP status, or None when no response arrived."""
    reason: str = ""
    """A log-safe description: status, Lago's error code, or the exception name."""
    server_delay_s: float | None = None
    """For `retry`: the wait the server asked for, if any."""
    errors: dict[int, Any] = msgspec.field(default_factory=dict)
    """For `per_event`: Lago's error details per event index."""
    duplicates: frozenset[int] = frozenset()
    """For `per_event`: indexes Lago already has (delivered earlier)."""


class LagoConfig:
    """The Lago endpoint, API key and timeout, validated when made. Its repr hides the key."""

    __slots__ = ("api_key", "base_url", "endpoint", "timeout_s")

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_LAGO_URL,
        api_key: str,
        timeout_s: float = REQUEST_TIMEOUT_S,
        url_setting: str = "lago_url",
        key_setting: str = "lago_api_key",
    ) -> None:
        self.endpoint = batch_endpoint(base_url, setting=url_setting)
        self.base_url = base_url
        _check_api_key(api_key, setting=key_setting)
        self.api_key = api_key
        if not timeout_s > 0:
            raise ConfigurationError(
                f"lago_timeout_s must be a positive number of seconds, got {timeout_s!r}"
            )
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"LagoConfig(endpoint={self.endpoint!r}, api_key='***')"


def batch_endpoint(base_url: str, *, setting: str = "TOKENWIRE_LAGO_URL") -> str:
    """Return the batch events URL for a Lago API base URL.

    `https://api.getlago.com`, `https://lago.example.com/` and
    `https://lago.example.com/api/v1` all work; the path `/api/v1/events/batch`
    is appended to the base.
    """
    example = "https://api.getlago.com"
    if not isinstance(base_url, str):
        raise ConfigurationError(f"{setting} must be a URL string such as {example}")
    text = base_url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port_valid = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise ConfigurationError(
            f"{setting} is not a valid URL ({exc}): {base_url!r}; use a URL such as {example}"
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_valid:
        raise ConfigurationError(
            f"{setting} must be an http or https URL with a host, such as {example}, "
            f"got {base_url!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"{setting} must not contain credentials; put the key in TOKENWIRE_LAGO_API_KEY "
            f"and set {setting} to the URL without them"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"{setting} must be the Lago API base URL without a query or fragment, "
            f"such as {example}, got {base_url!r}"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + BATCH_PATH, "", ""))


def _check_api_key(api_key: object, *, setting: str) -> None:
    # The messages never include the key itself.
    if not isinstance(api_key, str) or not api_key:
        raise ConfigurationError(
            f"{setting} must be a non-empty Lago API key; set TOKENWIRE_LAGO_API_KEY "
            f"(or LAGO_API_KEY)"
        )
    if any(char.isspace() or not char.isprintable() for char in api_key):
        raise ConfigurationError(
            f"{setting} contains whitespace or control characters; copy the key again "
            f"from Lago's developer settings without surrounding spaces or newlines"
        )


def server_delay_s(headers: Mapping[str, str], now: float) -> float | None:
    """Return the wait a 429/503 response requests, in seconds, or None when it names none.

    Reads `Retry-After` (seconds or an HTTP date) and `X-RateLimit-Reset`
    (seconds until the window resets, as Lago sends it, or a Unix time in
    seconds or milliseconds, as other servers do), takes the longer, and caps
    it at `MAX_SERVER_DELAY_S`. `now` is the current Unix time.
    """
    delays: list[float] = []
    retry_after = headers.get("retry-after")
    if retry_after:
        delays += _parse_retry_after(retry_after.strip(), now)
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            value = float(reset.strip())
        except ValueError:
            value = None
        if value is not None and value == value:  # skip NaN
            if value >= _EPOCH_MILLISECONDS_FLOOR:
                delays.append(value / 1000 - now)
            elif value >= _EPOCH_SECONDS_FLOOR:
                delays.append(value - now)
            else:
                delays.append(value)
    if not delays:
        return None
    longest: float = max(delays)
    return min(max(0.0, longest), MAX_SERVER_DELAY_S)


def _parse_retry_after(value: str, now: float) -> list[float]:
    try:
        return [float(value)]
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return []
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return [when.timestamp() - now]


def retry_delay_s(
    failures: int,
    *,
    server_delay: float | None,
    initial_s: float,
    max_s: float,
    rng: random.Random,
) -> float:
    """Return how long to wait before the next attempt after `failures` failures in a row.

    Exponential backoff with equal jitter: half of `initial_s * 2**(failures-1)`
    (capped at `max_s`) plus a random part up to the other half, so waits grow
    but senders in many processes do not retry in step. A server-requested
    delay is a floor: the wait is at least that, plus up to 10% (at most 1 s).
    """
    exponent = min(max(failures - 1, 0), 30)
    ceiling = min(max_s, initial_s * 2.0**exponent)
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if server_delay is not None:
        delay = max(delay, server_delay + rng.uniform(0, min(1.0, server_delay / 10)))
    return delay


def _lago_error_code(body: bytes) -> tuple[str, Any]:
    """Return Lago's error `code` and `error_details` from a JSON error body, if present."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "", None
    if not isinstance(decoded, dict):
        return "", None
    code = decoded.get("code")
    return (code if isinstance(code, str) else ""), decoded.get("error_details")


def _is_duplicate(details: Any) -> bool:
    """Return whether one event's only error is that Lago already has its transaction id."""
    if not isinstance(details, dict) or set(details) != {"transaction_id"}:
        return False
    codes = details["transaction_id"]
    return (
        isinstance(codes, list)
        and bool(codes)
        and all(isinstance(code, str) and "already_exist" in code for code in codes)
    )


def classify_response(
    status: int, headers: Mapping[str, str], body: bytes, *, batch_size: int, now: float
) -> Outcome:
    """Return what a batch response means (see the module docstring). `now` is Unix time."""
    if 200 <= status < 300:
        return Outcome(kind="accepted", status=status)
    if status in (408, 425, 429) or status >= 500:
        return Outcome(
            kind="retry",
            status=status,
            reason=f"HTTP {status}",
            server_delay_s=server_delay_s(headers, now),
        )
    if status in (401, 403):
        return Outcome(
            kind="paused",
            status=status,
            reason=f"Lago rejected the API key (HTTP {status}); check TOKENWIRE_LAGO_API_KEY",
        )
    if status in (404, 405) or 300 <= status < 400:
        where = headers.get("location")
        hint = f" (redirected to {where})" if where else ""
        return Outcome(
            kind="paused",
            status=status,
            reason=(
                f"the Lago batch endpoint returned HTTP {status}{hint}; check that "
                f"TOKENWIRE_LAGO_URL is the Lago API base URL"
            ),
        )
    code, details = _lago_error_code(body)
    if status == 413 or code == "too_many_events" or _names_too_many(details):
        return Outcome(kind="too_large", status=status, reason=f"HTTP {status} {code}".strip())
    if status == 422 and isinstance(details, dict):
        errors = {
            int(key): value
            for key, value in details.items()
            if isinstance(key, str) and key.isdigit() and int(key) < batch_size
        }
        if errors:
            duplicates = frozenset(index for index, value in errors.items() if _is_duplicate(value))
            return Outcome(
                kind="per_event",
                status=status,
                reason=f"HTTP {status} {code}".strip(),
                errors=errors,
                duplicates=duplicates,
            )
    detail = msgspec.json.encode(details).decode() if details is not None else ""
    reason = " ".join(part for part in (f"HTTP {status}", code, detail) if part)
    return Outcome(kind="rejected", status=status, reason=reason)


def _names_too_many(details: Any) -> bool:
    if not isinstance(details, dict):
        return False
    events = details.get("events")
    return isinstance(events, list) and "too_many_events" in events


class _OwnRequestsFilter(logging.Filter):
    """Drops httpx2's per-request INFO lines logged from tokenwire's own threads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not (record.threadName or "").startswith(
            "tokenwire-"
        )


_own_requests_filter = _OwnRequestsFilter()


def _quiet_own_requests() -> None:
    """Keep the sender's requests out of httpx2's INFO log: one line per batch is noise."""
    httpx_logger = logging.getLogger("httpx2")
    if _own_requests_filter not in httpx_logger.filters:
        httpx_logger.addFilter(_own_requests_filter)


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tokenwire/{version('tokenwire')}"
    except PackageNotFoundError:
        return "tokenwire"


class LagoClient:
    """Posts event batches to Lago over one kept-alive connection pool.

    Not thread-safe: one sender thread uses it. After `fork()` the child must
    call `abandon()`, which drops the pool without closing the parent's sockets.
    """

    def __init__(self, config: LagoConfig) -> None:
        self.config = config
        self._client: httpx2.Client | None = None

    def _http(self) -> httpx2.Client:
        if self._client is None:
            _quiet_own_requests()
            self._client = httpx2.Client(
                timeout=httpx2.Timeout(self.config.timeout_s, connect=CONNECT_TIMEOUT_S),
                headers={
                    "Authorization": f"Bearer {self.config.api_key}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": _user_agent(),
                },
                follow_redirects=False,
            )
        return self._client

    def send(self, events: Sequence[str], *, now: float) -> Outcome:
        """Post one batch of encoded events; return what happened. Never raises for I/O."""
        body = batch_payload(events)
        try:
            response = self._http().post(self.config.endpoint, content=body)
        except httpx2.TimeoutException as exc:
            return Outcome(kind="retry", reason=f"timed out ({type(exc).__name__})")
        except httpx2.HTTPError as exc:
            return Outcome(kind="retry", reason=f"{type(exc).__name__}: {exc}")
        return classify_response(
            response.status_code,
            response.headers,
            response.content,
            batch_size=len(events),
            now=now,
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def abandon(self) -> None:
        """Forget the connection pool without closing it (for a child after `fork()`)."""
        if self._client is not None:
            _ABANDONED.append(self._client)
        self._client = None


_ABANDONED: list[object] = []
"""Objects inherited across `fork()` that the child must neither use nor close."""
