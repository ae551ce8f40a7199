"""Map an outgoing request to the provider API that will answer it.

`route_request()` looks only at the method, host, path, query and the JSON
request body's `model` and `stream` fields. It returns `None` for requests
that are not LLM calls (file uploads, listings), which then pass through
unmetered, and a `Route` with `free=True` for endpoints that return no
billable usage (token counting), which get no record.

Providers are recognised by host; an unknown host is still metered when its
path has a known API shape (OpenAI-compatible gateways, local servers), with
`provider` taken from the host.

Amazon Bedrock Runtime (`bedrock-runtime[-fips].<region>.amazonaws.com[.cn]`,
its VPC endpoints, or a loopback server) is recognised by the path
`/model/{modelId}/{operation}`; the model id is taken from the path as given
(an ARN or an inference profile such as `us.anthropic...` stays whole).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import unquote

import msgspec

__all__ = ["Route", "Shape", "route_request"]

Shape = Literal[
    "openai_chat",
    "openai_responses",
    "anthropic_messages",
    "bedrock_converse",
    "bedrock_invoke",
    "gemini",
    "cohere",
    "openai_media",
    "batch_results",
]


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """The provider API of a request and how its response is read."""

    provider: str
    api: str
    shape: Shape
    request_model: str | None = None
    stream: bool = False
    free: bool = False
    batch: bool = False
    """The response contains the results of a batch job, which is priced at the batch rate."""
    response_id: str | None = None
    """The id the record carries when the response names none (a batch file's id)."""


class _RequestPeek(msgspec.Struct):
    model: str | None = None
    stream: bool | None = None


_peek = msgspec.json.Decoder(_RequestPeek)

# Hosts whose provider name is known. Suffix entries start with a dot or a hyphen.
_HOSTS: dict[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "xai",
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.fireworks.ai": "fireworks",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "generativelanguage.googleapis.com": "gemini",
    "aiplatform.googleapis.com": "vertex_ai",
    "api.portkey.ai": "portkey",
    "api.perplexity.ai": "perplexity",
    "api.cerebras.ai": "cerebras",
}
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure_openai"),
    (".cognitiveservices.azure.com", "azure_openai"),
    (".services.ai.azure.com", "azure_openai"),
    # Regional Vertex AI endpoints: `us-central1-aiplatform.googleapis.com`.
    ("-aiplatform.googleapis.com", "vertex_ai"),
)


def _provider_for_host(host: str, shape: Shape) -> str:
    host = host.lower()
    known = _HOSTS.get(host)
    if known is not None:
        return known
    for suffix, name in _HOST_SUFFIXES:
        if host.endswith(suffix):
            return name
    if _is_loopback(host):
        # A local server speaking a provider's API (a test double or a proxy).
        return _LOOPBACK_PROVIDERS.get(shape, "openai")
    return host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _peek_body(body: bytes | None) -> _RequestPeek:
    if not body:
        return _RequestPeek()
    try:
        return _peek.decode(body)
    except msgspec.DecodeError:
        return _RequestPeek()


def _azure_deployment(path: str) -> str | None:
    """Return the deployment name of an `/openai/deployments/{name}/...` path."""
    parts = path.split("/")
    try:
        index = parts.index("deployments")
    except ValueError:
        return None
    if index + 1 < len(parts) and parts[index - 1] == "openai":
        return parts[index + 1] or None
    return None


# Bedrock Runtime operations by the last segment of `/model/{modelId}/{operation}`:
# (shape, api, streamed).
_BEDROCK_OPERATIONS: dict[str, tuple[Shape, str, bool]] = {
    "converse": ("bedrock_converse", "converse", False),
    "converse-stream": ("bedrock_converse", "converse_stream", True),
    "invoke": ("bedrock_invoke", "invoke_model", False),
    "invoke-with-response-stream": ("bedrock_invoke", "invoke_model_with_response_stream", True),
}
_BEDROCK_FREE_OPERATIONS = {"count-tokens": "count_tokens"}
_BEDROCK_PATH_PREFIX = "/model/"


def _is_bedrock_runtime_host(host: str) -> bool:
    host = host.lower()
    if _is_loopback(host):
        return True
    if not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return False
    return any(label.startswith("bedrock-runtime") for label in host.split("."))


