"""Usage injection with the real openai SDK: the user sees their stream, tokenwire sees usage."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

import tokenwire
from tokenwire.testing.provider_server import FIXTURES, fixture_bytes
from tokenwire.testing.replay import RecordingSink, chunk_body

MESSAGES: Any = [{"role": "user", "content": "hi"}]
WITH_USAGE = fixture_bytes(FIXTURES["openai", True])
USAGE_EVENT = next(
    event for event in chunk_body(WITH_USAGE, event_stream=True) if b'"choices":[]' in event
)
WITHOUT_USAGE = WITH_USAGE.replace(USAGE_EVENT, b"")


class ChatServer:
    """A MockTransport handler that streams usage only when the request asked for it."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        asked = (body.get("stream_options") or {}).get("include_usage") is True
        data = WITH_USAGE if asked else WITHOUT_USAGE
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Chunks(data),
        )


class _Chunks(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.chunks = chunk_body(data, event_stream=True)

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self.chunks

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            yield chunk


def _client(sink: RecordingSink, server: ChatServer, **options: Any) -> openai.OpenAI:
    http_client = tokenwire.MeteredClient(
        transport=httpx2.MockTransport(server), meter=sink, **options
    )
    return openai.OpenAI(api_key="test", http_client=http_client, max_retries=0)


def test_injected_stream_hides_usage_chunk(sink: RecordingSink) -> None:
    server = ChatServer()
    client = _client(sink, server)

    contents = [
        chunk.choices[0].delta.content
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    ]

    assert all(isinstance(text, str) or text is None for text in contents)
    assert len(contents) == WITHOUT_USAGE.count(b"data: {")
    [request] = server.requests
    assert json.loads(request.content)["stream_options"] == {"include_usage": True}
    assert request.headers["content-length"] == str(len(request.content))
    assert request.headers["accept-encoding"] == "identity"
    [record] = sink.records
    assert record.state == "complete"
    assert record.usage.output_tokens == 11
    assert record.usage.input_tokens == 57


def test_injected_stream_bytes_equal_inner_minus_hidden_chunk(sink: RecordingSink) -> None:
    server = ChatServer()
    http_client = tokenwire.MeteredClient(transport=httpx2.MockTransport(server), meter=sink)

    with http_client.stream(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        json={"model": "m", "stream": True},
    ) as response:
        received = b"".join(response.iter_raw())

    assert received == WITH_USAGE.replace(USAGE_EVENT, b"")
    assert sink.records[0].state == "complete"


def test_user_flag_keeps_usage_chunk(sink: RecordingSink) -> None:
    server = ChatServer()
    client = _client(sink, server)

    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert server.requests[0].content.count(b"include_usage") == 1
    assert server.requests[0].headers.get("accept-encoding") != "identity"
    assert sink.records[0].state == "complete"


def test_injection_off_records_missing(sink: RecordingSink) -> None:
    server = ChatServer()
    client = _client(sink, server, inject_stream_usage=False)

    list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))

    assert b"stream_options" not in server.requests[0].content
    assert sink.records[0].state == "missing"


@pytest.mark.parametrize(
    ("api_version", "injected"),
    [
        pytest.param("2024-06-01", False, id="rejects"),
        pytest.param("2024-02-15-preview", False, id="old-preview"),
        pytest.param("2024-10-21", True, id="accepts"),
    ],
)
def test_azure_api_version_gate(sink: RecordingSink, api_version: str, injected: bool) -> None:
    server = ChatServer()
    client = openai.AzureOpenAI(
        api_key="test",
        api_version=api_version,
        azure_endpoint="https://example-resource.openai.azure.com",
        http_client=tokenwire.MeteredClient(transport=httpx2.MockTransport(server), meter=sink),
        max_retries=0,
    )

    list(client.chat.completions.create(model="gpt4-deployment", messages=MESSAGES, stream=True))

    [request] = server.requests
    assert (b"stream_options" in request.content) is injected
    [record] = sink.records
    assert record.provider == "azure_openai"
    assert record.state == ("complete" if injected else "missing")


@pytest.mark.anyio
async def test_async_injected_stream(sink: RecordingSink) -> None:
    server = ChatServer()
    client = openai.AsyncOpenAI(
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(
            transport=httpx2.MockTransport(server), meter=sink
        ),
        max_retries=0,
    )

    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first_choices = [chunk.choices[0].index async for chunk in stream]

    assert first_choices
    [record] = sink.records
    assert record.state == "complete"
    assert record.usage.output_tokens == 11


def test_invalid_injection_mode_raises() -> None:
    with pytest.raises(tokenwire.ConfigurationError, match="inject_stream_usage"):
        tokenwire.MeteredClient(inject_stream_usage="always")  # type: ignore[arg-type]
