"""Batch result files: one record per download, lines summed by class, `batch=True`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.providers.batch import sum_usage
from tokenwire.decoders.routing import route_request
from tokenwire.usage import Usage

from .wire import THREE_WAYS, chunked, decode, route, split_at

FILE_CONTENT = "https://api.openai.com/v1/files/file-out123/content"
ANTHROPIC_RESULTS = "https://api.anthropic.com/v1/messages/batches/msgbatch_01/results"


def _openai_line(custom_id: str, body: dict[str, Any], status: int = 200) -> bytes:
    line = {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_{custom_id}", "body": body},
        "error": None,
    }
    return json.dumps(line).encode()


CHAT_LINE = _openai_line(
    "chat-1",
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 0},
            "new_counter": 3,
        },
    },
)
CHAT_LINE_2 = _openai_line(
    "chat-2",
    {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "new_counter": 4,
        },
    },
)
RESPONSES_LINE = _openai_line(
    "resp-1",
    {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-4o-mini-2024-07-18",
        "usage": {
            "input_tokens": 30,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 37,
        },
    },
)
FAILED_LINE = _openai_line(
    "bad-1", {"error": {"message": "invalid", "type": "invalid_request_error"}}, status=400
)
EXPIRED_LINE = json.dumps(
    {
        "id": "batch_req_x",
        "custom_id": "late-1",
        "response": None,
        "error": {"code": "batch_expired", "message": "expired"},
    }
).encode()
OUTPUT_LINES = [CHAT_LINE, RESPONSES_LINE, FAILED_LINE, CHAT_LINE_2, EXPIRED_LINE]
OUTPUT_FILE = b"\n".join(OUTPUT_LINES) + b"\n"

ANTHROPIC_FILE = b"\n".join(
    json.dumps(line).encode()
    for line in (
        {
            "custom_id": "a",
            "result": {
                "type": "succeeded",
                "message": {
                    "id": "msg_a",
                    "model": "claude-sonnet-4-5",
                    "usage": {
                        "input_tokens": 10,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 0,
                        "output_tokens": 30,
                    },
                },
            },
        },
        {"custom_id": "b", "result": {"type": "errored", "error": {"type": "invalid_request"}}},
        {
            "custom_id": "c",
            "result": {
                "type": "succeeded",
                "message": {
                    "id": "msg_c",
                    "model": "claude-haiku-4-5",
                    "usage": {"input_tokens": 5, "output_tokens": 6},
                },
            },
        },
    )
)


@pytest.mark.parametrize("way", THREE_WAYS)
def test_openai_output_file_sums_lines(way: str) -> None:
    download = route("GET", FILE_CONTENT)

    record, decoder = decode(
        download, chunked(OUTPUT_FILE, way), content_type="application/octet-stream"
    )

    assert decoder.discard is False
    assert (record.provider, record.api) == ("openai", "batch")
    assert record.batch is True
    assert record.stream is False
    assert record.state == "complete"
    assert record.response_id == "file-out123"
    assert record.response_model == "gpt-4o-mini-2024-07-18"
    # Chat lines: fresh (100 - 64) + 10, cached 64; the Responses line: fresh 30.
    assert record.usage.input_tokens == 36 + 10 + 30
    assert record.usage.cached_input_tokens == 64
    assert record.usage.output_tokens == 20 + 5 + 7
    assert record.usage.reasoning_tokens == 0 + 2
    assert record.usage.total_tokens == 120 + 15 + 37


def test_openai_output_file_raw_per_model() -> None:
    download = route("GET", FILE_CONTENT)

    record, _ = decode(download, [OUTPUT_FILE], content_type="application/octet-stream")

    raw = record.usage.raw
    assert raw["lines"] == 5
    assert raw["failed_lines"] == 2
    summed = raw["models"]["gpt-4o-mini-2024-07-18"]
    assert summed["lines"] == 3
    # Unknown fields are summed, never dropped.
    assert summed["usage"]["new_counter"] == 7
    assert summed["usage"]["prompt_tokens"] == 110
    assert summed["usage"]["input_tokens"] == 30


@given(st.lists(st.integers(min_value=0, max_value=len(OUTPUT_FILE)), max_size=30))
def test_openai_output_file_any_chunking(cuts: list[int]) -> None:
    download = route("GET", FILE_CONTENT)

    record, decoder = decode(
        download, split_at(OUTPUT_FILE, cuts), content_type="application/octet-stream"
    )

    assert decoder.problem is None
    assert record.usage.total_tokens == 172


def test_output_file_cut_is_partial() -> None:
    download = route("GET", FILE_CONTENT)
    cut = OUTPUT_FILE.index(CHAT_LINE_2)

    record, _ = decode(
        download, [OUTPUT_FILE[:cut]], content_type="application/octet-stream", eof=False
    )

    assert record.state == "partial"
    assert record.usage.total_tokens == 120 + 37


def test_error_file_is_error_state() -> None:
    download = route("GET", FILE_CONTENT)

    record, _ = decode(
        download,
        [FAILED_LINE + b"\n" + EXPIRED_LINE + b"\n"],
        content_type="application/octet-stream",
    )

    assert record.state == "error"
    assert record.billable is False
    assert record.problem == "provider error: all_requests_failed"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"messages": [{"role": "user", "content": "hi"}]}\n', id="training-jsonl"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", id="pdf"),
        pytest.param(
            b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n',
            id="batch-input-file",
        ),
    ],
)
def test_non_batch_file_is_discarded(body: bytes) -> None:
    download = route("GET", FILE_CONTENT)

    record, decoder = decode(download, [body, body], content_type="application/octet-stream")

    assert decoder.discard is True
    assert record.usage.has_counts() is False
    assert decoder.problem is None


def test_anthropic_results_sum_and_split_by_model() -> None:
    download = route("GET", ANTHROPIC_RESULTS)

    record, _ = decode(download, [ANTHROPIC_FILE], content_type="application/binary")

    assert (record.provider, record.api, record.batch) == ("anthropic", "batch", True)
    assert record.response_id == "msgbatch_01"
    assert record.state == "complete"
    assert record.usage.input_tokens == 15
    assert record.usage.cached_input_tokens == 100
    assert record.usage.output_tokens == 36
    assert record.response_model == "claude-sonnet-4-5"
    models = record.usage.raw["models"]
    assert set(models) == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    assert models["claude-haiku-4-5"]["usage"] == {"input_tokens": 5, "output_tokens": 6}
    assert record.usage.raw["failed_lines"] == 1


def test_batch_routes_only_known_hosts_and_get() -> None:
    assert route_request("GET", "llm.example.test", "/v1/files/f/content", None) is None
    assert route_request("POST", "api.openai.com", "/v1/files/f/content", b"{}") is None
    azure = route_request("GET", "res.openai.azure.com", "/openai/files/file-9/content", None)
    assert azure is not None
    assert (azure.provider, azure.response_id, azure.batch) == ("azure_openai", "file-9", True)


def test_sum_usage_keeps_none_where_both_none() -> None:
    total = sum_usage(None, Usage(input_tokens=1, output_tokens=2))
    total = sum_usage(total, Usage(input_tokens=3, cached_input_tokens=4))

    assert (total.input_tokens, total.cached_input_tokens, total.output_tokens) == (4, 4, 2)
    assert total.cache_creation_tokens is None