def _bedrock_route(host: str, path: str) -> Route | None:
    """Return the route of a Bedrock Runtime model call, or None for any other request."""
    if not path.startswith(_BEDROCK_PATH_PREFIX) or not _is_bedrock_runtime_host(host):
        return None
    # An ARN model id contains "/" (percent-encoded on the wire, decoded in `path`),
    # so the operation is the last segment and the model id is all before it.
    model, _, operation = path[len(_BEDROCK_PATH_PREFIX) :].rpartition("/")
    if not model:
        return None
    if operation in _BEDROCK_FREE_OPERATIONS:
        return Route(
            provider="bedrock",
            api=_BEDROCK_FREE_OPERATIONS[operation],
            shape="bedrock_converse",
            request_model=unquote(model),
            free=True,
        )
    known = _BEDROCK_OPERATIONS.get(operation)
    if known is None:
        return None
    shape, api, stream = known
    return Route(
        provider="bedrock", api=api, shape=shape, request_model=unquote(model), stream=stream
    )


def route_request(method: str, host: str, path: str, body: bytes | None) -> Route | None:
    """Return the route of a request, or None when it is not an LLM API call."""
    path = path.rstrip("/")
    if host.lower() == _CLOUDFLARE_GATEWAY_HOST:
        if method == "POST" and path.count("/") == 3:
            return _cloudflare_universal_route(path, body)
        unwrapped = _unwrap_cloudflare(path, body)
        if unwrapped is None:
            return None
        host, path = unwrapped
    if method != "POST":
        return _route_other_method(method, host, path)
    bedrock = _bedrock_route(host, path)
    if bedrock is not None:
        return bedrock

    shape: Shape
    if path.endswith("/chat/completions"):
        shape, api = "openai_chat", "chat_completions"
    elif path.endswith("/responses"):
        shape, api = "openai_responses", "responses"
    elif path.endswith("/embeddings"):
        # Embeddings report `prompt_tokens` and `total_tokens` in the chat shape.
        shape, api = "openai_chat", "embeddings"
    elif path.endswith("/messages/count_tokens"):
        return Route(
            provider=_provider_for_host(host, "anthropic_messages"),
            api="count_tokens",
            shape="anthropic_messages",
            free=True,
        )
    elif path.endswith("/v1/messages") or path == "/messages":
        shape, api = "anthropic_messages", "messages"
    else:
        return _route_more(host, path, body)

    peek = _peek_body(body)
    provider = _provider_for_host(host, shape)
    model = peek.model
    if provider == "azure_openai" and model is None:
        model = _azure_deployment(path)
    return Route(
        provider=provider,
        api=api,
        shape=shape,
        request_model=model,
        stream=bool(peek.stream),
    )


# Gemini, Vertex AI, Cohere, OpenAI audio and images, batch results, Cloudflare AI Gateway.

_LOOPBACK_PROVIDERS: dict[str, str] = {
    "anthropic_messages": "anthropic",
    "gemini": "gemini",
    "cohere": "cohere",
}
"""Provider of a loopback server by the API shape it speaks; `openai` otherwise."""

# Gemini and Vertex AI methods by the `:action` that ends the path: (api, streamed).
_GEMINI_ACTIONS: dict[str, tuple[str, bool]] = {
    "generateContent": ("generate_content", False),
    "streamGenerateContent": ("generate_content", True),
    "embedContent": ("embed_content", False),
    "batchEmbedContents": ("embed_content", False),
}
_GEMINI_FREE_ACTIONS = {"countTokens": "count_tokens", "computeTokens": "compute_tokens"}

# Vertex AI partner models reply to `:rawPredict` and `:streamRawPredict` in their own
# API's shape, chosen by the publisher segment of the path.
_RAW_PREDICT_PUBLISHERS: dict[str, tuple[Shape, str]] = {
    "anthropic": ("anthropic_messages", "messages"),
    "mistralai": ("openai_chat", "chat_completions"),
}

_OPENAI_MEDIA_PATHS: dict[str, str] = {
    "/audio/transcriptions": "audio_transcriptions",
    "/audio/translations": "audio_translations",
    "/audio/speech": "audio_speech",
    "/images/generations": "images_generations",
    "/images/edits": "images_edits",
    "/images/variations": "images_variations",
}

# Cohere's native API; its OpenAI-compatible `/compatibility/v1/chat/completions`
# is matched by the Chat Completions suffix like any other.
_COHERE_PATHS: dict[str, str] = {
    "/v1/chat": "chat",
    "/v2/chat": "chat",
    "/v1/embed": "embed",
    "/v2/embed": "embed",
    "/v1/rerank": "rerank",
    "/v2/rerank": "rerank",
    "/v1/generate": "generate",
}

