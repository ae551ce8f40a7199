"""Usage-flag injection into chat requests and removal of the usage-only chunk it causes."""

from __future__ import annotations

import gzip
import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.encoding import content_decoder
from tokenwire.decoders.injection import (
    UsageChunkFilter,
    azure_accepts_stream_options,
    inject_usage_flag,
)

STREAM_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}'


def _inject(body: bytes = STREAM_BODY, **overrides: Any) -> bytes | None:
    options: dict[str, Any] = {
        "mode": "auto",
        "provider": "openai",
        "host": "api.openai.com",
        "path": "/v1/chat/completions",
        "api_version": None,
    }
    options.update(overrides)
    return inject_usage_flag(body, **options)


def test_inject_splices_flag_keeping_fields() -> None:
    injected = _inject()

    assert injected is not None
    assert injected.startswith(STREAM_BODY[:-1])
    document = json.loads(injected)
    assert document["stream_options"] == {"include_usage": True}
    assert {key: value for key, value in document.items() if key != "stream_options"} == (
        json.loads(STREAM_BODY)
    )


def test_inject_merges_other_stream_options() -> None:
    body = b'{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}'

    injected = _inject(body)

    assert injected is not None
    assert json.loads(injected)["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }


@pytest.mark.parametrize(
    ("body", "overrides"),
    [
        pytest.param(
            b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}',
            {},
            id="user-set-true",
        ),
        pytest.param(
            b'{"model":"m","stream":true,"stream_options":{"include_usage":false}}',
            {},
            id="user-set-false",
        ),
        pytest.param(b'{"model":"m","stream":false}', {}, id="not-streaming"),
        pytest.param(b'{"model":"m"}', {}, id="no-stream-field"),
        pytest.param(b"not json", {}, id="invalid-json"),
        pytest.param(STREAM_BODY, {"mode": False}, id="mode-off"),
        pytest.param(
            STREAM_BODY, {"host": "llm.internal.example", "provider": "x"}, id="unknown-host-auto"
        ),
        pytest.param(
            STREAM_BODY,
            {
                "provider": "azure_openai",
                "host": "r.openai.azure.com",
                "api_version": "2024-06-01",
                "path": "/openai/deployments/gpt4/chat/completions",
            },
            id="azure-old-version",
        ),
    ],
)
def test_inject_leaves_request_alone(body: bytes, overrides: dict[str, Any]) -> None:
    assert _inject(body, **overrides) is None


def test_inject_forced_for_unknown_host() -> None:
    assert _inject(mode=True, host="llm.internal.example", provider="x") is not None


@pytest.mark.parametrize(
    ("path", "version", "accepted"),
    [
        ("/openai/deployments/d/chat/completions", "2024-06-01", False),
        ("/openai/deployments/d/chat/completions", "2024-05-01-preview", False),
        ("/openai/deployments/d/chat/completions", "2024-08-01-preview", True),
        ("/openai/deployments/d/chat/completions", "2024-10-21", True),
        ("/openai/deployments/d/chat/completions", "2025-04-01-preview", True),
        ("/openai/deployments/d/chat/completions", None, False),
        ("/openai/deployments/d/chat/completions", "not-a-version", False),
        ("/openai/v1/chat/completions", None, True),
        ("/openai/deployments/d/chat/completions", "preview", True),
    ],
)
def test_azure_version_gate(path: str, version: str | None, accepted: bool) -> None:
    assert azure_accepts_stream_options(path, version) is accepted


def _event(payload: dict[str, Any], line_end: str = "\n") -> bytes:
    return f"data: {json.dumps(payload)}{line_end}{line_end}".encode()


CONTENT = [
    _event({"id": "c1", "choices": [{"index": 0, "delta": {"content": word}}], "usage": None})
    for word in ("Hello", " there", "!")
]
FINISH = _event(
    {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}
)
USAGE_ONLY = _event(
    {"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
)
AZURE_USAGE_ONLY = _event(
    {"id": "c1", "choices": [{"index": 0, "delta": {}}], "usage": {"prompt_tokens": 5}}
)
DONE = b"data: [DONE]\n\n"
STREAM = b"".join([*CONTENT, FINISH, USAGE_ONLY, DONE])
EXPECTED = b"".join([*CONTENT, FINISH, DONE])


def _run(filter_: UsageChunkFilter, chunks: list[bytes]) -> bytes:
    return b"".join(filter_.feed(chunk) for chunk in chunks) + filter_.flush()


@pytest.mark.parametrize(
    "split",
    [
        pytest.param(lambda data: [data], id="whole"),
        pytest.param(lambda data: [data[i : i + 1] for i in range(len(data))], id="byte-by-byte"),
        pytest.param(lambda data: [data[i : i + 7] for i in range(0, len(data), 7)], id="7-bytes"),
    ],
)
def test_filter_removes_usage_only_chunk(split: Any) -> None:
    filter_ = UsageChunkFilter()

    assert _run(filter_, split(STREAM)) == EXPECTED
    assert filter_.removed is True


def test_filter_removes_azure_style_usage_chunk() -> None:
    stream = b"".join([*CONTENT, FINISH, AZURE_USAGE_ONLY, DONE])

    assert _run(UsageChunkFilter(), [stream]) == EXPECTED


def test_filter_handles_crlf_events() -> None:
    events = [_event({"choices": [{"delta": {"content": "x"}}], "usage": None}, "\r\n")]
    usage = _event({"choices": [], "usage": {"prompt_tokens": 1}}, "\r\n")
    stream = b"".join([*events, usage, b"data: [DONE]\r\n\r\n"])

    output = _run(UsageChunkFilter(), [stream[i : i + 5] for i in range(0, len(stream), 5)])

    assert output == b"".join([*events, b"data: [DONE]\r\n\r\n"])


def test_filter_keeps_usage_on_content_chunk() -> None:
    mistral_style = _event(
        {
            "choices": [{"index": 0, "delta": {"content": "end"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1},
        }
    )
    stream = b"".join([*CONTENT, mistral_style, DONE])

    assert _run(UsageChunkFilter(), [stream]) == stream


def test_filter_removes_only_first_usage_chunk() -> None:
    stream = b"".join([*CONTENT, USAGE_ONLY, USAGE_ONLY, DONE])

    assert _run(UsageChunkFilter(), [stream]) == b"".join([*CONTENT, USAGE_ONLY, DONE])


def test_filter_decodes_gzip_body() -> None:
    wire = gzip.compress(STREAM)
    filter_ = UsageChunkFilter(content_decoder("gzip"))

    assert _run(filter_, [wire[i : i + 40] for i in range(0, len(wire), 40)]) == EXPECTED


def test_filter_flush_returns_incomplete_tail() -> None:
    stream = STREAM + b'data: {"partial'

    assert _run(UsageChunkFilter(), [stream]) == EXPECTED + b'data: {"partial'


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_filter_any_chunking_same_output(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]

    assert _run(UsageChunkFilter(), chunks) == EXPECTED
