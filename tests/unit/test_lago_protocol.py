"""Lago's batch API without a server: endpoint URLs, keys, responses and retry delays."""

from __future__ import annotations

import random

import msgspec
import pytest

from tokenwire.delivery.lago import (
    MAX_SERVER_DELAY_S,
    LagoConfig,
    Outcome,
    batch_endpoint,
    classify_response,
    retry_delay_s,
    server_delay_s,
)
from tokenwire.delivery.sender import _stricter
from tokenwire.errors import ConfigurationError

NOW = 1_750_000_000.0
"""A fixed Unix time for delay computations."""
SECRET_KEY = "lago-secret-key-123"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        pytest.param(
            "https://api.getlago.com", "https://api.getlago.com/api/v1/events/batch", id="cloud"
        ),
        pytest.param(
            "https://api.getlago.com/",
            "https://api.getlago.com/api/v1/events/batch",
            id="trailing-slash",
        ),
        pytest.param(
            "https://lago.example.com/api/v1",
            "https://lago.example.com/api/v1/events/batch",
            id="ends-in-api-v1",
        ),
        pytest.param(
            "https://lago.example.com/api/v1/",
            "https://lago.example.com/api/v1/events/batch",
            id="ends-in-api-v1-slash",
        ),
        pytest.param(
            "http://127.0.0.1:3000", "http://127.0.0.1:3000/api/v1/events/batch", id="loopback-port"
        ),
        pytest.param(
            "https://example.com/lago",
            "https://example.com/lago/api/v1/events/batch",
            id="path-prefix",
        ),
        pytest.param(
            "  https://api.getlago.com  ",
            "https://api.getlago.com/api/v1/events/batch",
            id="spaces",
        ),
    ],
)
def test_batch_endpoint(base: str, expected: str) -> None:
    assert batch_endpoint(base) == expected


@pytest.mark.parametrize(
    ("base", "message"),
    [
        pytest.param("api.getlago.com", "http or https URL", id="no-scheme"),
        pytest.param("ftp://api.getlago.com", "http or https URL", id="ftp"),
        pytest.param("https://", "http or https URL", id="no-host"),
        pytest.param(
            "https://user:pw@lago.example.com", "must not contain credentials", id="credentials"
        ),
        pytest.param("https://lago.example.com?x=1", "without a query", id="query"),
        pytest.param("https://lago.example.com:99999", "not a valid URL", id="bad-port"),
    ],
)
def test_batch_endpoint_invalid(base: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        batch_endpoint(base, setting="TOKENWIRE_LAGO_URL")

    assert "TOKENWIRE_LAGO_URL" in str(caught.value)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(f"{SECRET_KEY}\n", id="newline"),
        pytest.param(f" {SECRET_KEY}", id="space"),
        pytest.param(f"{SECRET_KEY}\x00", id="nul"),
    ],
)
def test_lago_config_rejects_key_without_echoing_it(key: str) -> None:
    with pytest.raises(ConfigurationError, match="whitespace or control") as caught:
        LagoConfig(api_key=key, key_setting="TOKENWIRE_LAGO_API_KEY")

    assert "TOKENWIRE_LAGO_API_KEY" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_lago_config_empty_key() -> None:
    with pytest.raises(ConfigurationError, match="non-empty Lago API key"):
        LagoConfig(api_key="")


def test_lago_config_repr_hides_key() -> None:
    config = LagoConfig(api_key=SECRET_KEY)

    assert SECRET_KEY not in repr(config)
    assert "api/v1/events/batch" in repr(config)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after": "7"}, 7.0, id="retry-after-seconds"),
        pytest.param({"retry-after": "Sun, 15 Jun 2025 15:06:50 GMT"}, 10.0, id="retry-after-date"),
        pytest.param({"x-ratelimit-reset": "3"}, 3.0, id="reset-seconds-lago"),
        pytest.param({"x-ratelimit-reset": str(int(NOW) + 12)}, 12.0, id="reset-unix-time"),
        pytest.param(
            {"x-ratelimit-reset": str(int(NOW * 1000) + 5000)}, 5.0, id="reset-unix-milliseconds"
        ),
        pytest.param({"retry-after": "2", "x-ratelimit-reset": "9"}, 9.0, id="longer-wins"),
        pytest.param({"retry-after": "-5"}, 0.0, id="negative-is-zero"),
        pytest.param({"retry-after": "86400"}, MAX_SERVER_DELAY_S, id="capped"),
        pytest.param({"retry-after": "soon"}, None, id="unreadable"),
        pytest.param({"x-ratelimit-reset": "nan"}, None, id="nan"),
        pytest.param({}, None, id="none"),
    ],
)
def test_server_delay(headers: dict[str, str], expected: float | None) -> None:
    # NOW + 10 s is Sun, 15 Jun 2025 15:06:50 GMT.
    assert server_delay_s(headers, NOW + 0.0) == expected