_FILE_CONTENT = re.compile(r"/files/([^/]+)/content$")
_MESSAGE_BATCH_RESULTS = re.compile(r"/messages/batches/([^/]+)/results$")


def _route_more(host: str, path: str, body: bytes | None) -> Route | None:
    """Route the POST paths beyond Chat Completions, Responses and Messages."""
    if ":" in path.rsplit("/", 1)[-1]:
        return _route_action(host, path, body)
    if path.endswith("/cachedContents"):
        # Creating an explicit cache reports its size; storage is billed per token-hour.
        model = _peek_body(body).model
        return Route(
            provider=_provider_for_host(host, "gemini"),
            api="cached_contents",
            shape="gemini",
            request_model=model and _model_from_resource(model),
        )
    if path.endswith("/moderations"):
        return Route(
            provider=_provider_for_host(host, "openai_chat"),
            api="moderations",
            shape="openai_chat",
            free=True,
        )
    if path.endswith("/responses/compact"):
        # Compaction runs the model and reports Responses usage for that pass.
        return _openai_style_route(host, path, body, "openai_responses", "responses_compact")
    for suffix, api in _OPENAI_MEDIA_PATHS.items():
        if path.endswith(suffix):
            return _openai_style_route(host, path, body, "openai_media", api)
    if path.endswith("/completions"):
        # The legacy Completions API reports usage exactly as Chat Completions does.
        return _openai_style_route(host, path, body, "openai_chat", "completions")
    if _provider_for_host(host, "cohere") == "cohere":
        for suffix, api in _COHERE_PATHS.items():
            if path.endswith(suffix):
                peek = _peek_body(body)
                return Route(
                    provider="cohere",
                    api=api,
                    shape="cohere",
                    request_model=peek.model,
                    stream=bool(peek.stream),
                )
    return None


def _openai_style_route(host: str, path: str, body: bytes | None, shape: Shape, api: str) -> Route:
    # Audio uploads and image edits are multipart: their body is never read,
    # so the model is known only when the reply names it.
    peek = _peek_body(body)
    provider = _provider_for_host(host, shape)
    model = peek.model
    if provider == "azure_openai" and model is None:
        model = _azure_deployment(path)
    return Route(
        provider=provider, api=api, shape=shape, request_model=model, stream=bool(peek.stream)
    )


def _model_from_resource(resource: str) -> str:
    """Return the model id of `models/x`, `publishers/p/models/x` or `endpoints/x`."""
    if "models/" in resource:
        return resource.rsplit("models/", 1)[-1]
    return resource.rsplit("/", 1)[-1]


def _route_action(host: str, path: str, body: bytes | None) -> Route | None:
    """Route a Google-style `{resource}:{action}` path (Gemini API, Vertex AI)."""
    resource, _, action = path.rpartition(":")
    model = _model_from_resource(resource)

    if action in ("rawPredict", "streamRawPredict"):
        _, _, publisher_path = resource.partition("/publishers/")
        known = _RAW_PREDICT_PUBLISHERS.get(publisher_path.split("/", 1)[0])
        if known is None:
            return None
        shape, api = known
        stream = action == "streamRawPredict" or bool(_peek_body(body).stream)
        return Route(
            provider=_provider_for_host(host, shape),
            api=api,
            shape=shape,
            request_model=model,
            stream=stream,
        )

    provider = _provider_for_host(host, "gemini")
    if action in _GEMINI_FREE_ACTIONS:
        return Route(
            provider=provider,
            api=_GEMINI_FREE_ACTIONS[action],
            shape="gemini",
            request_model=model,
            free=True,
        )
    known_action = _GEMINI_ACTIONS.get(action)
    if known_action is None:
        return None
    api, stream = known_action
    return Route(provider=provider, api=api, shape="gemini", request_model=model, stream=stream)


def _route_other_method(method: str, host: str, path: str) -> Route | None:
    """Route the few metered requests that are not POSTs.

    `GET /v1/responses/{id}` is deliberately not routed: the response it returns
    was metered when it was created, and routing it would bill it again.
    NOTE: a Responses call made with `background: true` is therefore recorded
    from its POST only, which carries no usage yet (`missing`).
    """
    if method == "GET":
        return _batch_results_route(host, path)
    if method in ("PATCH", "DELETE") and "/cachedContents/" in path:
        # Updating or deleting an explicit cache changes how long its storage is billed.
        return Route(
            provider=_provider_for_host(host, "gemini"), api="cached_contents", shape="gemini"
        )
    return None


