"""Malformed provider bytes never raise into the caller; the record says what happened."""

from __future__ import annotations

import gzip

import httpx2
import pytest

import tokenwire
from tokenwire.testing.provider_server import fixture_bytes
from tokenwire.testing.replay import RecordingSink

GOOD_SSE = fixture_bytes("openai_chat_stream.sse")
GOOD_JSON = fixture_bytes("openai_chat.json")
TRUNCATED_SSE = GOOD_SSE[: len(GOOD_SSE) // 2]


def _exchange(
    sink: RecordingSink, status: int, headers: dict[str, str], body: bytes, stream: bool
) -> bytes:
    def respond(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, stream=httpx2.ByteStream(body))

    client = tokenwire.MeteredClient(
        transport=httpx2.MockTransport(respond), meter=sink, inject_stream_usage=False
    )
    with client.stream(
        "POST", "https://api.openai.com/v1/chat/completions", json={"model": "m", "stream": stream}
    ) as response:
        return b"".join(response.iter_raw())


@pytest.mark.parametrize(
    ("headers", "body", "stream", "state", "problem"),
    [
        pytest.param(
            {"content-type": "text/event-stream"},
            TRUNCATED_SSE,
            True,
            "partial",
            "terminal",
            id="truncated-sse",
        ),
        pytest.param(
            {"content-type": "application/json"},
            b'{"id": "x", "usage": {',
            False,
            "missing",
            "PayloadError",
            id="invalid-json",
        ),
        pytest.param(
            {"content-type": "application/json", "content-encoding": "gzip"},
            b"\x1f\x8bnot really gzip",
            False,
            "missing",
            "ContentEncodingError",
            id="bad-gzip",
        ),
        pytest.param(
            {"content-type": "application/json", "content-encoding": "gzip"},
            gzip.compress(GOOD_JSON)[:-12],
            False,
            "missing",
            "ContentEncodingError",
            id="gzip-cut-short",
        ),
        pytest.param(
            {"content-type": "application/json"},
            b'{"id":"x","usage":{"prompt_tokens":-4,"completion_tokens":1}}',
            False,
            "missing",
            "negative",
            id="negative-count",
        ),
        pytest.param(
            {"content-type": "application/json", "content-encoding": "snappy"},
            GOOD_JSON,
            False,
            "missing",
            "unsupported content-encoding",
            id="unknown-encoding",
        ),
        pytest.param(
            {"content-type": "text/event-stream"},
            b"data: {not json}\n\n",
            True,
            "partial",
            "PayloadError",
            id="sse-bad-event",
        ),
    ],
)
def test_malformed_body_flows_and_flags(
    sink: RecordingSink,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    state: str,
    problem: str,
) -> None:
    received = _exchange(sink, 200, headers, body, stream)

    assert received == body
    [record] = sink.records
    assert record.state == state
    assert record.problem is not None
    assert problem in record.problem


def test_stream_without_usage_is_missing(sink: RecordingSink) -> None:
    body = b"".join(
        line + b"\n\n" for line in GOOD_SSE.split(b"\n\n") if line and b'"usage":{' not in line
    )

    _exchange(sink, 200, {"content-type": "text/event-stream"}, body, True)

    [record] = sink.records
    assert record.state == "missing"
    assert record.usage.has_counts() is False


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
def test_error_status_records_error(sink: RecordingSink, status: int) -> None:
    body = b'{"error": {"message": "secret prompt text", "type": "invalid_request_error"}}'

    _exchange(sink, status, {"content-type": "application/json"}, body, False)

    [record] = sink.records
    assert record.state == "error"
    assert record.http_status == status
    assert record.billable is False
    assert "secret prompt text" not in (record.problem or "")


def test_error_body_with_status_200_is_error(sink: RecordingSink) -> None:
    body = b'{"error": {"code": "content_filter", "message": "filtered"}}'

    _exchange(sink, 200, {"content-type": "application/json"}, body, False)

    [record] = sink.records
    assert record.state == "error"
    assert record.problem == "provider error: content_filter"


def test_network_error_mid_body_records_partial(sink: RecordingSink) -> None:
    class Cut(httpx2.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield GOOD_SSE[:300]
            raise httpx2.ReadError("connection reset")

    def respond(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Cut())

    client = tokenwire.MeteredClient(transport=httpx2.MockTransport(respond), meter=sink)
    with (
        pytest.raises(httpx2.ReadError),
        client.stream(
            "POST",
            "https://api.openai.com/v1/chat/completions",
            json={"model": "m", "stream": True},
        ) as response,
    ):
        for _ in response.iter_raw():
            pass

    [record] = sink.records
    assert record.state == "partial"
    assert record.problem == "closed before end of body"


def test_decoder_fault_does_not_reach_caller(
    sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenwire.decoders.providers.openai import ChatCompletionsExtractor

    def explode(*args: object) -> None:
        raise RuntimeError("bug inside tokenwire")

    monkeypatch.setattr(ChatCompletionsExtractor, "on_event", explode)

    received = _exchange(sink, 200, {"content-type": "text/event-stream"}, GOOD_SSE, True)

    assert received == GOOD_SSE
    [record] = sink.records
    assert record.problem is not None
    assert "bug inside tokenwire" in record.problem


def test_sink_fault_does_not_reach_caller() -> None:
    class BrokenSink(RecordingSink):
        def emit(self, record: tokenwire.UsageRecord) -> None:
            raise OSError("disk full")

    received = _exchange(BrokenSink(), 200, {"content-type": "application/json"}, GOOD_JSON, False)

    assert received == GOOD_JSON
