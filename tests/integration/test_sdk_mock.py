"""The real openai and anthropic SDKs through MeteredClient over httpx2.MockTransport."""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import tokenwire
from tokenwire.testing.provider_server import FIXTURES, fixture_bytes
from tokenwire.testing.replay import RecordingSink, chunk_body

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _body_chunks(family: str, stream: bool, gzipped: bool) -> tuple[bytes, list[bytes]]:
    raw = fixture_bytes(FIXTURES[family, stream])
    if gzipped:
        wire = gzip.compress(raw)
        return wire, [wire[i : i + 97] for i in range(0, len(wire), 97)]
    return raw, chunk_body(raw, event_stream=stream)


class _Iter(httpx2.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


class _AIter(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def make_handler(*, gzipped: bool = False, is_async: bool = False) -> Callable[..., Any]:
    """Return a MockTransport handler that streams the fixture bodies chunk by chunk."""

    def respond(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        family = "openai" if request.url.path.endswith("/chat/completions") else "anthropic"
        stream = bool(body.get("stream"))
        _, chunks = _body_chunks(family, stream, gzipped)
        headers = {"content-type": "text/event-stream" if stream else "application/json"}
        if gzipped:
            headers["content-encoding"] = "gzip"
        byte_stream = _AIter(chunks) if is_async else _Iter(chunks)
        return httpx2.Response(200, headers=headers, stream=byte_stream)

    if is_async:

        async def async_respond(request: httpx2.Request) -> httpx2.Response:
            await request.aread()
            return respond(request)

        return async_respond
    return respond


def openai_client(sink: RecordingSink, **options: Any) -> openai.OpenAI:
    transport = httpx2.MockTransport(make_handler(**options))
    http_client = tokenwire.MeteredClient(transport=transport, meter=sink)
    return openai.OpenAI(api_key="test", http_client=http_client, max_retries=0)


def anthropic_client(sink: RecordingSink, **options: Any) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(make_handler(**options))
    http_client = tokenwire.MeteredClient(transport=transport, meter=sink)
    return anthropic.Anthropic(api_key="test", http_client=http_client, max_retries=0)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_openai_chat_json_recorded(sink: RecordingSink, gzipped: bool) -> None:
    client = openai_client(sink, gzipped=gzipped)

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.usage is not None
    [record] = sink.records
    assert record.state == "complete"
    assert record.provider == "openai"
    assert record.api == "chat_completions"
    assert record.stream is False
    assert record.response_id == completion.id
    assert record.request_model == "gpt-4o-mini"
    assert record.response_model == completion.model
    prompt = completion.usage.prompt_tokens
    cached = completion.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    assert record.usage.input_tokens == prompt - cached
    assert record.usage.cached_input_tokens == cached
    assert record.usage.output_tokens == completion.usage.completion_tokens
    assert record.usage.total_tokens == completion.usage.total_tokens


def test_openai_chat_stream_full_read(sink: RecordingSink) -> None:
    client = openai_client(sink)

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    usage = chunks[-1].usage
    assert usage is not None
    [record] = sink.records
    assert record.state == "complete"
    assert record.stream is True
    assert record.usage.input_tokens == usage.prompt_tokens
    assert record.usage.output_tokens == usage.completion_tokens


def test_openai_stream_break_then_close_one_partial(sink: RecordingSink) -> None:
    client = openai_client(sink)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )

    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()
    del stream
    gc.collect()

    [record] = sink.records
    assert record.state == "partial"
    assert record.usage.output_tokens is None
    assert record.response_id is not None


def test_openai_stream_abandoned_is_recorded_on_gc(sink: RecordingSink) -> None:
    client = openai_client(sink)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    next(iter(stream))

    del stream
    gc.collect()

    assert [record.state for record in sink.records] == ["partial"]


def test_anthropic_messages_json_cache_split(sink: RecordingSink) -> None:
    client = anthropic_client(sink, gzipped=True)

    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES)

    [record] = sink.records
    assert record.state == "complete"
    assert record.provider == "anthropic"
    assert record.response_id == message.id
    assert record.usage.input_tokens == message.usage.input_tokens
    assert record.usage.cache_creation_tokens == message.usage.cache_creation_input_tokens
    assert message.usage.cache_creation is not None
    assert (
        record.usage.cache_creation_5m_tokens
        == message.usage.cache_creation.ephemeral_5m_input_tokens
    )
    assert record.usage.output_tokens == message.usage.output_tokens
    assert record.usage.total_tokens is None


def test_anthropic_stream_delta_overwrites_start(sink: RecordingSink) -> None:
    client = anthropic_client(sink)

    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES
    ) as stream:
        final = stream.get_final_message()

    [record] = sink.records
    assert record.state == "complete"
    assert record.stream is True
    # message_start says output_tokens=1; message_delta's cumulative value replaces it.
    assert record.usage.output_tokens == final.usage.output_tokens
    assert record.usage.output_tokens != 1
    assert record.usage.cached_input_tokens == final.usage.cache_read_input_tokens


