"""Cohere v1 and v2: JSON bodies, the v1 NDJSON stream, the v2 SSE stream, embed and rerank."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.base import PayloadError
from tokenwire.decoders.providers.cohere import cohere_usage
from tokenwire.decoders.routing import route_request

from .wire import THREE_WAYS, chunked, decode, route, split_at

V1_CHAT = "https://api.cohere.com/v1/chat"
V2_CHAT = "https://api.cohere.com/v2/chat"

# `tokens` (model-side) and `billed_units` (invoiced) differ when a prompt template is added.
V1_META = {
    "api_version": {"version": "1"},
    "billed_units": {"input_tokens": 7, "output_tokens": 115},
    "tokens": {"input_tokens": 69, "output_tokens": 116},
}
V1_NDJSON = b"".join(
    json.dumps(event).encode() + b"\n"
    for event in (
        {"is_finished": False, "event_type": "stream-start", "generation_id": "gen-1"},
        {"is_finished": False, "event_type": "text-generation", "text": "Arr"},
        {"is_finished": False, "event_type": "text-generation", "text": "stream-end"},
        {
            "is_finished": True,
            "event_type": "stream-end",
            "finish_reason": "COMPLETE",
            "response": {"response_id": "resp-v1", "generation_id": "gen-1", "meta": V1_META},
        },
    )
)
V2_USAGE = {
    "billed_units": {"input_tokens": 12, "output_tokens": 64},
    "tokens": {"input_tokens": 212, "output_tokens": 64},
    "cached_tokens": 208,
}
V2_SSE = (
    b'event: message-start\ndata: {"id":"msg-v2","type":"message-start","delta":{}}\n\n'
    b'event: content-delta\ndata: {"type":"content-delta","index":0,'
    b'"delta":{"message":{"content":{"text":"Sure"}}}}\n\n'
    b"event: message-end\ndata: "
    + json.dumps(
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": V2_USAGE}}
    ).encode()
    + b"\n\ndata: [DONE]\n\n"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(V1_META, (69, None, 116), id="tokens-over-billed-units"),
        pytest.param(V2_USAGE, (4, 208, 64), id="cached-inside-tokens"),
        pytest.param(
            {"billed_units": {"input_tokens": 208}}, (208, None, None), id="embed-billed-units-only"
        ),
        pytest.param(
            {"billed_units": {"input_tokens": 9}, "tokens": {}}, (9, None, None), id="empty-tokens"
        ),
        pytest.param({"billed_units": {"search_units": 1}}, (None, None, None), id="rerank"),
    ],
)
def test_usage_semantics(raw: dict[str, object], expected: tuple[int | None, ...]) -> None:
    usage = cohere_usage(raw)

    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == expected
    assert usage.total_tokens is None
    assert usage.raw == raw


def test_usage_keeps_billed_units_raw() -> None:
    usage = cohere_usage(V1_META)

    assert usage.raw["billed_units"] == {"input_tokens": 7, "output_tokens": 115}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"tokens": {"input_tokens": 5}, "cached_tokens": 6}, id="cache-over-input"),
        pytest.param({"tokens": [1, 2]}, id="tokens-not-object"),
        pytest.param({"tokens": {"input_tokens": 1.5}}, id="fraction"),
    ],
)
def test_usage_rejects_invalid(raw: dict[str, object]) -> None:
    with pytest.raises(PayloadError):
        cohere_usage(raw)


def test_v1_chat_json() -> None:
    body = json.dumps(
        {
            "response_id": "resp-1",
            "generation_id": "gen-1",
            "text": "Arr",
            "finish_reason": "COMPLETE",
            "meta": V1_META,
        }
    ).encode()
    chat = route("POST", V1_CHAT, b'{"message": "hi", "model": "command", "stream": false}')

    record, _ = decode(chat, [body], content_type="application/json")

    assert (record.provider, record.api, record.stream) == ("cohere", "chat", False)
    assert record.state == "complete"
    assert record.response_id == "resp-1"
    assert record.model == "command"
    assert record.usage.input_tokens == 69
    assert record.usage.output_tokens == 116


@pytest.mark.parametrize("way", THREE_WAYS)
def test_v1_ndjson_stream(way: str) -> None:
    chat = route("POST", V1_CHAT, b'{"message": "hi", "stream": true}')

    record, _ = decode(chat, chunked(V1_NDJSON, way), content_type="application/stream+json")

    assert record.stream is True
    assert record.state == "complete"
    assert record.response_id == "resp-v1"
    assert record.usage.input_tokens == 69
    assert record.usage.output_tokens == 116


@given(st.lists(st.integers(min_value=0, max_value=len(V1_NDJSON)), max_size=25))
def test_v1_ndjson_any_chunking(cuts: list[int]) -> None:
    chat = route("POST", V1_CHAT, b'{"stream": true}')

    record, decoder = decode(
        chat, split_at(V1_NDJSON, cuts), content_type="application/stream+json"
    )

    assert decoder.problem is None
    assert record.state == "complete"
    assert record.usage.output_tokens == 116


def test_v1_ndjson_cut_before_stream_end_is_partial() -> None:
    chat = route("POST", V1_CHAT, b'{"stream": true}')
    cut = V1_NDJSON.index(b'{"is_finished": true')

    record, _ = decode(chat, [V1_NDJSON[:cut]], content_type="application/stream+json")

    assert record.state == "partial"
    assert record.response_id == "gen-1"
    assert record.usage.input_tokens is None


def test_v1_stream_error_finish_is_error() -> None:
    chat = route("POST", V1_CHAT, b'{"stream": true}')
    body = (
        b'{"is_finished": false, "event_type": "stream-start", "generation_id": "g"}\n'
        b'{"is_finished": true, "event_type": "stream-end", "finish_reason": "ERROR_TOXIC"}\n'
    )

    record, _ = decode(chat, [body], content_type="application/stream+json")

    assert record.state == "error"
    assert record.problem == "provider error: ERROR_TOXIC"


def test_v2_chat_json_cached() -> None:
    body = json.dumps({"id": "msg-json", "finish_reason": "COMPLETE", "usage": V2_USAGE}).encode()
    chat = route("POST", V2_CHAT, b'{"model": "command-r7b-12-2024", "messages": []}')

    record, _ = decode(chat, [body], content_type="application/json")

    assert record.state == "complete"
    assert record.response_id == "msg-json"
    assert record.request_model == "command-r7b-12-2024"
    assert (record.usage.input_tokens, record.usage.cached_input_tokens) == (4, 208)


@pytest.mark.parametrize("way", THREE_WAYS)
def test_v2_sse_stream(way: str) -> None:
    chat = route("POST", V2_CHAT, b'{"model": "command-r", "stream": true}')

    record, _ = decode(chat, chunked(V2_SSE, way), content_type="text/event-stream")

    assert record.stream is True
    assert record.state == "complete"
    assert record.response_id == "msg-v2"
    assert record.usage.input_tokens == 4
    assert record.usage.output_tokens == 64


@given(st.lists(st.integers(min_value=0, max_value=len(V2_SSE)), max_size=25))
def test_v2_sse_any_chunking(cuts: list[int]) -> None:
    chat = route("POST", V2_CHAT, b'{"stream": true}')

    record, _ = decode(chat, split_at(V2_SSE, cuts), content_type="text/event-stream")

    assert record.state == "complete"
    assert record.usage.cached_input_tokens == 208


def test_embed_and_rerank() -> None:
    embed = route("POST", "https://api.cohere.com/v2/embed", b'{"model": "embed-v4.0"}')
    rerank = route("POST", "https://api.cohere.com/v2/rerank", b'{"model": "rerank-v3.5"}')

    embedded, _ = decode(
        embed,
        [b'{"id": "e1", "meta": {"billed_units": {"input_tokens": 208}}}'],
        content_type="application/json",
    )
    reranked, _ = decode(
        rerank,
        [b'{"id": "r1", "results": [], "meta": {"billed_units": {"search_units": 1}}}'],
        content_type="application/json",
    )

    assert (embedded.api, embedded.state, embedded.usage.input_tokens) == ("embed", "complete", 208)
    assert (reranked.api, reranked.state) == ("rerank", "complete")
    assert reranked.billable is False
    assert reranked.usage.raw == {"billed_units": {"search_units": 1}}


def test_compatibility_api_uses_chat_completions_rules() -> None:
    chat = route(
        "POST", "https://api.cohere.com/compatibility/v1/chat/completions", b'{"model": "c"}'
    )

    assert (chat.provider, chat.shape) == ("cohere", "openai_chat")


def test_native_paths_only_on_cohere_hosts() -> None:
    assert route_request("POST", "api.example.test", "/v2/chat", b"{}") is None
