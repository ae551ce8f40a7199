"""Gemini and Vertex AI: usage semantics, the three stream framings, caches and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.base import PayloadError
from tokenwire.decoders.providers.gemini import gemini_usage

from .wire import THREE_WAYS, chunked, decode, route, split_at

GENERATE_URL = (
    "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
)
STREAM_URL = (
    "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent"
)
VERTEX_STREAM_URL = (
    "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1"
    "/publishers/google/models/gemini-2.5-pro:streamGenerateContent"
)

# generateContent with implicit caching, thinking and code execution:
# fresh = 120 - 100 + 30 = 50, output = 40 + 25 = 65, total = 120 + 40 + 25 + 30 = 215.
USAGE_ALL_FIELDS: dict[str, Any] = {
    "promptTokenCount": 120,
    "cachedContentTokenCount": 100,
    "toolUsePromptTokenCount": 30,
    "candidatesTokenCount": 40,
    "thoughtsTokenCount": 25,
    "totalTokenCount": 215,
    "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 80},
        {"modality": "AUDIO", "tokenCount": 30},
        {"modality": "IMAGE", "tokenCount": 10},
    ],
    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 40}],
    "serviceTier": "standard",
    "newFieldFromTomorrow": 7,
}
GENERATE_BODY = json.dumps(
    {
        "candidates": [{"content": {"parts": [{"text": "Paris."}]}, "finishReason": "STOP"}],
        "usageMetadata": USAGE_ALL_FIELDS,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-gen-1",
    }
).encode()


def _chunk(text: str, usage: dict[str, Any], *, finish: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-pro",
        "responseId": "resp-stream-1",
    }


# Three cumulative snapshots; the last is final (prompt 14 replaces the early 15).
STREAM_CHUNKS = [
    _chunk("Wh", {"promptTokenCount": 15, "totalTokenCount": 15}),
    _chunk("iskers", {"promptTokenCount": 15, "candidatesTokenCount": 5, "totalTokenCount": 20}),
    _chunk(
        " twitched.",
        {
            "promptTokenCount": 14,
            "candidatesTokenCount": 33,
            "thoughtsTokenCount": 12,
            "totalTokenCount": 59,
        },
        finish=True,
    ),
]
SSE_BODY = b"".join(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in STREAM_CHUNKS)
ARRAY_BODY = (
    b"[" + b"\n,\r\n".join(json.dumps(chunk, indent=2).encode() for chunk in STREAM_CHUNKS) + b"]"
)


def test_usage_semantics_all_fields() -> None:
    usage = gemini_usage(USAGE_ALL_FIELDS)

    assert usage.input_tokens == 120 - 100 + 30
    assert usage.cached_input_tokens == 100
    assert usage.output_tokens == 40 + 25
    assert usage.reasoning_tokens == 25
    assert usage.total_tokens == 215
    assert usage.audio_input_tokens == 30
    assert usage.image_input_tokens == 10
    assert usage.image_output_tokens == 40
    assert usage.audio_output_tokens is None
    assert usage.cache_creation_tokens is None
    assert usage.raw["toolUsePromptTokenCount"] == 30
    assert usage.raw["newFieldFromTomorrow"] == 7


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14},
            (5, None, 9, None, 14),
            id="plain",
        ),
        pytest.param(
            {"promptTokenCount": 5, "totalTokenCount": 5},
            (5, None, None, None, 5),
            id="prompt-only-snapshot",
        ),
        pytest.param(
            {"totalTokenCount": 3512}, (None, None, None, None, 3512), id="cache-size-only"
        ),
        pytest.param(
            {"promptTokenCount": 8, "thoughtsTokenCount": 60, "totalTokenCount": 68},
            (8, None, 60, 60, 68),
            id="thoughts-without-candidates",
        ),
        pytest.param(
            {
                "promptTokenCount": 3520,
                "cachedContentTokenCount": 3520,
                "totalTokenCount": 3522,
                "candidatesTokenCount": 2,
            },
            (0, 3520, 2, None, 3522),
            id="all-cached",
        ),
        pytest.param({}, (None, None, None, None, None), id="empty"),
    ],
)
def test_usage_semantics_table(raw: dict[str, Any], expected: tuple[int | None, ...]) -> None:
    usage = gemini_usage(raw)

    assert (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
    ) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"promptTokenCount": 5, "cachedContentTokenCount": 6}, id="cache-over-prompt"),
        pytest.param({"promptTokenCount": -1}, id="negative"),
        pytest.param({"promptTokensDetails": {"modality": "TEXT"}}, id="details-not-list"),
    ],
)
def test_usage_rejects_invalid(raw: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        gemini_usage(raw)


def test_usage_integer_modalities_left_raw() -> None:
    raw = {"promptTokenCount": 11, "promptTokensDetails": [{"modality": 4, "tokenCount": 11}]}

    usage = gemini_usage(raw)

    assert usage.audio_input_tokens is None
    assert usage.raw["promptTokensDetails"] == [{"modality": 4, "tokenCount": 11}]


@pytest.mark.parametrize("way", THREE_WAYS)
def test_generate_content_json(way: str) -> None:
    generate = route("POST", GENERATE_URL, b"{}")

    record, _ = decode(generate, chunked(GENERATE_BODY, way), content_type="application/json")

    assert (record.provider, record.api, record.stream) == ("gemini", "generate_content", False)
    assert record.state == "complete"
    assert record.request_model == "gemini-2.5-flash"
    assert record.response_model == "gemini-2.5-flash"
    assert record.response_id == "resp-gen-1"
    assert record.service_tier == "standard"
    assert record.usage.input_tokens == 50
    assert record.usage.output_tokens == 65


@pytest.mark.parametrize("way", THREE_WAYS)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(SSE_BODY, "text/event-stream", id="sse"),
        pytest.param(ARRAY_BODY, "application/json; charset=UTF-8", id="json-array"),
    ],
)
def test_stream_takes_last_snapshot(body: bytes, content_type: str, way: str) -> None:
    stream = route("POST", STREAM_URL, b"{}")

    record, _ = decode(stream, chunked(body, way), content_type=content_type)

    assert record.stream is True
    assert record.state == "complete"
    assert record.response_id == "resp-stream-1"
    assert record.response_model == "gemini-2.5-pro"
    # The last snapshot, not a sum: 14 input, 33 + 12 output.
    assert record.usage.input_tokens == 14
    assert record.usage.output_tokens == 45
    assert record.usage.reasoning_tokens == 12
    assert record.usage.total_tokens == 59


def test_stream_without_content_type_read_as_sse() -> None:
    stream = route("POST", STREAM_URL, b"{}")

    record, _ = decode(stream, [SSE_BODY], content_type=None)

    assert record.state == "complete"
    assert record.usage.output_tokens == 45


@given(st.lists(st.integers(min_value=0, max_value=len(ARRAY_BODY)), max_size=25))
def test_json_array_stream_any_chunking(cuts: list[int]) -> None:
    stream = route("POST", VERTEX_STREAM_URL, b"{}")

    record, decoder = decode(stream, split_at(ARRAY_BODY, cuts), content_type="application/json")

    assert decoder.problem is None
    assert record.provider == "vertex_ai"
    assert record.state == "complete"
    assert record.usage.output_tokens == 45


@given(st.lists(st.integers(min_value=0, max_value=len(SSE_BODY)), max_size=25))
def test_sse_stream_any_chunking(cuts: list[int]) -> None:
    stream = route("POST", STREAM_URL, b"{}")

    record, _ = decode(stream, split_at(SSE_BODY, cuts), content_type="text/event-stream")

    assert record.state == "complete"
    assert record.usage.input_tokens == 14


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(SSE_BODY, "text/event-stream", id="sse"),
        pytest.param(ARRAY_BODY, "application/json", id="json-array"),
    ],
)
def test_stream_cut_keeps_last_snapshot_partial(body: bytes, content_type: str) -> None:
    stream = route("POST", STREAM_URL, b"{}")
    # Cut inside the third chunk: the second snapshot is the last one seen.
    cut = body.index(b"twitched")

    record, _ = decode(stream, [body[:cut]], content_type=content_type, eof=False)

    assert record.state == "partial"
    assert record.usage.input_tokens == 15
    assert record.usage.output_tokens == 5


def test_stream_eof_before_finish_reason_is_partial() -> None:
    stream = route("POST", STREAM_URL, b"{}")
    two_chunks = b"".join(SSE_BODY.split(b"\r\n\r\n")[i] + b"\r\n\r\n" for i in (0, 1))

    record, _ = decode(stream, [two_chunks], content_type="text/event-stream", eof=True)

    assert record.state == "partial"
    assert record.usage.output_tokens == 5


def test_json_array_cut_at_eof_is_reported() -> None:
    stream = route("POST", STREAM_URL, b"{}")
    without_end = ARRAY_BODY[: ARRAY_BODY.rindex(b"]")]

    record, decoder = decode(stream, [without_end], content_type="application/json")

    # The last chunk was whole, so its usage counts; the missing ']' is reported.
    assert record.state == "complete"
    assert decoder.problem is not None
    assert "closing ']'" in decoder.problem


def test_prompt_blocked_is_terminal() -> None:
    stream = route("POST", STREAM_URL, b"{}")
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash",
    }

    record, _ = decode(
        stream,
        [b"data: " + json.dumps(blocked).encode() + b"\n\n"],
        content_type="text/event-stream",
    )

    assert record.state == "complete"
    assert record.usage.input_tokens == 9


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        pytest.param(
            404,
            b'{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}',
            "application/json",
            id="json-404",
        ),
        pytest.param(
            200,
            b'[{"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}]',
            "application/json",
            id="in-array-error",
        ),
    ],
)
def test_errors_have_no_usage(status: int, body: bytes, content_type: str) -> None:
    stream = route("POST", STREAM_URL, b"{}")

    record, _ = decode(stream, [body], content_type=content_type, status=status)

    assert record.state == "error"
    assert record.billable is False
    assert record.problem is not None
    assert "message" not in record.problem
    assert record.problem.endswith(("NOT_FOUND", "INTERNAL"))


def test_cached_contents_create_records_cache_size() -> None:
    body = json.dumps(
        {
            "name": "cachedContents/abc123",
            "model": "models/gemini-2.5-flash",
            "usageMetadata": {"totalTokenCount": 3512},
        }
    ).encode()
    create = route(
        "POST",
        "https://generativelanguage.googleapis.com/v1beta/cachedContents",
        b'{"model": "models/gemini-2.5-flash", "contents": []}',
    )

    record, _ = decode(create, [body], content_type="application/json")

    assert (record.api, record.state) == ("cached_contents", "complete")
    assert record.request_model == "gemini-2.5-flash"
    assert record.response_model == "gemini-2.5-flash"
    assert record.response_id == "cachedContents/abc123"
    assert record.usage.total_tokens == 3512
    assert record.usage.input_tokens is None
    assert record.usage.cache_creation_tokens is None
    assert record.billable is False


def test_cached_contents_delete_is_missing() -> None:
    delete = route(
        "DELETE", "https://generativelanguage.googleapis.com/v1beta/cachedContents/abc123"
    )

    record, _ = decode(delete, [b"{}"], content_type="application/json")

    assert (record.api, record.state) == ("cached_contents", "missing")


def test_embed_content_usage() -> None:
    embed = route(
        "POST",
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:embedContent",
        b"{}",
    )
    body = (
        b'{"embedding": {"values": [0.1, 0.2]}, "usageMetadata": {"promptTokenCount": 7, '
        b'"totalTokenCount": 7}}'
    )

    record, _ = decode(embed, [body], content_type="application/json")

    assert (record.api, record.state) == ("embed_content", "complete")
    assert record.usage.input_tokens == 7
    assert record.request_model == "gemini-embedding-001"


def test_stream_relayed_with_done_marker() -> None:
    stream = route("POST", STREAM_URL, b"{}")

    record, decoder = decode(
        stream, [SSE_BODY + b"data: [DONE]\n\n"], content_type="text/event-stream"
    )

    assert decoder.problem is None
    assert record.state == "complete"
    assert record.usage.output_tokens == 45