def _batch_results_route(host: str, path: str) -> Route | None:
    results = _MESSAGE_BATCH_RESULTS.search(path)
    if results is not None:
        provider = _provider_for_host(host, "anthropic_messages")
        if provider != "anthropic":
            return None
        return Route(
            provider=provider,
            api="batch",
            shape="batch_results",
            batch=True,
            response_id=results.group(1),
        )
    content = _FILE_CONTENT.search(path)
    if content is not None:
        # Any file can be downloaded here; the body decoder discards one that
        # turns out not to be a batch result.
        provider = _provider_for_host(host, "batch_results")
        if provider not in ("openai", "azure_openai"):
            return None
        return Route(
            provider=provider,
            api="batch",
            shape="batch_results",
            batch=True,
            response_id=content.group(1),
        )
    return None


_CLOUDFLARE_GATEWAY_HOST = "gateway.ai.cloudflare.com"

# Cloudflare AI Gateway provider slugs, by the provider host each stands for. A
# slug not listed here is used as the provider name itself.
_CLOUDFLARE_PROVIDERS: dict[str, str] = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "google-ai-studio": "generativelanguage.googleapis.com",
    "google-vertex-ai": "aiplatform.googleapis.com",
    "groq": "api.groq.com",
    "mistral": "api.mistral.ai",
    "deepseek": "api.deepseek.com",
    "grok": "api.x.ai",
    "openrouter": "openrouter.ai",
    "cohere": "api.cohere.com",
    "perplexity-ai": "api.perplexity.ai",
    "cerebras": "api.cerebras.ai",
}


def _unwrap_cloudflare(path: str, body: bytes | None) -> tuple[str, str] | None:
    """Return the (provider host, provider path) behind a Cloudflare AI Gateway path.

    Paths are `/v1/{account}/{gateway}/{provider}/{provider path}`, with Azure
    as `azure-openai/{resource}/{deployment}/...` and the OpenAI-compatible
    `compat/chat/completions`, whose model is `{provider}/{model}`.
    """
    parts = path.split("/")
    if len(parts) < 6 or parts[1] != "v1":
        return None
    slug, rest = parts[4], parts[5:]
    if slug == "azure-openai":
        if len(rest) < 3:
            return None
        resource, deployment = rest[0], rest[1]
        return (
            f"{resource}.openai.azure.com",
            "/openai/deployments/" + deployment + "/" + "/".join(rest[2:]),
        )
    if slug == "compat":
        model = _peek_body(body).model or ""
        slug = model.split("/", 1)[0] if "/" in model else "compat"
    return _CLOUDFLARE_PROVIDERS.get(slug, slug), "/" + "/".join(rest)


class _UniversalStep(msgspec.Struct):
    provider: str = ""
    endpoint: str = ""
    query: msgspec.Raw = msgspec.Raw(b"null")


_universal_steps = msgspec.json.Decoder(list[_UniversalStep])


def _cloudflare_universal_route(path: str, body: bytes | None) -> Route | None:
    """Route a Cloudflare AI Gateway universal request: a JSON array of fallback steps.

    The gateway replies with the first step that succeeds, in that provider's
    own shape. When every step routes to the same provider and shape, that is
    the route; when they differ, the first step's shape is used and the
    provider is the gateway, because the body decoder cannot see the
    `cf-aig-step` response header that names the step which answered.
    """
    try:
        steps = _universal_steps.decode(body or b"")
    except msgspec.DecodeError:
        return None
    routes: list[Route] = []
    for step in steps:
        host = _CLOUDFLARE_PROVIDERS.get(step.provider, step.provider)
        route = route_request("POST", host, "/" + step.endpoint.strip("/"), bytes(step.query))
        if route is not None:
            routes.append(route)
    if not routes:
        return None
    first = routes[0]
    if all((route.provider, route.shape) == (first.provider, first.shape) for route in routes):
        return first
    # NOTE: a fallback answered by a step of another shape is read with the first
    # step's rules and recorded as `missing`.
    return msgspec.structs.replace(first, provider="cloudflare_ai_gateway")