def test_anthropic_stream_break_keeps_input_counts(sink: RecordingSink) -> None:
    client = anthropic_client(sink)

    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES
    ) as stream:
        for _ in stream:
            break

    [record] = sink.records
    assert record.state == "partial"
    assert record.usage.input_tokens is not None
    assert record.usage.cached_input_tokens is not None


@pytest.mark.anyio
async def test_async_openai_stream_drained_once(sink: RecordingSink) -> None:
    transport = httpx2.MockTransport(make_handler(is_async=True))
    client = openai.AsyncOpenAI(
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(transport=transport, meter=sink),
        max_retries=0,
    )

    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        pass
    await stream.close()

    [record] = sink.records
    assert record.state == "complete"
    assert record.usage.output_tokens is not None


@pytest.mark.anyio
async def test_async_openai_break_then_close(sink: RecordingSink) -> None:
    transport = httpx2.MockTransport(make_handler(is_async=True))
    client = openai.AsyncOpenAI(
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(transport=transport, meter=sink),
        max_retries=0,
    )

    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        break
    await stream.close()

    assert [record.state for record in sink.records] == ["partial"]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_async_anthropic(sink: RecordingSink, stream: bool) -> None:
    transport = httpx2.MockTransport(make_handler(is_async=True, gzipped=not stream))
    client = anthropic.AsyncAnthropic(
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(transport=transport, meter=sink),
        max_retries=0,
    )

    if stream:
        async with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES
        ) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES
        )

    [record] = sink.records
    assert record.state == "complete"
    assert record.stream is stream
    assert record.usage.output_tokens == message.usage.output_tokens


@pytest.mark.parametrize(
    ("family", "stream", "gzipped"),
    [
        pytest.param("openai", False, True, id="openai-json-gzip"),
        pytest.param("openai", True, False, id="openai-sse"),
        pytest.param("anthropic", False, False, id="anthropic-json"),
        pytest.param("anthropic", True, False, id="anthropic-sse"),
    ],
)
def test_caller_receives_inner_bytes(
    sink: RecordingSink, family: str, stream: bool, gzipped: bool
) -> None:
    wire, _ = _body_chunks(family, stream, gzipped)
    path = "/v1/chat/completions" if family == "openai" else "/v1/messages"
    client = tokenwire.MeteredClient(
        transport=httpx2.MockTransport(make_handler(gzipped=gzipped)), meter=sink
    )

    with client.stream(
        "POST", f"https://api.example.test{path}", json={"model": "m", "stream": stream}
    ) as response:
        received = b"".join(response.iter_raw())

    assert received == wire
    assert len(sink.records) == 1


def test_sdk_results_equal_unmetered(sink: RecordingSink) -> None:
    plain = openai.OpenAI(
        api_key="test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(make_handler(gzipped=True))),
    )
    metered = openai_client(sink, gzipped=True)

    expected = plain.chat.completions.create(model="m", messages=MESSAGES).model_dump()
    actual = metered.chat.completions.create(model="m", messages=MESSAGES).model_dump()

    assert actual == expected
    assert len(sink.records) == 1


def test_non_llm_request_not_metered(sink: RecordingSink) -> None:
    client = tokenwire.MeteredClient(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json={"data": []})),
        meter=sink,
    )

    client.get("https://api.openai.com/v1/models")
    client.post("https://api.anthropic.com/v1/messages/count_tokens", json={"model": "m"})

    assert sink.records == []
