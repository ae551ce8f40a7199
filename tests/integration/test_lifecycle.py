"""Exactly one record per HTTP exchange, whatever the caller does with the response."""

from __future__ import annotations

import asyncio
import gc
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


class Body(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body streamed chunk by chunk, optionally failing after `fail_after` chunks."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after

    def _items(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_after:
                raise httpx2.ReadError("connection reset by peer")
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        yield from self._items()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._items():
            yield chunk


def handler(*, fail_after: int | None = None) -> Callable[[httpx2.Request], httpx2.Response]:
    """Return a handler that answers like the provider: an OpenAI stream has usage only if asked."""

    def respond(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        family = "openai" if request.url.path.endswith("/chat/completions") else "anthropic"
        stream = bool(body.get("stream"))
        chunks = chunk_body(fixture_bytes(FIXTURES[family, stream]), event_stream=stream, size=64)
        asked = (body.get("stream_options") or {}).get("include_usage") is True
        if family == "openai" and stream and not asked:
            chunks = [chunk for chunk in chunks if b'"choices":[]' not in chunk]
        content_type = "text/event-stream" if stream else "application/json"
        return httpx2.Response(
            200, headers={"content-type": content_type}, stream=Body(chunks, fail_after)
        )

    return respond


def _openai(sink: RecordingSink, **options: Any) -> openai.OpenAI:
    transport = httpx2.MockTransport(handler(**options))
    return openai.OpenAI(
        api_key="test",
        http_client=tokenwire.MeteredClient(transport=transport, meter=sink),
        max_retries=0,
    )


def _anthropic(sink: RecordingSink, **options: Any) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler(**options))
    return anthropic.Anthropic(
        api_key="test",
        http_client=tokenwire.MeteredClient(transport=transport, meter=sink),
        max_retries=0,
    )


def _openai_stream(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="m", messages=MESSAGES, stream=True)


def _states(sink: RecordingSink) -> list[str]:
    gc.collect()
    return [record.state for record in sink.records]


# Sync paths -----------------------------------------------------------------


def test_openai_stream_read_to_end(sink: RecordingSink) -> None:
    for _ in _openai_stream(_openai(sink)):
        pass

    assert _states(sink) == ["complete"]


def test_openai_stream_context_manager_exit(sink: RecordingSink) -> None:
    with _openai_stream(_openai(sink)) as stream:
        next(iter(stream))

    assert _states(sink) == ["partial"]


def test_openai_stream_exception_in_user_code(sink: RecordingSink) -> None:
    with pytest.raises(ZeroDivisionError), _openai_stream(_openai(sink)) as stream:
        for _ in stream:
            1 / 0  # noqa: B018 - the user's bug

    assert _states(sink) == ["partial"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_openai_network_error_mid_body(sink: RecordingSink, stream: bool) -> None:
    client = _openai(sink, fail_after=2)

    with pytest.raises(openai.APIConnectionError):
        response = client.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
        for _ in response:  # type: ignore[union-attr]
            pass

    assert _states(sink) == ["partial"]


def test_openai_stream_never_closed_collected(sink: RecordingSink) -> None:
    stream = _openai_stream(_openai(sink))
    next(iter(stream))
    del stream

    assert _states(sink) == ["partial"]


def test_openai_with_raw_response(sink: RecordingSink) -> None:
    raw = _openai(sink).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    completion = raw.parse()

    assert completion.usage is not None
    [record] = sink.records
    assert record.state == "complete"
    assert record.usage.output_tokens == completion.usage.completion_tokens


def test_openai_streaming_response_never_read(sink: RecordingSink) -> None:
    client = _openai(sink)

    with client.chat.completions.with_streaming_response.create(model="m", messages=MESSAGES):
        pass

    assert _states(sink) == ["partial"]
    assert sink.records[0].usage.has_counts() is False


def test_anthropic_stream_context_exit_keeps_input(sink: RecordingSink) -> None:
    client = _anthropic(sink)

    with client.messages.stream(model="claude", max_tokens=5, messages=MESSAGES) as stream:
        next(iter(stream))

    assert _states(sink) == ["partial"]
    assert sink.records[0].usage.input_tokens is not None


def test_anthropic_raw_stream_network_error(sink: RecordingSink) -> None:
    client = _anthropic(sink, fail_after=3)

    with pytest.raises(anthropic.APIConnectionError):
        for _ in client.messages.create(
            model="claude", max_tokens=5, messages=MESSAGES, stream=True
        ):
            pass

    assert _states(sink) == ["partial"]
    assert sink.records[0].usage.input_tokens is not None


# Async paths ----------------------------------------------------------------


def _async_openai(sink: RecordingSink, **options: Any) -> openai.AsyncOpenAI:
    async def respond(request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return handler(**options)(request)

    return openai.AsyncOpenAI(
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(
            transport=httpx2.MockTransport(respond), meter=sink
        ),
        max_retries=0,
    )


@pytest.mark.anyio
async def test_async_openai_stream_context_exit(sink: RecordingSink) -> None:
    client = _async_openai(sink)

    async with await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True
    ) as stream:
        async for _ in stream:
            break

    assert _states(sink) == ["partial"]


@pytest.mark.anyio
async def test_async_openai_network_error(sink: RecordingSink) -> None:
    client = _async_openai(sink, fail_after=2)

    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass

    assert _states(sink) == ["partial"]


@pytest.mark.anyio
async def test_async_openai_raw_response(sink: RecordingSink) -> None:
    client = _async_openai(sink)

    raw = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    completion = raw.parse()

    assert completion.usage is not None
    assert _states(sink) == ["complete"]


# Retries --------------------------------------------------------------------


def test_retried_attempts_billed_once(sink: RecordingSink) -> None:
    attempts: list[int] = []
    success = handler()

    def respond(request: httpx2.Request) -> httpx2.Response:
        attempts.append(1)
        if len(attempts) < 3:
            status = 429 if len(attempts) == 1 else 503
            return httpx2.Response(
                status,
                headers={"content-type": "application/json", "retry-after-ms": "1"},
                json={"error": {"type": "rate_limit_error", "message": "slow down"}},
            )
        return success(request)

    client = openai.OpenAI(
        api_key="test",
        http_client=tokenwire.MeteredClient(transport=httpx2.MockTransport(respond), meter=sink),
        max_retries=2,
    )

    completion = client.chat.completions.create(model="m", messages=MESSAGES)

    assert completion.usage is not None
    assert [record.http_status for record in sink.records] == [429, 503, 200]
    assert [record.state for record in sink.records] == ["error", "error", "complete"]
    assert [record.billable for record in sink.records] == [False, False, True]
    assert len({record.record_id for record in sink.records}) == 3


# google-genai ---------------------------------------------------------------


def _genai_client(sink: RecordingSink, *, fail_after: int | None = None) -> Any:
    from google import genai
    from google.genai import types

    from tests.providers import test_sdk_genai as genai_fixtures

    def respond(request: httpx2.Request) -> httpx2.Response:
        response = genai_fixtures._reply(request, is_async=False)
        if fail_after is not None:
            chunks = list(response.stream)  # type: ignore[arg-type]
            response = httpx2.Response(
                200, headers=response.headers, stream=Body(chunks, fail_after)
            )
        return response

    async def respond_async(request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return genai_fixtures._reply(request, is_async=True)

    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            httpx_client=tokenwire.MeteredClient(
                transport=httpx2.MockTransport(respond), meter=sink
            ),
            httpx_async_client=tokenwire.AsyncMeteredClient(
                transport=httpx2.MockTransport(respond_async), meter=sink
            ),
        ),
    )


def test_genai_stream_network_error_is_partial(sink: RecordingSink) -> None:
    client = _genai_client(sink, fail_after=2)

    with pytest.raises(httpx2.ReadError):
        for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"):
            pass

    assert _states(sink) == ["partial"]
    assert sink.records[0].usage.input_tokens == 120


def test_genai_stream_never_closed_collected(sink: RecordingSink) -> None:
    client = _genai_client(sink)

    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    next(iter(stream))
    del stream

    assert _states(sink) == ["partial"]


@pytest.mark.anyio
async def test_genai_async_stream_break(sink: RecordingSink) -> None:
    client = _genai_client(sink)

    stream = await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="x")
    async for _ in stream:
        break
    await stream.aclose()
    del stream
    # google-genai leaves its inner generators over the response to the event
    # loop's async-generator finalizer, which closes them a few iterations later.
    for _ in range(30):
        gc.collect()
        await asyncio.sleep(0)

    assert _states(sink) == ["partial"]
