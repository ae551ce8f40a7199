"""The real google-genai SDK (httpx2 backend) through MeteredClient over httpx2.MockTransport.

google-genai takes the metered clients through `http_options`: `httpx_client`
for sync calls and `httpx_async_client` for async ones (without the latter
its async calls would go through aiohttp when that is installed).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types

import tokenwire
from tokenwire.testing.replay import RecordingSink

MODEL = "gemini-2.5-flash"

# fresh = 120 - 100 + 30, output = 40 + 25; total = 120 + 40 + 25 + 30.
FINAL_USAGE = {
    "promptTokenCount": 120,
    "cachedContentTokenCount": 100,
    "toolUsePromptTokenCount": 30,
    "candidatesTokenCount": 40,
    "thoughtsTokenCount": 25,
    "totalTokenCount": 215,
}
GENERATE_REPLY = {
    "candidates": [
        {
            "content": {"parts": [{"text": "Paris."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": FINAL_USAGE,
    "modelVersion": MODEL,
    "responseId": "gen-json-1",
}
STREAM_CHUNKS = [
    {
        "candidates": [{"content": {"parts": [{"text": "Pa"}], "role": "model"}}],
        "usageMetadata": {"promptTokenCount": 120, "totalTokenCount": 120},
        "modelVersion": MODEL,
        "responseId": "gen-sse-1",
    },
    {
        "candidates": [
            {"content": {"parts": [{"text": "ris."}], "role": "model"}, "finishReason": "STOP"}
        ],
        "usageMetadata": FINAL_USAGE,
        "modelVersion": MODEL,
        "responseId": "gen-sse-1",
    },
]


class _Chunks(httpx2.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


class _AsyncChunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _reply(request: httpx2.Request, *, is_async: bool) -> httpx2.Response:
    path = request.url.path
    if path.endswith(":streamGenerateContent"):
        assert request.url.params.get("alt") == "sse"
        chunks = [b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in STREAM_CHUNKS]
        content_type = "text/event-stream"
    elif path.endswith(":generateContent"):
        chunks = [json.dumps(GENERATE_REPLY).encode()]
        content_type = "application/json; charset=UTF-8"
    elif path.endswith(":countTokens"):
        chunks = [b'{"totalTokens": 31}']
        content_type = "application/json"
    elif path.endswith(":batchEmbedContents"):
        chunks = [
            b'{"embeddings": [{"values": [0.5, 0.25]}], '
            b'"usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6}}'
        ]
        content_type = "application/json"
    elif path.endswith("/cachedContents") and request.method == "POST":
        chunks = [
            json.dumps(
                {
                    "name": "cachedContents/c1",
                    "model": f"models/{MODEL}",
                    "usageMetadata": {"totalTokenCount": 3512},
                }
            ).encode()
        ]
        content_type = "application/json"
    elif "/cachedContents/" in path and request.method == "DELETE":
        chunks = [b"{}"]
        content_type = "application/json"
    else:
        return httpx2.Response(404, json={"error": {"code": 404, "status": "NOT_FOUND"}})
    # Split each body in two to deliver it across reads.
    pieces = [piece for chunk in chunks for piece in (chunk[:7], chunk[7:])]
    stream = _AsyncChunks(pieces) if is_async else _Chunks(pieces)
    return httpx2.Response(200, headers={"content-type": content_type}, stream=stream)


def _sync_handler(request: httpx2.Request) -> httpx2.Response:
    return _reply(request, is_async=False)


async def _async_handler(request: httpx2.Request) -> httpx2.Response:
    await request.aread()
    return _reply(request, is_async=True)


def _client(sink: RecordingSink, **client_options: Any) -> genai.Client:
    sync_client = tokenwire.MeteredClient(transport=httpx2.MockTransport(_sync_handler), meter=sink)
    async_client = tokenwire.AsyncMeteredClient(
        transport=httpx2.MockTransport(_async_handler), meter=sink
    )
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(httpx_client=sync_client, httpx_async_client=async_client),
        **client_options,
    )


def _assert_final_usage(sink: RecordingSink, *, stream: bool, response_id: str) -> None:
    [record] = sink.records
    assert record.provider == "gemini"
    assert record.api == "generate_content"
    assert record.stream is stream
    assert record.state == "complete"
    assert record.request_model == MODEL
    assert record.response_model == MODEL
    assert record.response_id == response_id
    assert record.usage.input_tokens == 50
    assert record.usage.cached_input_tokens == 100
    assert record.usage.output_tokens == 65
    assert record.usage.reasoning_tokens == 25
    assert record.usage.total_tokens == 215
    assert record.usage.raw["toolUsePromptTokenCount"] == 30


def test_sync_generate_content(sink: RecordingSink) -> None:
    client = _client(sink)

    response = client.models.generate_content(model=MODEL, contents="Capital of France?")

    assert response.text == "Paris."
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count == 215
    _assert_final_usage(sink, stream=False, response_id="gen-json-1")


def test_sync_generate_content_stream(sink: RecordingSink) -> None:
    client = _client(sink)

    text = "".join(
        chunk.text or ""
        for chunk in client.models.generate_content_stream(model=MODEL, contents="Capital?")
    )

    assert text == "Paris."
    _assert_final_usage(sink, stream=True, response_id="gen-sse-1")


def test_sync_stream_abandoned_after_first_chunk_is_partial(sink: RecordingSink) -> None:
    client = _client(sink)

    stream = client.models.generate_content_stream(model=MODEL, contents="Capital?")
    next(iter(stream))
    stream.close()  # type: ignore[attr-defined]

    [record] = sink.records
    assert record.state == "partial"
    assert record.usage.input_tokens == 120


@pytest.mark.anyio
async def test_async_generate_content(sink: RecordingSink) -> None:
    client = _client(sink)

    response = await client.aio.models.generate_content(model=MODEL, contents="Capital?")

    assert response.text == "Paris."
    _assert_final_usage(sink, stream=False, response_id="gen-json-1")


@pytest.mark.anyio
async def test_async_generate_content_stream(sink: RecordingSink) -> None:
    client = _client(sink)

    texts = [
        chunk.text or ""
        async for chunk in await client.aio.models.generate_content_stream(
            model=MODEL, contents="Capital?"
        )
    ]

    assert "".join(texts) == "Paris."
    _assert_final_usage(sink, stream=True, response_id="gen-sse-1")


def test_count_tokens_is_not_recorded(sink: RecordingSink) -> None:
    client = _client(sink)

    counted = client.models.count_tokens(model=MODEL, contents="hello")

    assert counted.total_tokens == 31
    assert sink.records == []


def test_embed_content(sink: RecordingSink) -> None:
    client = _client(sink)

    client.models.embed_content(model="gemini-embedding-001", contents="hello")

    [record] = sink.records
    assert (record.api, record.state) == ("embed_content", "complete")
    assert record.usage.input_tokens == 6


def test_cache_create_and_delete(sink: RecordingSink) -> None:
    client = _client(sink)

    cache = client.caches.create(
        model=MODEL, config=types.CreateCachedContentConfig(contents=["Paris is in France."])
    )
    assert cache.name is not None
    client.caches.delete(name=cache.name)

    created, deleted = sink.records
    assert (created.api, created.state) == ("cached_contents", "complete")
    assert created.response_id == "cachedContents/c1"
    assert created.usage.total_tokens == 3512
    assert created.billable is False
    assert (deleted.api, deleted.state) == ("cached_contents", "missing")


def test_results_equal_unmetered(sink: RecordingSink) -> None:
    plain = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            httpx_client=httpx2.Client(transport=httpx2.MockTransport(_sync_handler))
        ),
    )
    metered = _client(sink)

    expected = plain.models.generate_content(model=MODEL, contents="hi").model_dump(
        exclude={"sdk_http_response"}
    )
    actual = metered.models.generate_content(model=MODEL, contents="hi").model_dump(
        exclude={"sdk_http_response"}
    )

    assert actual == expected
    assert len(sink.records) == 1
