"""OpenAI-compatible providers: DeepSeek, xAI, Mistral, Groq, OpenRouter, local servers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenwire.decoders.providers.openai import chat_usage

from .wire import THREE_WAYS, chunked, decode, route

BODY = b'{"model": "m", "messages": [], "stream": false}'
STREAM_BODY = b'{"model": "m", "messages": [], "stream": true}'


def _completion(model: str, usage: dict[str, Any], **extra: Any) -> bytes:
    body = {
        "id": "cmpl-x",
        "object": "chat.completion",
        "model": model,
        "choices": [],
        "usage": usage,
        **extra,
    }
    return json.dumps(body).encode()


def _sse(*chunks: dict[str, Any]) -> bytes:
    events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


# DeepSeek reports cache hits twice: OpenAI's `cached_tokens` and its own hit/miss pair.
DEEPSEEK_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "prompt_cache_hit_tokens": 1024,
    "prompt_cache_miss_tokens": 176,
    "completion_tokens_details": {"reasoning_tokens": 120},
}
# Older DeepSeek replies carry only the hit/miss pair.
DEEPSEEK_USAGE_OLD = {
    "prompt_tokens": 64,
    "completion_tokens": 8,
    "total_tokens": 72,
    "prompt_cache_hit_tokens": 0,
    "prompt_cache_miss_tokens": 64,
}
# xAI counts reasoning beside completion: 320 + 41 + 187 = 548.
XAI_USAGE = {
    "prompt_tokens": 320,
    "completion_tokens": 41,
    "total_tokens": 548,
    "prompt_tokens_details": {
        "text_tokens": 320,
        "audio_tokens": 0,
        "image_tokens": 0,
        "cached_tokens": 256,
    },
    "completion_tokens_details": {
        "reasoning_tokens": 187,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
    "num_sources_used": 0,
    "cost_in_usd_ticks": 15230000,
}
# OpenRouter follows OpenAI: completion includes reasoning (163 + 241 = 404).
OPENROUTER_USAGE = {
    "prompt_tokens": 163,
    "completion_tokens": 241,
    "total_tokens": 404,
    "prompt_tokens_details": {"cached_tokens": 160, "cache_write_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 204},
    "cost": 0.000129,
    "is_byok": False,
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(DEEPSEEK_USAGE, (176, 1024, 300, 120, 1500), id="deepseek"),
        pytest.param(DEEPSEEK_USAGE_OLD, (64, 0, 8, None, 72), id="deepseek-hit-miss-only"),
        pytest.param(XAI_USAGE, (64, 256, 41 + 187, 187, 548), id="xai-reasoning-outside"),
        pytest.param(OPENROUTER_USAGE, (3, 160, 241, 204, 404), id="openrouter-inclusive"),
        pytest.param(
            {
                "prompt_tokens": 21,
                "completion_tokens": 0,
                "total_tokens": 81,
                "completion_tokens_details": {"reasoning_tokens": 60},
            },
            (21, None, 60, 60, 81),
            id="gateway-translated-gemini-thoughts",
        ),
        pytest.param(
            {
                "prompt_tokens": 10,
                "completion_tokens": 30,
                "total_tokens": 40,
                "completion_tokens_details": {"reasoning_tokens": 20},
            },
            (10, None, 30, 20, 40),
            id="openai-reasoning-inside",
        ),
        pytest.param(
            {
                "prompt_tokens": 10,
                "completion_tokens": 30,
                "completion_tokens_details": {"reasoning_tokens": 20},
            },
            (10, None, 30, 20, None),
            id="no-total-means-openai-rules",
        ),
    ],
)
def test_chat_usage_provider_semantics(
    raw: dict[str, Any], expected: tuple[int | None, ...]
) -> None:
    usage = chat_usage(raw)

    assert (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
    ) == expected
    assert usage.raw == raw


def test_xai_chat_completion_record() -> None:
    chat = route("POST", "https://api.x.ai/v1/chat/completions", BODY)

    record, _ = decode(
        chat, [_completion("grok-4-fast-reasoning", XAI_USAGE)], content_type="application/json"
    )

    assert record.provider == "xai"
    assert record.state == "complete"
    assert record.usage.output_tokens == 228
    assert record.usage.raw["cost_in_usd_ticks"] == 15230000
    assert record.usage.image_input_tokens == 0


@pytest.mark.parametrize("way", THREE_WAYS)
def test_deepseek_stream_usage_chunk(way: str) -> None:
    chat = route("POST", "https://api.deepseek.com/chat/completions", STREAM_BODY)
    body = _sse(
        {
            "id": "ds-1",
            "object": "chat.completion.chunk",
            "model": "deepseek-reasoner",
            "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}],
        },
        {
            "id": "ds-1",
            "object": "chat.completion.chunk",
            "model": "deepseek-reasoner",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
        {
            "id": "ds-1",
            "object": "chat.completion.chunk",
            "model": "deepseek-reasoner",
            "choices": [],
            "usage": DEEPSEEK_USAGE,
        },
    )

    record, _ = decode(chat, chunked(body, way), content_type="text/event-stream")

    assert record.provider == "deepseek"
    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.cached_input_tokens) == (176, 1024)
    assert record.usage.raw["prompt_cache_miss_tokens"] == 176


@pytest.mark.parametrize("way", THREE_WAYS)
def test_mistral_usage_on_finish_reason_chunk(way: str) -> None:
    chat = route("POST", "https://api.mistral.ai/v1/chat/completions", STREAM_BODY)
    body = _sse(
        {
            "id": "m-1",
            "object": "chat.completion.chunk",
            "model": "mistral-small-latest",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
        },
        {
            "id": "m-1",
            "object": "chat.completion.chunk",
            "model": "mistral-small-latest",
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "total_tokens": 19, "completion_tokens": 10},
        },
    )

    record, _ = decode(chat, chunked(body, way), content_type="text/event-stream")

    assert record.provider == "mistral"
    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (9, 10)


def test_groq_top_level_usage_wins_over_x_groq() -> None:
    chat = route("POST", "https://api.groq.com/openai/v1/chat/completions", STREAM_BODY)
    body = _sse(
        {
            "id": "g-1",
            "object": "chat.completion.chunk",
            "model": "llama-3.3-70b-versatile",
            "choices": [{"index": 0, "delta": {"content": "Hi"}}],
            "x_groq": {"id": "req_1"},
        },
        {
            "id": "g-1",
            "object": "chat.completion.chunk",
            "model": "llama-3.3-70b-versatile",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
            "x_groq": {
                "id": "req_1",
                "usage": {"prompt_tokens": 31, "completion_tokens": 8, "total_tokens": 39},
            },
        },
    )

    record, _ = decode(chat, [body], content_type="text/event-stream")

    assert record.usage.total_tokens == 37
    assert record.usage.input_tokens == 30


def test_groq_compound_breakdown_kept_raw() -> None:
    chat = route("POST", "https://api.groq.com/openai/v1/chat/completions", STREAM_BODY)
    breakdown = {
        "models": [
            {"model": "openai/gpt-oss-120b", "usage": {"prompt_tokens": 40, "completion_tokens": 5}}
        ]
    }
    body = _sse(
        {
            "id": "stub",
            "object": "chat.completion.chunk",
            "model": "groq/compound",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {
                "id": "req_2",
                "usage": {
                    "prompt_tokens": 40,
                    "completion_tokens": 5,
                    "total_tokens": 45,
                    "total_time": 0.5,
                },
                "usage_breakdown": breakdown,
            },
        },
    )

    record, _ = decode(chat, [body], content_type="text/event-stream")

    assert record.state == "complete"
    assert record.usage.total_tokens == 45
    assert record.usage.raw["usage_breakdown"] == breakdown
    assert record.usage.raw["total_time"] == 0.5


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        pytest.param(
            "https://openrouter.ai/api/v1/chat/completions", "openrouter", id="openrouter"
        ),
        pytest.param("https://api.together.xyz/v1/chat/completions", "together", id="together"),
        pytest.param(
            "https://api.fireworks.ai/inference/v1/chat/completions", "fireworks", id="fireworks"
        ),
        pytest.param("https://api.portkey.ai/v1/chat/completions", "portkey", id="portkey"),
        pytest.param("https://api.perplexity.ai/chat/completions", "perplexity", id="perplexity"),
        pytest.param(
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
            "gemini",
            id="gemini-openai-compatible",
        ),
        pytest.param(
            "https://vllm.internal.example/v1/chat/completions",
            "vllm.internal.example",
            id="vllm-unknown-host",
        ),
    ],
)
def test_openai_compatible_hosts(url: str, provider: str) -> None:
    chat = route("POST", url, BODY)

    record, _ = decode(
        chat, [_completion("some-model", OPENROUTER_USAGE)], content_type="application/json"
    )

    assert record.provider == provider
    assert record.api == "chat_completions"
    assert record.state == "complete"
    assert record.usage.raw["cost"] == 0.000129


def test_ollama_loopback_legacy_completions() -> None:
    completions = route("POST", "https://127.0.0.1/v1/completions", BODY)
    body = json.dumps(
        {
            "id": "cmpl-9",
            "object": "text_completion",
            "model": "llama3.2",
            "choices": [],
            "usage": {"prompt_tokens": 26, "completion_tokens": 12, "total_tokens": 38},
        }
    ).encode()

    record, _ = decode(completions, [body], content_type="application/json")

    assert (record.provider, record.api, record.state) == ("openai", "completions", "complete")
    assert record.usage.output_tokens == 12
