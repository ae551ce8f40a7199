"""The real openai SDK beyond chat: Responses, embeddings, audio, images, batches, moderation.

Each test sends the SDK call through `tokenwire.MeteredClient` over an
`httpx2.MockTransport` that answers like the OpenAI API, and checks the one
record (or none) that tokenwire made against the usage the SDK itself parsed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai
import pydantic
import pytest

import tokenwire
from tokenwire.testing.replay import RecordingSink

RESPONSE_USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 300,
    "output_tokens_details": {"reasoning_tokens": 256},
    "total_tokens": 1500,
}
RESPONSE = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "gpt-5-mini-2025-08-07",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": RESPONSE_USAGE,
}
CHAT = {
    "id": "chatcmpl-parse",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": '{"city": "Paris"}'},
        }
    ],
    "usage": {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46},
}
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}
TRANSCRIPTION_TOKENS = {
    "text": "Hello there.",
    "usage": {
        "type": "tokens",
        "input_tokens": 14,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
        "output_tokens": 5,
        "total_tokens": 19,
    },
}
TRANSCRIPTION_DURATION = {"text": "Hello there.", "usage": {"type": "duration", "seconds": 3}}
IMAGE_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(300)).decode()
IMAGE_USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
    "output_tokens": 272,
    "total_tokens": 322,
}
BATCH_OUTPUT = b"".join(
    json.dumps(
        {
            "id": f"batch_req_{index}",
            "custom_id": f"task-{index}",
            "response": {
                "status_code": 200,
                "request_id": f"req_{index}",
                "body": {
                    "id": f"chatcmpl-{index}",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 20 + index,
                        "completion_tokens": 4,
                        "total_tokens": 24 + index,
                    },
                },
            },
            "error": None,
        }
    ).encode()
    + b"\n"
    for index in range(3)
)


def _sse(*events: dict[str, Any], named: bool = False) -> bytes:
    lines = []
    for event in events:
        name = f"event: {event['type']}\n".encode() if named else b""
        lines.append(name + b"data: " + json.dumps(event).encode() + b"\n\n")
    return b"".join(lines)


RESPONSE_SSE = _sse(
    {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**RESPONSE, "status": "in_progress", "usage": None},
    },
    {
        "type": "response.in_progress",
        "sequence_number": 1,
        "response": {**RESPONSE, "status": "in_progress", "usage": None},
    },
    {"type": "response.completed", "sequence_number": 2, "response": RESPONSE},
    named=True,
)
TRANSCRIPTION_SSE = _sse(
    {"type": "transcript.text.delta", "delta": "Hello"},
    {
        "type": "transcript.text.done",
        "text": "Hello there.",
        "usage": TRANSCRIPTION_TOKENS["usage"],
    },
)
SPEECH_SSE = _sse(
    {"type": "speech.audio.delta", "audio": base64.b64encode(bytes(64)).decode()},
    {
        "type": "speech.audio.done",
        "usage": {"input_tokens": 6, "output_tokens": 90, "total_tokens": 96},
    },
)
IMAGE_SSE = _sse(
    {
        "type": "image_generation.partial_image",
        "b64_json": IMAGE_B64,
        "created_at": 1,
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
        "partial_image_index": 0,
    },
    {
        "type": "image_generation.completed",
        "b64_json": IMAGE_B64,
        "created_at": 1,
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
        "usage": IMAGE_USAGE,
    },
    named=True,
)
MP3 = b"ID3\x04\x00" + bytes(range(256)) * 8


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


def _json_body(request: httpx2.Request) -> dict[str, Any]:
    if "json" not in request.headers.get("content-type", ""):
        return {}
    return dict(json.loads(request.content or b"{}"))


def _answer(request: httpx2.Request) -> tuple[bytes, str]:
    """Return (body, content type) for a request, as the OpenAI API would."""
    path, method = request.url.path, request.method
    body = _json_body(request)
    multipart = request.headers.get("content-type", "").startswith("multipart/")
    raw = request.content if multipart else b""
    if path == "/v1/responses" and method == "POST":
        if body.get("stream"):
            return RESPONSE_SSE, "text/event-stream"
        return json.dumps(RESPONSE).encode(), "application/json"
    if path == "/v1/responses/resp_abc" and method == "GET":
        if request.url.params.get("stream") == "true":
            return RESPONSE_SSE, "text/event-stream"
        return json.dumps(RESPONSE).encode(), "application/json"
    if path == "/v1/responses/compact":
        reply = {
            "id": "cmp_1",
            "object": "response.compaction",
            "created_at": 1,
            "output": [],
            "usage": RESPONSE_USAGE,
        }
        return json.dumps(reply).encode(), "application/json"
    if path == "/v1/chat/completions":
        return json.dumps(CHAT).encode(), "application/json"
    if path == "/v1/embeddings":
        return json.dumps(EMBEDDINGS).encode(), "application/json"
    if path == "/v1/audio/transcriptions":
        if b'name="stream"' in raw:
            return TRANSCRIPTION_SSE, "text/event-stream"
        if b"whisper-1" in raw:
            return json.dumps(TRANSCRIPTION_DURATION).encode(), "application/json"
        return json.dumps(TRANSCRIPTION_TOKENS).encode(), "application/json"
    if path == "/v1/audio/speech":
        if body.get("stream_format") == "sse":
            return SPEECH_SSE, "text/event-stream"
        return MP3, "audio/mpeg"
    if path in ("/v1/images/generations", "/v1/images/edits"):
        if body.get("stream") or b'name="stream"' in raw:
            return IMAGE_SSE, "text/event-stream"
        reply = {"created": 1, "data": [{"b64_json": IMAGE_B64}], "usage": IMAGE_USAGE}
        return json.dumps(reply).encode(), "application/json"
    if path == "/v1/files/file-out1/content":
        return BATCH_OUTPUT, "application/octet-stream"
    if path == "/v1/files/file-train/content":
        return b'{"messages": [{"role": "user", "content": "hi"}]}\n', "application/octet-stream"
    if path == "/v1/batches/batch_1":
        reply = {
            "id": "batch_1",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-in1",
            "completion_window": "24h",
            "status": "completed",
            "created_at": 1,
            "output_file_id": "file-out1",
        }
        return json.dumps(reply).encode(), "application/json"
    if path == "/v1/moderations":
        reply = {"id": "modr-1", "model": "omni-moderation-latest", "results": []}
        return json.dumps(reply).encode(), "application/json"
    raise AssertionError(f"unexpected request {method} {path}")


def _pieces(body: bytes) -> list[bytes]:
    return [body[offset : offset + 61] for offset in range(0, len(body), 61)]


def _sync_handler(request: httpx2.Request) -> httpx2.Response:
    body, content_type = _answer(request)
    return httpx2.Response(
        200, headers={"content-type": content_type}, stream=_Chunks(_pieces(body))
    )


async def _async_handler(request: httpx2.Request) -> httpx2.Response:
    await request.aread()
    body, content_type = _answer(request)
    return httpx2.Response(
        200, headers={"content-type": content_type}, stream=_AsyncChunks(_pieces(body))
    )


def _client(sink: RecordingSink) -> openai.OpenAI:
    http_client = tokenwire.MeteredClient(transport=httpx2.MockTransport(_sync_handler), meter=sink)
    return openai.OpenAI(api_key="test", http_client=http_client, max_retries=0)


def test_responses_json(sink: RecordingSink) -> None:
    client = _client(sink)

    response = client.responses.create(model="gpt-5-mini", input="hi")

    assert response.usage is not None
    [record] = sink.records
    assert (record.api, record.state, record.stream) == ("responses", "complete", False)
    assert record.response_id == response.id
    assert record.usage.input_tokens == (
        response.usage.input_tokens - response.usage.input_tokens_details.cached_tokens
    )
    assert record.usage.output_tokens == response.usage.output_tokens
    assert record.usage.reasoning_tokens == 256


def test_responses_stream(sink: RecordingSink) -> None:
    client = _client(sink)

    with client.responses.stream(model="gpt-5-mini", input="hi") as stream:
        final = stream.get_final_response()

    assert final.usage is not None
    [record] = sink.records
    assert (record.state, record.stream) == ("complete", True)
    assert record.usage.total_tokens == final.usage.total_tokens


def test_responses_retrieve_not_billed_again(sink: RecordingSink) -> None:
    client = _client(sink)

    created = client.responses.create(model="gpt-5-mini", input="hi")
    retrieved = client.responses.retrieve(created.id)
    replayed = list(client.responses.retrieve(created.id, stream=True))

    assert retrieved.id == created.id
    assert replayed
    # Only the POST that created the response is recorded, so its id is billed once.
    [record] = sink.records
    assert record.response_id == "resp_abc"
    assert [r.response_id for r in sink.records].count("resp_abc") == 1


def test_responses_compact(sink: RecordingSink) -> None:
    client = _client(sink)

    compacted = client.responses.compact(model="gpt-5.4-mini", input="a long conversation")

    [record] = sink.records
    assert (record.api, record.state) == ("responses_compact", "complete")
    assert record.response_id == compacted.id
    assert record.request_model == "gpt-5.4-mini"
    assert record.usage.output_tokens == compacted.usage.output_tokens


def test_chat_parse_is_the_same_wire_call(sink: RecordingSink) -> None:
    class City(pydantic.BaseModel):
        city: str

    client = _client(sink)

    parsed = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Capital?"}],
        response_format=City,
    )

    assert parsed.choices[0].message.parsed == City(city="Paris")
    [record] = sink.records
    assert (record.api, record.state) == ("chat_completions", "complete")
    assert record.usage.input_tokens == 40


def test_embeddings(sink: RecordingSink) -> None:
    client = _client(sink)

    result = client.embeddings.create(model="text-embedding-3-small", input="hello")

    [record] = sink.records
    assert (record.api, record.state) == ("embeddings", "complete")
    assert record.usage.input_tokens == result.usage.prompt_tokens
    assert record.response_id is None


def test_transcription_token_usage(sink: RecordingSink) -> None:
    client = _client(sink)

    transcript = client.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("hello.wav", b"RIFF fake audio", "audio/wav")
    )

    assert transcript.usage is not None
    [record] = sink.records
    assert (record.api, record.state) == ("audio_transcriptions", "complete")
    assert record.usage.input_tokens == 14
    assert record.usage.audio_input_tokens == 14
    assert record.usage.output_tokens == 5
    # The upload is multipart and never read, and the reply names no model.
    assert record.model is None


def test_transcription_duration_usage(sink: RecordingSink) -> None:
    client = _client(sink)

    client.audio.transcriptions.create(
        model="whisper-1", file=("hello.wav", b"RIFF fake audio", "audio/wav")
    )

    [record] = sink.records
    assert record.state == "complete"
    assert record.billable is False
    assert record.usage.raw == {"type": "duration", "seconds": 3}


def test_transcription_stream(sink: RecordingSink) -> None:
    client = _client(sink)

    events = list(
        client.audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=("a.wav", b"RIFF", "audio/wav"), stream=True
        )
    )

    assert events[-1].type == "transcript.text.done"
    [record] = sink.records
    assert (record.state, record.stream) == ("complete", True)
    assert record.usage.output_tokens == 5


def test_speech_audio_missing_and_bytes_unchanged(sink: RecordingSink) -> None:
    client = _client(sink)

    audio = client.audio.speech.create(model="gpt-4o-mini-tts", voice="ash", input="hi")

    assert audio.content == MP3
    [record] = sink.records
    assert (record.api, record.state, record.request_model) == (
        "audio_speech",
        "missing",
        "gpt-4o-mini-tts",
    )
    assert record.problem is None


def test_speech_sse_usage(sink: RecordingSink) -> None:
    client = _client(sink)

    audio = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="ash", input="hi", stream_format="sse"
    )

    assert audio.content == SPEECH_SSE
    [record] = sink.records
    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (6, 90)


def test_image_generation(sink: RecordingSink) -> None:
    client = _client(sink)

    images = client.images.generate(model="gpt-image-1", prompt="a lighthouse")

    assert images.usage is not None
    [record] = sink.records
    assert (record.api, record.state, record.request_model) == (
        "images_generations",
        "complete",
        "gpt-image-1",
    )
    assert record.usage.input_tokens == images.usage.input_tokens
    assert record.usage.image_input_tokens == images.usage.input_tokens_details.image_tokens
    assert record.usage.output_tokens == images.usage.output_tokens


def test_image_edit_multipart(sink: RecordingSink) -> None:
    client = _client(sink)

    client.images.edit(
        model="gpt-image-1", image=("in.png", b"\x89PNG fake", "image/png"), prompt="add a hat"
    )

    [record] = sink.records
    assert (record.api, record.state) == ("images_edits", "complete")
    assert record.usage.image_input_tokens == 40


def test_image_generation_stream(sink: RecordingSink) -> None:
    client = _client(sink)

    events = list(client.images.generate(model="gpt-image-1", prompt="a cat", stream=True))

    assert events[-1].type == "image_generation.completed"
    [record] = sink.records
    assert (record.state, record.stream) == ("complete", True)
    assert record.usage.total_tokens == 322


def test_batch_output_file(sink: RecordingSink) -> None:
    client = _client(sink)

    batch = client.batches.retrieve("batch_1")
    assert batch.output_file_id is not None
    content = client.files.content(batch.output_file_id)

    assert content.content == BATCH_OUTPUT
    # The batch status call is not metered; the output download is one record.
    [record] = sink.records
    assert (record.api, record.batch, record.state) == ("batch", True, "complete")
    assert record.response_id == "file-out1"
    lines = [json.loads(line) for line in content.content.splitlines()]
    assert record.usage.input_tokens == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in lines
    )
    assert record.usage.output_tokens == 12
    assert record.usage.raw["lines"] == 3


def test_non_batch_file_download_not_recorded(sink: RecordingSink) -> None:
    client = _client(sink)

    client.files.content("file-train")

    assert sink.records == []


def test_moderation_not_recorded(sink: RecordingSink) -> None:
    client = _client(sink)

    client.moderations.create(model="omni-moderation-latest", input="hello")

    assert sink.records == []


@pytest.mark.anyio
async def test_async_responses_and_transcription(sink: RecordingSink) -> None:
    client = openai.AsyncOpenAI(
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(
            transport=httpx2.MockTransport(_async_handler), meter=sink
        ),
        max_retries=0,
    )

    await client.responses.create(model="gpt-5-mini", input="hi")
    await client.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("a.wav", b"RIFF", "audio/wav")
    )

    assert [(record.api, record.state) for record in sink.records] == [
        ("responses", "complete"),
        ("audio_transcriptions", "complete"),
    ]