def test_retry_delay_grows_and_is_capped() -> None:
    rng = random.Random(1)

    delays = [
        retry_delay_s(failures, server_delay=None, initial_s=1.0, max_s=8.0, rng=rng)
        for failures in range(1, 8)
    ]

    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_retry_delay_jitter_varies() -> None:
    rng = random.Random(2)

    delays = {
        retry_delay_s(3, server_delay=None, initial_s=1.0, max_s=60.0, rng=rng) for _ in range(20)
    }

    assert len(delays) > 10


def test_retry_delay_server_delay_is_floor() -> None:
    rng = random.Random(3)

    for _ in range(50):
        delay = retry_delay_s(1, server_delay=5.0, initial_s=0.01, max_s=0.1, rng=rng)
        assert 5.0 <= delay <= 5.5


def lago_error(details: object, code: str = "validation_errors", status: int = 422) -> bytes:
    return msgspec.json.encode(
        {"status": status, "error": "Unprocessable Entity", "code": code, "error_details": details}
    )


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        pytest.param(200, {}, b'{"events":[]}', "accepted", id="200"),
        pytest.param(202, {}, b"", "accepted", id="202"),
        pytest.param(500, {}, b"", "retry", id="500"),
        pytest.param(502, {}, b"<html>", "retry", id="502-html"),
        pytest.param(503, {"retry-after": "4"}, b"", "retry", id="503"),
        pytest.param(429, {"retry-after": "1"}, b"", "retry", id="429"),
        pytest.param(408, {}, b"", "retry", id="408"),
        pytest.param(401, {}, b'{"status":401,"error":"Unauthorized"}', "paused", id="401"),
        pytest.param(403, {}, b"", "paused", id="403"),
        pytest.param(404, {}, b"", "paused", id="404-wrong-url"),
        pytest.param(301, {"location": "https://x"}, b"", "paused", id="redirect"),
        pytest.param(413, {}, b"", "too_large", id="413"),
        pytest.param(
            422, {}, lago_error({"events": ["too_many_events"]}), "too_large", id="too-many-events"
        ),
        pytest.param(
            422,
            {},
            lago_error({"0": {"code": ["value_is_mandatory"]}}),
            "per_event",
            id="per-index",
        ),
        pytest.param(
            422,
            {},
            lago_error({"7": {"code": ["value_is_mandatory"]}}),
            "rejected",
            id="index-out-of-range",
        ),
        pytest.param(422, {}, b"not json", "rejected", id="422-not-json"),
        pytest.param(400, {}, lago_error(None, "bad_request", 400), "rejected", id="400"),
    ],
)
def test_classify_response(status: int, headers: dict[str, str], body: bytes, kind: str) -> None:
    outcome = classify_response(status, headers, body, batch_size=3, now=NOW)

    assert outcome.kind == kind
    assert outcome.status == status


def test_classify_response_retry_after() -> None:
    outcome = classify_response(429, {"retry-after": "3"}, b"", batch_size=1, now=NOW)

    assert outcome.server_delay_s == 3.0


def test_classify_response_duplicates_and_errors() -> None:
    body = lago_error(
        {
            "0": {"transaction_id": ["value_already_exist"]},
            "2": {"properties": ["value_is_not_valid_number"]},
            "3": {"transaction_id": ["value_already_exist"], "code": ["value_is_mandatory"]},
        }
    )

    outcome = classify_response(422, {}, body, batch_size=4, now=NOW)

    assert outcome.kind == "per_event"
    assert set(outcome.errors) == {0, 2, 3}
    assert outcome.duplicates == {0}
    assert outcome.errors[2] == {"properties": ["value_is_not_valid_number"]}


def test_classify_response_reason_names_status() -> None:
    outcome = classify_response(401, {}, b"", batch_size=1, now=NOW)

    assert "401" in outcome.reason
    assert "TOKENWIRE_LAGO_API_KEY" in outcome.reason


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param(
            Outcome(kind="retry", status=500),
            Outcome(kind="retry", status=429, server_delay_s=1.0),
            429,
            id="retry-after-beats-plain-error",
        ),
        pytest.param(
            Outcome(kind="retry", status=429, server_delay_s=2.0),
            Outcome(kind="retry", status=429, server_delay_s=1.0),
            429,
            id="longer-delay-kept",
        ),
        pytest.param(
            Outcome(kind="retry", status=429, server_delay_s=5.0),
            Outcome(kind="paused", status=401),
            401,
            id="pause-beats-retry",
        ),
    ],
)
def test_group_failure_keeps_stricter_outcome(
    first: Outcome, second: Outcome, expected: int
) -> None:
    assert _stricter(_stricter(None, first), second).status == expected
    assert _stricter(_stricter(None, second), first).status == expected
