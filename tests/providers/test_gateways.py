"""Routing through gateways and Google-style paths: Cloudflare AI Gateway, LiteLLM, Vertex AI."""

from __future__ import annotations

import json

import pytest

from tokenwire.decoders.routing import Route, route_request

from .wire import decode

CLOUDFLARE = "gateway.ai.cloudflare.com"
ACCOUNT_GATEWAY = "/v1/0123456789abcdef/my-gateway"


def _route(method: str, host: str, path: str, body: bytes | None = b"{}") -> Route:
    found = route_request(method, host, path, body)
    assert found is not None, f"{method} {host}{path} is not routed"
    return found


@pytest.mark.parametrize(
    ("provider_path", "body", "expected"),
    [
        pytest.param(
            "/openai/chat/completions",
            b'{"model": "gpt-4o-mini", "stream": true}',
            ("openai", "chat_completions", "openai_chat", "gpt-4o-mini", True),
            id="openai",
        ),
        pytest.param(
            "/openai/responses",
            b'{"model": "gpt-5"}',
            ("openai", "responses", "openai_responses", "gpt-5", False),
            id="responses",
        ),
        pytest.param(
            "/anthropic/v1/messages",
            b'{"model": "claude-sonnet-4-5"}',
            ("anthropic", "messages", "anthropic_messages", "claude-sonnet-4-5", False),
            id="anthropic",
        ),
        pytest.param(
            "/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            b"{}",
            ("gemini", "generate_content", "gemini", "gemini-2.5-flash", True),
            id="google-ai-studio",
        ),
        pytest.param(
            "/google-vertex-ai/v1/projects/p/locations/us-east5/publishers/anthropic/models"
            "/claude-opus-4@20250514:rawPredict",
            b'{"anthropic_version": "vertex-2023-10-16"}',
            ("vertex_ai", "messages", "anthropic_messages", "claude-opus-4@20250514", False),
            id="vertex-anthropic",
        ),
        pytest.param(
            "/azure-openai/my-resource/my-deployment/chat/completions",
            b"{}",
            ("azure_openai", "chat_completions", "openai_chat", "my-deployment", False),
            id="azure-openai",
        ),
        pytest.param(
            "/groq/chat/completions",
            b'{"model": "llama-3.3-70b-versatile"}',
            ("groq", "chat_completions", "openai_chat", "llama-3.3-70b-versatile", False),
            id="groq",
        ),
        pytest.param(
            "/grok/v1/chat/completions",
            b'{"model": "grok-4"}',
            ("xai", "chat_completions", "openai_chat", "grok-4", False),
            id="grok",
        ),
        pytest.param(
            "/mistral/v1/chat/completions",
            b'{"model": "mistral-large-latest"}',
            ("mistral", "chat_completions", "openai_chat", "mistral-large-latest", False),
            id="mistral",
        ),
        pytest.param(
            "/deepseek/chat/completions",
            b'{"model": "deepseek-chat"}',
            ("deepseek", "chat_completions", "openai_chat", "deepseek-chat", False),
            id="deepseek",
        ),
        pytest.param(
            "/cohere/v2/chat",
            b'{"model": "command-a-03-2025"}',
            ("cohere", "chat", "cohere", "command-a-03-2025", False),
            id="cohere",
        ),
        pytest.param(
            "/workers-ai/v1/chat/completions",
            b'{"model": "@cf/meta/llama-3.1-8b"}',
            ("workers-ai", "chat_completions", "openai_chat", "@cf/meta/llama-3.1-8b", False),
            id="unlisted-slug",
        ),
        pytest.param(
            "/compat/chat/completions",
            b'{"model": "google-ai-studio/gemini-2.5-flash"}',
            (
                "gemini",
                "chat_completions",
                "openai_chat",
                "google-ai-studio/gemini-2.5-flash",
                False,
            ),
            id="compat",
        ),
    ],
)
def test_cloudflare_provider_paths(
    provider_path: str, body: bytes, expected: tuple[object, ...]
) -> None:
    found = _route("POST", CLOUDFLARE, ACCOUNT_GATEWAY + provider_path, body)

    assert (found.provider, found.api, found.shape, found.request_model, found.stream) == expected


def test_cloudflare_batch_results_download() -> None:
    found = _route("GET", CLOUDFLARE, ACCOUNT_GATEWAY + "/openai/files/file-abc/content", None)

    assert (found.provider, found.api, found.batch, found.response_id) == (
        "openai",
        "batch",
        True,
        "file-abc",
    )


def test_cloudflare_free_and_unknown_paths() -> None:
    moderation = _route("POST", CLOUDFLARE, ACCOUNT_GATEWAY + "/openai/moderations")

    assert moderation.free is True
    assert route_request("POST", CLOUDFLARE, ACCOUNT_GATEWAY + "/openai/files", b"{}") is None
    assert route_request("POST", CLOUDFLARE, "/v2/x/y/openai/chat/completions", b"{}") is None


def _steps(*steps: tuple[str, str, dict[str, object]]) -> bytes:
    return json.dumps(
        [
            {
                "provider": provider,
                "endpoint": endpoint,
                "headers": {"authorization": "Bearer x"},
                "query": query,
            }
            for provider, endpoint, query in steps
        ]
    ).encode()


