"""Map an outgoing request to the provider API that will answer it.

`route_request()` looks only at the method, host, path, query and the JSON
request body's `model` and `stream` fields. It returns `None` for requests
that are not LLM calls (file uploads, listings), which then pass through
unmetered, and a `Route` with `free=True` for endpoints that return no
billable usage (token counting), which get no record.

Providers are recognised by host; an unknown host is still metered when its
path has a known API shape (OpenAI-compatible gateways, local servers), with
`provider` taken from the host.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

import msgspec

__all__ = ["Route", "Shape", "route_request"]

Shape = Literal["openai_chat", "openai_responses", "anthropic_messages"]


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request goes and how its response is read."""

    provider: str
    api: str
    shape: Shape
    request_model: str | None = None
    stream: bool = False
    free: bool = False


class _RequestPeek(msgspec.Struct):
    model: str | None = None
    stream: bool | None = None


_peek = msgspec.json.Decoder(_RequestPeek)

# Hosts whose provider name is known. Suffix entries start with a dot.
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
}
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure_openai"),
    (".cognitiveservices.azure.com", "azure_openai"),
    (".services.ai.azure.com", "azure_openai"),
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
        return "anthropic" if shape == "anthropic_messages" else "openai"
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


def route_request(method: str, host: str, path: str, body: bytes | None) -> Route | None:
    """Return the route of a request, or None when it is not an LLM API call."""
    if method != "POST":
        return None
    path = path.rstrip("/")

    shape: Shape
    if path.endswith("/chat/completions"):
        shape, api = "openai_chat", "chat_completions"
    elif path.endswith("/responses"):
        shape, api = "openai_responses", "responses"
    elif path.endswith("/embeddings"):
        # Embeddings report `prompt_tokens` and `total_tokens` in the chat shape.
        shape, api = "openai_chat", "embeddings"
    elif path.endswith("/messages/count_tokens"):
        return Route(provider=_provider_for_host(host, "anthropic_messages"), api="count_tokens",
                     shape="anthropic_messages", free=True)
    elif path.endswith("/v1/messages") or path == "/messages":
        shape, api = "anthropic_messages", "messages"
    else:
        return None

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
