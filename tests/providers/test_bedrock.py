"""Bedrock usage normalization, Bedrock response decoding and Bedrock request routing."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenwire.decoders.base import PayloadError
from tokenwire.decoders.body import ResponseDecoder
from tokenwire.decoders.providers.bedrock import (
    converse_usage,
    header_usage,
    invocation_metrics_usage,
)
from tokenwire.decoders.routing import Route, route_request
from tokenwire.testing.bedrock_replay import (
    EVENTSTREAM_CONTENT_TYPE,
    chunk_frame,
    encode_event_stream_message,
    event_frame,
    exception_frame,
)
from tokenwire.usage import Usage, UsageRecord

# --- Golden frame ----------------------------------------------------------------

GOLDEN_METADATA_PAYLOAD = b'{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}'
GOLDEN_METADATA_FRAME = (
    b"\x00\x00\x00\x79"  # total length: 121 bytes
    b"\x00\x00\x00\x2d"  # headers length: 45 bytes
    b"\xd4\x3f\x01\xa2"  # CRC32 of the 8 bytes above
    b"\x0d:message-type\x07\x00\x05event"  # name length 13, name, type 7 (string), length 5
    b"\x0b:event-type\x07\x00\x08metadata"  # name length 11, name, type 7, length 8
    + GOLDEN_METADATA_PAYLOAD
    + b"\x76\xcb\x33\xfa"  # CRC32 of every byte above
)


def test_encoder_matches_golden_frame() -> None:
    frame = encode_event_stream_message(
        {":message-type": "event", ":event-type": "metadata"}, GOLDEN_METADATA_PAYLOAD
    )

    assert frame == GOLDEN_METADATA_FRAME


def test_encoder_frames_read_by_botocore() -> None:
    headers = {":event-type": "chunk", "flag": True, "off": False, "count": -7, "blob": b"\x00\x01"}
    buffer = EventStreamBuffer()
    buffer.add_data(encode_event_stream_message(headers, b"payload"))

    (message,) = list(buffer)

    assert message.headers == headers
    assert message.payload == b"payload"


# --- Usage normalization ----------------------------------------------------------


def _classes(usage: Usage) -> tuple[int | None, ...]:
    return (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_creation_tokens,
        usage.output_tokens,
        usage.total_tokens,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18},
            (8, None, None, 10, 18),
            id="no-cache",
        ),
        pytest.param(
            {
                "inputTokens": 3,
                "outputTokens": 121,
                "totalTokens": 2072,
                "cacheReadInputTokens": 1712,
                "cacheWriteInputTokens": 236,
            },
            (3, 1712, 236, 121, 2072),
            id="cache-read-and-write-outside-input",
        ),
        pytest.param(
            {
                "inputTokens": 2,
                "outputTokens": 5,
                "cacheReadInputTokenCount": 40,
                "cacheWriteInputTokenCount": 9,
            },
            (2, 40, 9, 5, None),
            id="only-duplicate-names",
        ),
        pytest.param(
            {
                "inputTokens": 2,
                "outputTokens": 5,
                "totalTokens": 1329,
                "cacheReadInputTokens": 0,
                "cacheReadInputTokenCount": 0,
                "cacheWriteInputTokens": 1322,
                "cacheWriteInputTokenCount": 1322,
            },
            (2, 0, 1322, 5, 1329),
            id="duplicates-read-once",
        ),
        pytest.param(
            {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
            (0, None, None, 0, 0),
            id="zeros-stay-zero",
        ),
    ],
)
def test_converse_usage_classes(raw: dict[str, Any], expected: tuple[int | None, ...]) -> None:
    usage = converse_usage(raw)

    assert _classes(usage) == expected
    assert usage.raw == raw


@pytest.mark.parametrize(
    ("write", "details", "expected"),
    [
        pytest.param(1712, [{"inputTokens": 1712, "ttl": "5m"}], (1712, 0), id="5m-only"),
        pytest.param(
            150,
            [{"inputTokens": 100, "ttl": "5m"}, {"inputTokens": 50, "ttl": "1h"}],
            (100, 50),
            id="5m-and-1h",
        ),
        pytest.param(
            30,
            [{"inputTokens": 10, "ttl": "1h"}, {"inputTokens": 20, "ttl": "1h"}],
            (0, 30),
            id="1h-entries-summed",
        ),
        pytest.param(236, [{"inputTokens": 100, "ttl": "5m"}], (None, None), id="short-sum"),
        pytest.param(10, [{"inputTokens": 10, "ttl": "30m"}], (None, None), id="unknown-ttl"),
        pytest.param(10, [{"ttl": "5m"}], (None, None), id="entry-without-count"),
        pytest.param(10, [{"inputTokens": 10.5, "ttl": "5m"}], (None, None), id="fraction"),
        pytest.param(10, {"inputTokens": 10, "ttl": "5m"}, (None, None), id="not-a-list"),
        pytest.param(None, [{"inputTokens": 10, "ttl": "5m"}], (None, None), id="no-writes"),
    ],
)
def test_converse_cache_split(
    write: int | None, details: Any, expected: tuple[int | None, int | None]
) -> None:
    raw = {"inputTokens": 1, "outputTokens": 1, "cacheDetails": details}
    if write is not None:
        raw["cacheWriteInputTokens"] = write

    usage = converse_usage(raw)

    assert (usage.cache_creation_5m_tokens, usage.cache_creation_1h_tokens) == expected
    assert usage.cache_creation_tokens == write


def test_converse_usage_rejects_negative_count() -> None:
    with pytest.raises(PayloadError, match="inputTokens"):
        converse_usage({"inputTokens": -1, "outputTokens": 2})


def test_header_usage_any_letter_case() -> None:
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "4",
        "x-amzn-bedrock-output-token-count": "50",
        "X-AMZN-BEDROCK-CACHE-READ-INPUT-TOKEN-COUNT": "0",
        "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": "18131",
        "X-Amzn-Bedrock-Invocation-Latency": "7275",
    }

    usage = header_usage(headers)

    assert usage is not None
    assert _classes(usage) == (4, 0, 18131, 50, None)
    assert usage.raw["headers"]["x-amzn-bedrock-cache-write-input-token-count"] == "18131"
    assert "x-amzn-bedrock-invocation-latency" not in usage.raw["headers"]


def test_header_usage_absent_is_none() -> None:
    assert header_usage({"content-type": "application/json"}) is None


def test_header_usage_rejects_non_integer() -> None:
    with pytest.raises(PayloadError, match="x-amzn-bedrock-output-token-count"):
        header_usage({"x-amzn-bedrock-output-token-count": "12.5"})


def test_invocation_metrics_usage_classes() -> None:
    metrics = {
        "inputTokenCount": 12,
        "outputTokenCount": 13,
        "invocationLatency": 244,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 7,
    }

    usage = invocation_metrics_usage(metrics)

    assert _classes(usage) == (12, 0, 7, 13, None)
    assert usage.raw == {"amazon-bedrock-invocationMetrics": metrics}


# --- Response decoding ---------------------------------------------------------------

Feed = Callable[[bytes, Sequence[bytes]], list[bytes]]


def _whole(body: bytes, frames: Sequence[bytes]) -> list[bytes]:
    return [body]


def _one_byte_at_a_time(body: bytes, frames: Sequence[bytes]) -> list[bytes]:
    return [body[index : index + 1] for index in range(len(body))]


def _frame_by_frame(body: bytes, frames: Sequence[bytes]) -> list[bytes]:
    return list(frames)


FEEDS = [
    pytest.param(_whole, id="whole"),
    pytest.param(_one_byte_at_a_time, id="byte-by-byte"),
    pytest.param(_frame_by_frame, id="frame-by-frame"),
]

_SHAPES = {
    "converse": "bedrock_converse",
    "converse_stream": "bedrock_converse",
    "invoke_model": "bedrock_invoke",
    "invoke_model_with_response_stream": "bedrock_invoke",
}


def decode(
    api: str,
    pieces: Sequence[bytes],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    eof: bool = True,
) -> UsageRecord:
    """Run one response through `ResponseDecoder` the way a transport does."""
    route = Route(
        provider="bedrock",
        api=api,
        shape=_SHAPES[api],  # type: ignore[arg-type]
        request_model="model-id",
        stream=api.endswith("stream"),
    )
    all_headers = {
        "content-type": EVENTSTREAM_CONTENT_TYPE if route.stream else "application/json",
        "x-amzn-requestid": "req-1",
        **(headers or {}),
    }
    decoder = ResponseDecoder(route, status, all_headers["content-type"], None, headers=all_headers)
    for piece in pieces:
        decoder.feed(piece)
    return decoder.build_record(eof=eof, subscription=None, dimensions={})


CONVERSE_STREAM_FRAMES = [
    event_frame("messageStart", {"role": "assistant", "p": "abc"}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
    event_frame("contentBlockStop", {"contentBlockIndex": 0}),
    event_frame("messageStop", {"stopReason": "end_turn"}),
    event_frame(
        "metadata",
        {
            "usage": {
                "inputTokens": 37,
                "outputTokens": 8,
                "totalTokens": 75,
                "cacheReadInputTokens": 20,
                "cacheWriteInputTokens": 10,
                "cacheDetails": [{"inputTokens": 10, "ttl": "1h"}],
            },
            "metrics": {"latencyMs": 508},
        },
    ),
]


def test_converse_body_record() -> None:
    body = json.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
            "usage": {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18},
            "serviceTier": {"type": "priority"},
        }
    ).encode()

    record = decode("converse", [body])

    assert record.state == "complete"
    assert _classes(record.usage) == (8, None, None, 10, 18)
    assert record.response_id == "req-1"
    assert record.service_tier == "priority"
    assert record.stream is False
    assert record.request_model == "model-id"


@pytest.mark.parametrize("feed", FEEDS)
def test_converse_stream_record(feed: Feed) -> None:
    body = b"".join(CONVERSE_STREAM_FRAMES)

    record = decode("converse_stream", feed(body, CONVERSE_STREAM_FRAMES))

    assert record.state == "complete"
    assert _classes(record.usage) == (37, 20, 10, 8, 75)
    assert (record.usage.cache_creation_5m_tokens, record.usage.cache_creation_1h_tokens) == (0, 10)
    assert record.stream is True
    assert record.problem is None


def test_converse_stream_cut_before_metadata_is_partial() -> None:
    record = decode("converse_stream", CONVERSE_STREAM_FRAMES[:-1])

    assert record.state == "partial"
    assert record.usage.has_counts() is False
    assert record.problem == "stream ended before its terminal usage"


def test_converse_stream_trailing_partial_frame() -> None:
    body = b"".join(CONVERSE_STREAM_FRAMES) + CONVERSE_STREAM_FRAMES[0][:5]

    record = decode("converse_stream", [body])

    assert record.state == "complete"
    assert _classes(record.usage) == (37, 20, 10, 8, 75)
    assert record.problem is not None
    assert "5 bytes" in record.problem


@pytest.mark.parametrize(
    ("frame", "label"),
    [
        pytest.param(
            exception_frame("throttlingException", "slow down"),
            "throttlingException",
            id="exception",
        ),
        pytest.param(
            encode_event_stream_message(
                {
                    ":message-type": "error",
                    ":error-code": "InternalFailure",
                    ":error-message": "boom",
                },
                b"",
            ),
            "InternalFailure",
            id="error",
        ),
    ],
)
def test_converse_stream_exception_frame_is_partial(frame: bytes, label: str) -> None:
    record = decode("converse_stream", [*CONVERSE_STREAM_FRAMES[:3], frame])

    assert record.state == "partial"
    assert record.problem == f"provider error in stream: {label}"
    assert record.usage.has_counts() is False


ANTHROPIC_STREAM = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-2.0",
            "usage": {"input_tokens": 14, "output_tokens": 1},
        },
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 10}},
]


@pytest.mark.parametrize(
    ("chunks", "metrics", "expected", "body_usage"),
    [
        pytest.param(
            ANTHROPIC_STREAM,
            {"inputTokenCount": 14, "outputTokenCount": 10},
            (14, None, None, 10, None),
            {"input_tokens": 14, "output_tokens": 10},
            id="anthropic",
        ),
        pytest.param(
            [
                {"messageStart": {"role": "assistant"}},
                {"contentBlockDelta": {"delta": {"text": "Hi"}}},
                {
                    "metadata": {
                        "usage": {
                            "inputTokens": 12,
                            "outputTokens": 13,
                            "cacheReadInputTokenCount": 0,
                            "cacheWriteInputTokenCount": 0,
                        }
                    }
                },
            ],
            {
                "inputTokenCount": 12,
                "outputTokenCount": 13,
                "cacheReadInputTokenCount": 0,
                "cacheWriteInputTokenCount": 0,
            },
            (12, 0, 0, 13, None),
            {
                "inputTokens": 12,
                "outputTokens": 13,
                "cacheReadInputTokenCount": 0,
                "cacheWriteInputTokenCount": 0,
            },
            id="nova",
        ),
        pytest.param(
            [
                {"outputText": "Once", "index": 0.0, "inputTextTokenCount": 28.0},
                {
                    "outputText": " upon",
                    "index": 0.0,
                    "totalOutputTextTokenCount": 188.0,
                    "completionReason": "FINISH",
                },
            ],
            {"inputTokenCount": 28, "outputTokenCount": 188},
            (28, None, None, 188, None),
            {"inputTextTokenCount": 28.0, "totalOutputTextTokenCount": 188.0},
            id="titan-floats",
        ),
        pytest.param(
            [
                {"generation": "A", "prompt_token_count": 5, "generation_token_count": 1},
                {
                    "generation": "B",
                    "prompt_token_count": None,
                    "generation_token_count": 2,
                    "stop_reason": "length",
                },
            ],
            {"inputTokenCount": 5, "outputTokenCount": 2},
            (5, None, None, 2, None),
            {"prompt_token_count": 5, "generation_token_count": 2},
            id="llama",
        ),
        pytest.param(
            [
                {"outputs": [{"text": "A", "stop_reason": None}]},
                {"outputs": [{"text": "B", "stop_reason": "stop"}]},
            ],
            {"inputTokenCount": 6, "outputTokenCount": 2},
            (6, None, None, 2, None),
            None,
            id="mistral-no-body-counts",
        ),
        pytest.param(
            [
                {"is_finished": False, "event_type": "text-generation", "text": "A"},
                {"is_finished": True, "event_type": "stream-end", "finish_reason": "COMPLETE"},
            ],
            {"inputTokenCount": 5, "outputTokenCount": 1},
            (5, None, None, 1, None),
            None,
            id="cohere-no-body-counts",
        ),
        pytest.param(
            [
                {"choices": [{"delta": {"content": "A"}}]},
                {
                    "choices": [],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
                },
            ],
            {"inputTokenCount": 9, "outputTokenCount": 3},
            (9, None, None, 3, None),
            {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            id="openai-shaped",
        ),
    ],
)
@pytest.mark.parametrize("feed", FEEDS)
def test_invoke_stream_families(
    feed: Feed,
    chunks: list[dict[str, Any]],
    metrics: dict[str, Any],
    expected: tuple[int | None, ...],
    body_usage: dict[str, Any] | None,
) -> None:
    last = {**chunks[-1], "amazon-bedrock-invocationMetrics": metrics}
    frames = [chunk_frame(chunk) for chunk in [*chunks[:-1], last]]

    record = decode("invoke_model_with_response_stream", feed(b"".join(frames), frames))

    assert record.state == "complete"
    assert _classes(record.usage) == expected
    assert record.usage.raw["amazon-bedrock-invocationMetrics"] == metrics
    assert record.usage.raw.get("body") == body_usage
    assert "mismatch" not in record.usage.raw


def test_invoke_stream_metrics_win_and_mismatch_kept() -> None:
    chunks = [
        *ANTHROPIC_STREAM[:2],
        {"type": "message_delta", "usage": {"output_tokens": 134}},
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 392, "outputTokenCount": 90},
        },
    ]
    chunks[0] = {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_2",
            "model": "claude-3-5-sonnet-20240620",
            "usage": {"input_tokens": 392, "output_tokens": 4},
        },
    }

    record = decode("invoke_model_with_response_stream", [chunk_frame(c) for c in chunks])

    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (392, 90)
    assert record.usage.raw["mismatch"] == {"output_tokens": {"bedrock": 90, "model": 134}}
    assert record.usage.raw["body"]["output_tokens"] == 134
    assert record.response_model == "claude-3-5-sonnet-20240620"
    assert record.response_id == "req-1"


def test_invoke_stream_without_metrics_partial() -> None:
    record = decode(
        "invoke_model_with_response_stream", [chunk_frame(chunk) for chunk in ANTHROPIC_STREAM]
    )

    assert record.state == "partial"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (14, 10)
    assert record.usage.raw == {"body": {"input_tokens": 14, "output_tokens": 10}}


def test_invoke_stream_exception_keeps_counts_seen() -> None:
    frames = [
        chunk_frame(ANTHROPIC_STREAM[0]),
        exception_frame("modelStreamErrorException", "the model stopped"),
    ]

    record = decode("invoke_model_with_response_stream", frames)

    assert record.state == "partial"
    assert record.usage.input_tokens == 14
    assert record.problem == "provider error in stream: modelStreamErrorException"
    assert record.billable is True


def test_invoke_stream_invalid_base64_is_a_problem() -> None:
    frames = [chunk_frame(ANTHROPIC_STREAM[0]), event_frame("chunk", {"bytes": "not base64!"})]

    record = decode("invoke_model_with_response_stream", frames)

    assert record.problem is not None
    assert "base64" in record.problem
    assert record.usage.input_tokens == 14


def test_invoke_model_headers_win_over_body() -> None:
    body = json.dumps(
        {
            "id": "msg_bdrk_3",
            "type": "message",
            "model": "claude-2.0",
            "usage": {"input_tokens": 15, "output_tokens": 10},
        }
    ).encode()
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": "14",
        "X-Amzn-Bedrock-Output-Token-Count": "10",
        "X-Amzn-Bedrock-Service-Tier": "flex",
    }

    record = decode("invoke_model", [body], headers=headers)

    assert record.state == "complete"
    assert _classes(record.usage) == (14, None, None, 10, None)
    assert record.usage.raw["mismatch"] == {"input_tokens": {"bedrock": 14, "model": 15}}
    assert record.response_model == "claude-2.0"
    assert record.response_id == "req-1"
    assert record.service_tier == "flex"


@pytest.mark.parametrize(
    ("header_writes", "split", "expected"),
    [
        pytest.param(
            "1956",
            {"ephemeral_5m_input_tokens": 1956, "ephemeral_1h_input_tokens": 0},
            (1956, 0),
            id="adds-up",
        ),
        pytest.param(
            "1956",
            {"ephemeral_5m_input_tokens": 956, "ephemeral_1h_input_tokens": 1000},
            (956, 1000),
            id="mixed-ttl",
        ),
        pytest.param(
            "2000",
            {"ephemeral_5m_input_tokens": 1956, "ephemeral_1h_input_tokens": 0},
            (None, None),
            id="disagrees-with-headers",
        ),
        pytest.param("1956", {"ephemeral_5m_input_tokens": 1956}, (None, None), id="half-split"),
    ],
)
def test_invoke_model_cache_split_from_body(
    header_writes: str, split: dict[str, int], expected: tuple[int | None, int | None]
) -> None:
    body = json.dumps(
        {
            "type": "message",
            "model": "claude-haiku-4-5-20251001",
            "usage": {
                "input_tokens": 3,
                "cache_read_input_tokens": 9511,
                "cache_creation_input_tokens": 1956,
                "output_tokens": 44,
                "cache_creation": split,
            },
        }
    ).encode()
    headers = {
        "x-amzn-bedrock-input-token-count": "3",
        "x-amzn-bedrock-output-token-count": "44",
        "x-amzn-bedrock-cache-read-input-token-count": "9511",
        "x-amzn-bedrock-cache-write-input-token-count": header_writes,
    }

    record = decode("invoke_model", [body], headers=headers)

    assert record.usage.cache_creation_tokens == int(header_writes)
    assert (
        record.usage.cache_creation_5m_tokens,
        record.usage.cache_creation_1h_tokens,
    ) == expected


def test_invoke_model_headers_with_non_json_body() -> None:
    headers = {
        "content-type": "image/png",
        "X-Amzn-Bedrock-Input-Token-Count": "9",
        "X-Amzn-Bedrock-Output-Token-Count": "0",
    }

    record = decode("invoke_model", [b"\x89PNG\r\n\x1a\n"], headers=headers)

    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (9, 0)
    assert record.problem is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {
                "id": "msg_bdrk_4",
                "type": "message",
                "model": "claude-haiku-4-5-20251001",
                "usage": {
                    "input_tokens": 3,
                    "cache_read_input_tokens": 9511,
                    "cache_creation_input_tokens": 1956,
                    "output_tokens": 44,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 1956,
                        "ephemeral_1h_input_tokens": 0,
                    },
                },
            },
            (3, 9511, 1956, 44, None),
            id="anthropic",
        ),
        pytest.param(
            {
                "output": {"message": {"content": [{"text": "x"}]}},
                "usage": {
                    "inputTokens": 5,
                    "outputTokens": 10,
                    "totalTokens": 15,
                    "cacheReadInputTokenCount": 0,
                    "cacheWriteInputTokenCount": 0,
                },
            },
            (5, 0, 0, 10, 15),
            id="nova",
        ),
        pytest.param(
            {"inputTextTokenCount": 5, "results": [{"tokenCount": 10, "outputText": "x"}]},
            (5, None, None, 10, None),
            id="titan-text",
        ),
        pytest.param(
            {"embedding": [0.1, -0.2], "inputTextTokenCount": 7.0},
            (7, None, None, None, None),
            id="titan-embeddings-float",
        ),
        pytest.param(
            {"generation": "x", "prompt_token_count": 5, "generation_token_count": 10},
            (5, None, None, 10, None),
            id="llama",
        ),
    ],
)
def test_invoke_model_body_families_without_headers(
    body: dict[str, Any], expected: tuple[int | None, ...]
) -> None:
    route = Route(provider="bedrock", api="invoke_model", shape="bedrock_invoke")
    decoder = ResponseDecoder(route, 200, "application/json", None)
    decoder.feed(json.dumps(body).encode())

    record = decoder.build_record(eof=True, subscription=None, dimensions={})

    assert record.state == "complete"
    assert _classes(record.usage) == expected
    assert record.usage.raw["body"]


def test_invoke_model_mistral_body_without_headers_is_missing() -> None:
    record = decode(
        "invoke_model", [b'{"outputs": [{"text": "x", "stop_reason": "stop"}]}'], headers={}
    )

    assert record.state == "missing"


@pytest.mark.parametrize("api", sorted(_SHAPES))
def test_error_response_records_error_type(api: str) -> None:
    headers = {
        "content-type": "application/json",
        "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon/",
    }

    record = decode(api, [b'{"message": "Too many requests"}'], status=429, headers=headers)

    assert record.state == "error"
    assert record.problem == "provider error: ThrottlingException"
    assert record.billable is False
    assert record.stream is False


INVOKE_STREAM_FRAMES = [chunk_frame(chunk) for chunk in ANTHROPIC_STREAM[:-1]] + [
    chunk_frame(
        {
            **ANTHROPIC_STREAM[-1],
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 14, "outputTokenCount": 10},
        }
    )
]


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(), api=st.sampled_from(["converse_stream", "invoke_model_with_response_stream"])
)
def test_any_chunking_gives_same_record(data: st.DataObject, api: str) -> None:
    frames = CONVERSE_STREAM_FRAMES if api == "converse_stream" else INVOKE_STREAM_FRAMES
    body = b"".join(frames)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=12)))
    pieces = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]

    whole = decode(api, [body])
    chunked = decode(api, pieces)

    assert chunked.state == whole.state == "complete"
    assert chunked.usage == whole.usage
    assert chunked.problem is None


# --- Routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "path", "api", "model", "stream"),
    [
        pytest.param(
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/amazon.nova-micro-v1:0/converse",
            "converse",
            "amazon.nova-micro-v1:0",
            False,
            id="converse",
        ),
        pytest.param(
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/us.anthropic.claude-sonnet-4-20250514-v1:0/converse-stream",
            "converse_stream",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            True,
            id="converse-stream-profile",
        ),
        pytest.param(
            "bedrock-runtime.eu-central-1.amazonaws.com",
            "/model/eu.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
            "invoke_model",
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
            False,
            id="invoke-percent-encoded",
        ),
        pytest.param(
            "bedrock-runtime-fips.us-west-2.amazonaws.com",
            "/model/global.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream",
            "invoke_model_with_response_stream",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            True,
            id="fips-global",
        ),
        pytest.param(
            "bedrock-runtime.cn-north-1.amazonaws.com.cn",
            "/model/meta.llama3-1-70b-instruct-v1:0/invoke",
            "invoke_model",
            "meta.llama3-1-70b-instruct-v1:0",
            False,
            id="china",
        ),
        pytest.param(
            "vpce-0abc-1xyz.bedrock-runtime.us-east-1.vpce.amazonaws.com",
            "/model/amazon.titan-text-lite-v1/invoke",
            "invoke_model",
            "amazon.titan-text-lite-v1",
            False,
            id="vpc-endpoint",
        ),
        pytest.param(
            "127.0.0.1",
            "/model/amazon.nova-micro-v1:0/converse",
            "converse",
            "amazon.nova-micro-v1:0",
            False,
            id="loopback",
        ),
        pytest.param(
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0/converse",
            "converse",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            False,
            id="arn-with-slash",
        ),
    ],
)
def test_route_bedrock(host: str, path: str, api: str, model: str, stream: bool) -> None:
    route = route_request("POST", host, path, b'{"messages": []}')

    assert route is not None
    assert (route.provider, route.api, route.request_model, route.stream) == (
        "bedrock",
        api,
        model,
        stream,
    )
    assert route.free is False


def test_route_bedrock_count_tokens_is_free() -> None:
    route = route_request(
        "POST",
        "bedrock-runtime.us-east-1.amazonaws.com",
        "/model/anthropic.claude-3-5-haiku-20241022-v1:0/count-tokens",
        b"{}",
    )

    assert route is not None
    assert route.free is True


@pytest.mark.parametrize(
    ("method", "host", "path"),
    [
        pytest.param(
            "POST", "bedrock.us-east-1.amazonaws.com", "/model/x/invoke", id="control-plane-host"
        ),
        pytest.param("POST", "models.example.com", "/model/x/invoke", id="other-host"),
        pytest.param(
            "POST",
            "bedrock-runtime.us-east-1.amazonaws.com",
            "/model/x/async-invoke",
            id="unknown-operation",
        ),
        pytest.param(
            "POST", "bedrock-runtime.us-east-1.amazonaws.com", "/model//invoke", id="empty-model"
        ),
        pytest.param("GET", "bedrock-runtime.us-east-1.amazonaws.com", "/model/x/invoke", id="get"),
    ],
)
def test_route_not_bedrock_model_call(method: str, host: str, path: str) -> None:
    assert route_request(method, host, path, b"{}") is None
