"""anthropic's `AnthropicBedrock` client over `tokenwire.MeteredClient`: Bedrock through httpx2.

The inner transport is an `httpx2.MockTransport` that responds like Bedrock
Runtime, with AWS event-stream bodies sent in small chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anthropic
import httpx2
import pytest

import tokenwire
from tokenwire.testing.bedrock_replay import EVENTSTREAM_CONTENT_TYPE, chunk_frame, exception_frame
from tokenwire.testing.replay import RecordingSink

ARN_MODEL = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x-v1:0"
MESSAGES: Any = [{"role": "user", "content": "hi"}]

STREAM_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 392, "output_tokens": 4},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 134},
    },
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 392,
            "outputTokenCount": 90,
            "invocationLatency": 3722,
            "firstByteLatency": 779,
        },
    },
]
STREAM_FRAMES = [chunk_frame(event) for event in STREAM_EVENTS]
MESSAGE_BODY = json.dumps(
    {
        "id": "msg_bdrk_02",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 14,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
            "output_tokens": 10,
        },
    }
).encode()


def small_pieces(frames: Sequence[bytes], size: int = 50) -> list[bytes]:
    body = b"".join(frames)
    return [body[index : index + size] for index in range(0, len(body), size)]


class Body(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class Bedrock:
    """A MockTransport handler that responds like Bedrock Runtime and keeps the request paths."""

    def __init__(self, stream_frames: list[bytes]) -> None:
        self.stream_frames = stream_frames
        self.paths: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.paths.append(request.url.raw_path.decode())
        if request.url.path.endswith("/invoke-with-response-stream"):
            return httpx2.Response(
                200,
                headers={
                    "content-type": EVENTSTREAM_CONTENT_TYPE,
                    "x-amzn-requestid": "req-stream",
                },
                stream=Body(small_pieces(self.stream_frames)),
            )
        return httpx2.Response(
            200,
            headers={"content-type": "application/json", "x-amzn-requestid": "req-json"},
            stream=Body([MESSAGE_BODY]),
        )


def sync_client(handler: Bedrock, sink: RecordingSink) -> anthropic.AnthropicBedrock:
    return anthropic.AnthropicBedrock(
        api_key="test",
        aws_region="us-east-1",
        http_client=tokenwire.MeteredClient(transport=httpx2.MockTransport(handler), meter=sink),
        max_retries=0,
    )


def test_stream_metered_from_invocation_metrics(sink: RecordingSink) -> None:
    handler = Bedrock(STREAM_FRAMES)
    client = sync_client(handler, sink)

    with client.messages.stream(model=ARN_MODEL, max_tokens=10, messages=MESSAGES) as stream:
        text = stream.get_final_text()

    assert text == "Hi"
    assert handler.paths[0].endswith("/invoke-with-response-stream")
    (record,) = sink.records
    assert (record.provider, record.api, record.stream) == (
        "bedrock",
        "invoke_model_with_response_stream",
        True,
    )
    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (392, 90)
    assert record.usage.raw["mismatch"] == {"output_tokens": {"bedrock": 90, "model": 134}}
    assert record.request_model == ARN_MODEL
    assert record.response_model == "claude-x"
    # Bedrock's request id, as the botocore hooks record it, not the body's message id.
    assert record.response_id == "req-stream"


def test_message_metered_from_body(sink: RecordingSink) -> None:
    client = sync_client(Bedrock(STREAM_FRAMES), sink)

    message = client.messages.create(
        model="us.anthropic.claude-x-v1:0", max_tokens=10, messages=MESSAGES
    )

    assert message.usage.input_tokens == 14
    (record,) = sink.records
    assert (record.api, record.state, record.stream) == ("invoke_model", "complete", False)
    assert (
        record.usage.input_tokens,
        record.usage.cached_input_tokens,
        record.usage.output_tokens,
    ) == (14, 100, 10)
    assert record.request_model == "us.anthropic.claude-x-v1:0"
    assert record.response_id == "req-json"


def test_stream_exception_frame_is_partial(sink: RecordingSink) -> None:
    frames = [*STREAM_FRAMES[:3], exception_frame("modelStreamErrorException", "stopped")]
    client = sync_client(Bedrock(frames), sink)

    with pytest.raises(anthropic.APIError):
        for _ in client.messages.create(
            model=ARN_MODEL, max_tokens=10, messages=MESSAGES, stream=True
        ):
            pass

    (record,) = sink.records
    assert record.state == "partial"
    assert record.usage.input_tokens == 392
    assert record.problem == "provider error in stream: modelStreamErrorException"


@pytest.mark.anyio
async def test_async_stream_metered(sink: RecordingSink) -> None:
    client = anthropic.AsyncAnthropicBedrock(
        api_key="test",
        aws_region="us-east-1",
        http_client=tokenwire.AsyncMeteredClient(
            transport=httpx2.MockTransport(Bedrock(STREAM_FRAMES)), meter=sink
        ),
        max_retries=0,
    )

    stream = await client.messages.create(
        model=ARN_MODEL, max_tokens=10, messages=MESSAGES, stream=True
    )
    events = [event.type async for event in stream]

    assert events[-1] == "message_stop"
    (record,) = sink.records
    assert (record.state, record.usage.output_tokens) == ("complete", 90)