def test_cloudflare_universal_single_provider() -> None:
    body = _steps(
        ("openai", "chat/completions", {"model": "gpt-4o-mini", "stream": True}),
        ("openai", "chat/completions", {"model": "gpt-4o"}),
    )

    found = _route("POST", CLOUDFLARE, ACCOUNT_GATEWAY, body)

    assert (found.provider, found.shape, found.request_model, found.stream) == (
        "openai",
        "openai_chat",
        "gpt-4o-mini",
        True,
    )


def test_cloudflare_universal_mixed_providers_named_by_gateway() -> None:
    body = _steps(
        ("workers-ai", "@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi"}),
        ("openai", "chat/completions", {"model": "gpt-4o-mini"}),
        ("anthropic", "v1/messages", {"model": "claude-haiku-4-5"}),
    )

    found = _route("POST", CLOUDFLARE, ACCOUNT_GATEWAY, body)

    # The Workers AI native step is not metered; the next two differ, so the
    # gateway is the provider and the first metered step's shape is used.
    assert (found.provider, found.shape) == ("cloudflare_ai_gateway", "openai_chat")


def test_cloudflare_universal_invalid_body_not_routed() -> None:
    assert route_request("POST", CLOUDFLARE, ACCOUNT_GATEWAY, b'{"not": "a list"}') is None
    assert route_request("POST", CLOUDFLARE, ACCOUNT_GATEWAY, None) is None


def test_cloudflare_gateway_record_end_to_end() -> None:
    found = _route(
        "POST",
        CLOUDFLARE,
        ACCOUNT_GATEWAY + "/anthropic/v1/messages",
        b'{"model": "claude-haiku-4-5"}',
    )
    body = (
        b'{"id": "msg_1", "type": "message", "model": "claude-haiku-4-5", "usage": '
        b'{"input_tokens": 12, "cache_read_input_tokens": 50, "output_tokens": 9}}'
    )

    record, _ = decode(found, [body], content_type="application/json")

    assert (record.provider, record.state) == ("anthropic", "complete")
    assert (record.usage.input_tokens, record.usage.cached_input_tokens) == (12, 50)


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        pytest.param(
            "litellm.internal",
            "/chat/completions",
            ("litellm.internal", "chat_completions", "openai_chat"),
            id="litellm-chat",
        ),
        pytest.param(
            "litellm.internal",
            "/v1/messages",
            ("litellm.internal", "messages", "anthropic_messages"),
            id="litellm-anthropic",
        ),
        pytest.param(
            "litellm.internal",
            "/gemini/v1beta/models/gemini-2.5-pro:generateContent",
            ("litellm.internal", "generate_content", "gemini"),
            id="litellm-gemini-passthrough",
        ),
        pytest.param(
            "openrouter.ai",
            "/api/v1/chat/completions",
            ("openrouter", "chat_completions", "openai_chat"),
            id="openrouter",
        ),
        pytest.param(
            "openrouter.ai",
            "/api/v1/messages",
            ("openrouter", "messages", "anthropic_messages"),
            id="openrouter-messages",
        ),
        pytest.param(
            "api.portkey.ai",
            "/v1/messages",
            ("portkey", "messages", "anthropic_messages"),
            id="portkey-messages",
        ),
        pytest.param(
            "aiplatform.googleapis.com",
            "/v1/projects/p/locations/global/endpoints/openapi/chat/completions",
            ("vertex_ai", "chat_completions", "openai_chat"),
            id="vertex-openapi",
        ),
        pytest.param(
            "europe-west4-aiplatform.googleapis.com",
            "/v1/projects/p/locations/europe-west4/publishers/mistralai/models"
            "/mistral-small-2503:streamRawPredict",
            ("vertex_ai", "chat_completions", "openai_chat"),
            id="vertex-mistral",
        ),
        pytest.param(
            "localhost",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            ("gemini", "generate_content", "gemini"),
            id="loopback-gemini",
        ),
    ],
)
def test_paths_route_without_known_host(
    host: str, path: str, expected: tuple[str, str, str]
) -> None:
    found = _route("POST", host, path)

    assert (found.provider, found.api, found.shape) == expected


@pytest.mark.parametrize(
    ("method", "host", "path"),
    [
        pytest.param("GET", "api.openai.com", "/v1/responses/resp_123", id="responses-retrieve"),
        pytest.param(
            "GET",
            "api.openai.com",
            "/v1/responses/resp_123/input_items",
            id="responses-input-items",
        ),
        pytest.param(
            "POST", "api.openai.com", "/v1/responses/resp_123/cancel", id="responses-cancel"
        ),
        pytest.param(
            "GET", "generativelanguage.googleapis.com", "/v1beta/cachedContents/abc", id="cache-get"
        ),
        pytest.param(
            "POST",
            "us-central1-aiplatform.googleapis.com",
            "/v1/projects/p/locations/l/publishers/meta/models/llama:rawPredict",
            id="raw-predict-unknown-publisher",
        ),
        pytest.param(
            "POST",
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:generateImages",
            id="unknown-action",
        ),
        pytest.param(
            "GET", "api.anthropic.com", "/v1/messages/batches/msgbatch_1", id="batch-status"
        ),
        pytest.param(
            "GET",
            "llm.example.test",
            "/v1/messages/batches/b/results",
            id="batch-results-unknown-host",
        ),
    ],
)
def test_requests_not_routed(method: str, host: str, path: str) -> None:
    assert route_request(method, host, path, b"{}") is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/gemini-2.5-flash:countTokens",
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:computeTokens",
    ],
)
def test_gemini_token_counting_is_free(path: str) -> None:
    found = _route("POST", "generativelanguage.googleapis.com", path)

    assert found.free is True
