"""Routing of OpenAI, Azure and Anthropic requests, and their usage normalization."""

from __future__ import annotations

import pytest

from tokenwire.decoders.base import Extraction, PayloadError
from tokenwire.decoders.body import ResponseDecoder
from tokenwire.decoders.providers.anthropic import MessagesExtractor, messages_usage
from tokenwire.decoders.providers.openai import chat_usage
from tokenwire.decoders.providers.openai_responses import responses_usage
from tokenwire.decoders.routing import route_request
from tokenwire.sse import ServerSentEvent

BODY = b'{"model": "gpt-4o-mini", "stream": true, "messages": []}'


@pytest.mark.parametrize(
    ("host", "path", "provider", "api"),
    [
        ("api.openai.com", "/v1/chat/completions", "openai", "chat_completions"),
        ("api.openai.com", "/v1/responses", "openai", "responses"),
        ("api.openai.com", "/v1/embeddings", "openai", "embeddings"),
        (
            "res.openai.azure.com",
            "/openai/deployments/gpt4/chat/completions",
            "azure_openai",
            "chat_completions",
        ),
        ("api.anthropic.com", "/v1/messages", "anthropic", "messages"),
        ("127.0.0.1", "/v1/messages", "anthropic", "messages"),
        ("localhost", "/v1/chat/completions", "openai", "chat_completions"),
        ("llm.gateway.example", "/v1/chat/completions", "llm.gateway.example", "chat_completions"),
    ],
)
def test_route_known_shapes(host: str, path: str, provider: str, api: str) -> None:
    route = route_request("POST", host, path, BODY)

    assert route is not None
    assert (route.provider, route.api) == (provider, api)
    assert route.request_model == "gpt-4o-mini"
    assert route.stream is True
    assert route.free is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/responses/resp_123"),
        ("POST", "/v1/files"),
        ("DELETE", "/v1/chat/completions"),
    ],
)
def test_route_ignores_other_requests(method: str, path: str) -> None:
    assert route_request(method, "api.openai.com", path, None) is None


def test_route_count_tokens_is_free() -> None:
    route = route_request("POST", "api.anthropic.com", "/v1/messages/count_tokens", b"{}")

    assert route is not None
    assert route.free is True


def test_route_azure_model_from_deployment() -> None:
    route = route_request(
        "POST",
        "res.openai.azure.com",
        "/openai/deployments/my-gpt4/chat/completions",
        b'{"messages": []}',
    )

    assert route is not None
    assert route.request_model == "my-gpt4"


def test_route_tolerates_non_json_body() -> None:
    route = route_request("POST", "api.openai.com", "/v1/chat/completions", b"\x00not json")

    assert route is not None
    assert route.request_model is None
    assert route.stream is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {
                "prompt_tokens": 1149,
                "completion_tokens": 353,
                "total_tokens": 1502,
                "prompt_tokens_details": {"cached_tokens": 1024},
                "completion_tokens_details": {"reasoning_tokens": 64},
            },
            (125, 1024, None, 353, 64, 1502),
            id="cached-subset-of-prompt",
        ),
        pytest.param(
            {
                "prompt_tokens": 4020,
                "completion_tokens": 4,
                "total_tokens": 4024,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4012},
            },
            (8, 0, 4012, 4, None, 4024),
            id="cache-write-subset-of-prompt",
        ),
        pytest.param(
            {"prompt_tokens": 15, "completion_tokens": 19, "total_tokens": 34},
            (15, None, None, 19, None, 34),
            id="no-details",
        ),
        pytest.param(
            {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "total_tokens": 105,
                "prompt_cache_hit_tokens": 60,
                "prompt_cache_miss_tokens": 40,
            },
            (40, 60, None, 5, None, 105),
            id="deepseek-cache-hit",
        ),
        pytest.param(
            {"prompt_tokens": 8, "total_tokens": 8},
            (8, None, None, None, None, 8),
            id="embeddings",
        ),
    ],
)
def test_chat_usage_disjoint_classes(
    raw: dict[str, object], expected: tuple[int | None, ...]
) -> None:
    usage = chat_usage(raw)  # type: ignore[arg-type]

    assert (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_creation_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
    ) == expected
    assert usage.raw == raw


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"prompt_tokens": -1}, "negative"),
        ({"prompt_tokens": "12"}, "not a number"),
        ({"prompt_tokens": 1.5}, "whole number"),
        ({"prompt_tokens": True}, "not a number"),
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}}, "exceed"),
        ({"prompt_tokens": 10, "prompt_tokens_details": [1]}, "not an object"),
    ],
)
def test_chat_usage_rejects_bad_values(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(PayloadError, match=fragment):
        chat_usage(raw)  # type: ignore[arg-type]


def test_responses_usage_subtracts_cached() -> None:
    usage = responses_usage(
        {
            "input_tokens": 9463,
            "input_tokens_details": {"cached_tokens": 8320},
            "output_tokens": 582,
            "output_tokens_details": {"reasoning_tokens": 512},
            "total_tokens": 10045,
        }
    )

    assert (usage.input_tokens, usage.cached_input_tokens) == (1143, 8320)
    assert (usage.output_tokens, usage.reasoning_tokens, usage.total_tokens) == (582, 512, 10045)


def test_anthropic_usage_is_already_disjoint() -> None:
    usage = messages_usage(
        {
            "input_tokens": 3,
            "cache_read_input_tokens": 1111,
            "cache_creation_input_tokens": 418,
            "cache_creation": {"ephemeral_5m_input_tokens": 18, "ephemeral_1h_input_tokens": 400},
            "output_tokens": 33,
        }
    )

    assert (usage.input_tokens, usage.cached_input_tokens) == (3, 1111)
    assert usage.cache_creation_tokens == 418
    assert (usage.cache_creation_5m_tokens, usage.cache_creation_1h_tokens) == (18, 400)
    assert usage.output_tokens == 33
    assert usage.total_tokens is None


def test_anthropic_delta_overwrites_field_by_field() -> None:
    extractor = MessagesExtractor()
    out = Extraction()
    start = (
        b'{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":'
        b'{"input_tokens":21,"cache_read_input_tokens":5,"output_tokens":1}}}'
    )
    delta = b'{"type":"message_delta","usage":{"output_tokens":13,"input_tokens":null}}'

    extractor.on_event(ServerSentEvent(event="message_start", data=start), out)
    extractor.on_event(ServerSentEvent(event="message_delta", data=delta), out)

    assert out.usage is not None
    assert out.usage.input_tokens == 21
    assert out.usage.cached_input_tokens == 5
    assert out.usage.output_tokens == 13
    assert out.terminal is True
    assert out.response_id == "msg_1"


def test_decoder_feed_after_finish_is_ignored() -> None:
    route = route_request("POST", "api.openai.com", "/v1/chat/completions", b'{"model":"m"}')
    assert route is not None
    decoder = ResponseDecoder(route, 200, "application/json", None)

    decoder.feed(b'{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2}}')
    first = decoder.finish(eof=True)
    decoder.feed(b"garbage")
    second = decoder.finish(eof=True)

    assert first == second == "complete"
    assert decoder.problem is None
