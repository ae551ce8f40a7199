"""Realistic provider response bodies of a chosen size, built with the standard library only.

Shapes follow the providers' documented responses: OpenAI Chat Completions
(JSON and `chat.completion.chunk` events with a final usage chunk), Anthropic
Messages (JSON and the `message_start` ... `message_stop` event sequence),
Gemini `streamGenerateContent?alt=sse` (every chunk carries a cumulative
`usageMetadata`) and Bedrock ConverseStream (AWS event-stream frames). Bodies
are deterministic, so every run and every process gets the same bytes.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

__all__ = [
    "REQUEST_MESSAGES",
    "anthropic_message_json",
    "anthropic_stream_events",
    "converse_stream_frames",
    "gemini_stream_events",
    "openai_chat_json",
    "openai_stream_event",
    "openai_stream_events",
    "openai_stream_tail",
    "split_network",
]

REQUEST_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You answer questions about invoices in two sentences."},
    {"role": "user", "content": "Why did my March invoice go up compared with February?"},
]
"""The chat messages every benchmark request sends."""

NETWORK_CHUNK_BYTES = 4096
"""Piece size for JSON bodies: httpcore2 reads at most 64 KiB per call, and a
TLS record carries at most 16 KiB, so real reads return a few KiB each."""

_WORDS = (
    "the",
    " invoice",
    " total",
    " rose",
    " because",
    " usage",
    " of",
    " the",
    " search",
    " feature",
    " grew",
    " by",
    " forty",
    " percent",
    ",",
    " and",
    " a",
    " new",
    " seat",
    " was",
    " added",
    " on",
    " March",
    " 3",
    ".",
    "\n",
)


def _text(length: int) -> str:
    """Return English-like text of exactly `length` characters, newlines included."""
    pieces: list[str] = []
    size = 0
    index = 0
    while size < length:
        word = _WORDS[index % len(_WORDS)]
        pieces.append(word)
        size += len(word)
        index += 1
    return "".join(pieces)[:length]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _fit(build: Callable[[int], bytes], target_bytes: int) -> bytes:
    """Return `build(text_length)` with the text length chosen so the body has `target_bytes`."""
    text_length = max(0, target_bytes - len(build(0)))
    body = build(text_length)
    # An escaped newline takes two bytes, so the first guess may be too long.
    while len(body) > target_bytes and text_length > 0:
        text_length = max(0, text_length - (len(body) - target_bytes))
        body = build(text_length)
    return body


def openai_chat_json(target_bytes: int) -> bytes:
    """Return a Chat Completions response of about `target_bytes` bytes."""

    def build(text_length: int) -> bytes:
        return _dumps(
            {
                "id": "chatcmpl-BZx4kq2d9Qm7XyT1cR8vL0pNw3sE",
                "object": "chat.completion",
                "created": 1747000000,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": _text(text_length),
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 1432,
                    "completion_tokens": 1 + text_length // 4,
                    "total_tokens": 1433 + text_length // 4,
                    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_34a54ae93c",
            }
        )

    return _fit(build, target_bytes)


def anthropic_message_json(target_bytes: int) -> bytes:
    """Return an Anthropic Messages response of about `target_bytes` bytes."""

    def build(text_length: int) -> bytes:
        return _dumps(
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": _text(text_length)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 408,
                    "cache_creation_input_tokens": 1024,
                    "cache_read_input_tokens": 2048,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 1024,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "output_tokens": 1 + text_length // 4,
                    "service_tier": "standard",
                },
            }
        )

    return _fit(build, target_bytes)


def openai_stream_event(index: int, delta: dict[str, Any], finish_reason: str | None) -> bytes:
    """Return one `chat.completion.chunk` server-sent event, blank line included."""
    payload = {
        "id": "chatcmpl-BZx4kq2d9Qm7XyT1cR8vL0pNw3sE",
        "object": "chat.completion.chunk",
        "created": 1747000000 + index // 50,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_34a54ae93c",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }
    return b"data: " + _dumps(payload) + b"\n\n"


def openai_stream_tail(completion_tokens: int) -> list[bytes]:
    """Return the finish chunk, the usage-only chunk and `data: [DONE]`."""
    usage_chunk = json.loads(openai_stream_event(0, {}, None)[6:])
    usage_chunk["choices"] = []
    usage_chunk["usage"] = {
        "prompt_tokens": 1432,
        "completion_tokens": completion_tokens,
        "total_tokens": 1432 + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    return [
        openai_stream_event(completion_tokens, {}, "stop"),
        b"data: " + _dumps(usage_chunk) + b"\n\n",
        b"data: [DONE]\n\n",
    ]


def openai_stream_events(event_count: int) -> list[bytes]:
    """Return `event_count` events of a Chat Completions stream with usage, one per list item."""
    if event_count < 5:
        raise ValueError(f"event_count must be at least 5, got {event_count}")
    events = [openai_stream_event(0, {"role": "assistant", "content": "", "refusal": None}, None)]
    content_count = event_count - 4
    for index in range(1, content_count + 1):
        events.append(openai_stream_event(index, {"content": _WORDS[index % len(_WORDS)]}, None))
    events.extend(openai_stream_tail(content_count))
    return events


def _anthropic_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(payload) + b"\n\n"


def anthropic_stream_events(event_count: int) -> list[bytes]:
    """Return `event_count` events of a Messages stream, `message_start` to `message_stop`."""
    if event_count < 7:
        raise ValueError(f"event_count must be at least 7, got {event_count}")
    delta_count = event_count - 6
    events = [
        _anthropic_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5-20250929",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 408,
                        "cache_creation_input_tokens": 1024,
                        "cache_read_input_tokens": 2048,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 1024,
                            "ephemeral_1h_input_tokens": 0,
                        },
                        "output_tokens": 1,
                        "service_tier": "standard",
                    },
                },
            },
        ),
        _anthropic_event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _anthropic_event("ping", {"type": "ping"}),
    ]
    for index in range(delta_count):
        events.append(
            _anthropic_event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": _WORDS[index % len(_WORDS)]},
                },
            )
        )
    events.append(
        _anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0})
    )
    events.append(
        _anthropic_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 408,
                    "cache_creation_input_tokens": 1024,
                    "cache_read_input_tokens": 2048,
                    "output_tokens": delta_count,
                },
            },
        )
    )
    events.append(_anthropic_event("message_stop", {"type": "message_stop"}))
    return events


def gemini_stream_events(event_count: int) -> list[bytes]:
    """Return `event_count` chunks of `streamGenerateContent?alt=sse`, CRLF line ends as served."""
    events = []
    for index in range(event_count):
        last = index == event_count - 1
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": _WORDS[index % len(_WORDS)]}], "role": "model"},
            "index": 0,
        }
        if last:
            candidate["finishReason"] = "STOP"
        payload = {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": 1432,
                "candidatesTokenCount": index + 1,
                "totalTokenCount": 1432 + index + 1 + (64 if last else 0),
                "cachedContentTokenCount": 1024,
                "thoughtsTokenCount": 64 if last else 0,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1432}],
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "mCdJaJ3bGf2l1PIPuYqN8Ak",
        }
        events.append(b"data: " + _dumps(payload) + b"\r\n\r\n")
    return events


def _string_header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    return (
        bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    )


def event_stream_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """Return one AWS event-stream frame with the three headers Bedrock sends on events."""
    headers = (
        _string_header(":event-type", event_type)
        + _string_header(":content-type", "application/json")
        + _string_header(":message-type", "event")
    )
    body = _dumps(payload)
    prelude = struct.pack(">II", 16 + len(headers) + len(body), len(headers))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return frame + struct.pack(">I", zlib.crc32(frame))


def converse_stream_frames(event_count: int) -> list[bytes]:
    """Return `event_count` frames of a ConverseStream response, `messageStart` to `metadata`."""
    if event_count < 5:
        raise ValueError(f"event_count must be at least 5, got {event_count}")
    delta_count = event_count - 4
    # Bedrock pads every event with a `p` field of varying length against size side channels.
    frames = [event_stream_frame("messageStart", {"role": "assistant", "p": "abcdefgh"})]
    for index in range(delta_count):
        frames.append(
            event_stream_frame(
                "contentBlockDelta",
                {
                    "contentBlockIndex": 0,
                    "delta": {"text": _WORDS[index % len(_WORDS)]},
                    "p": "abcdefghijklmnopqrstu"[: 1 + index % 20],
                },
            )
        )
    frames.append(event_stream_frame("contentBlockStop", {"contentBlockIndex": 0, "p": "abc"}))
    frames.append(event_stream_frame("messageStop", {"stopReason": "end_turn", "p": "abcdef"}))
    frames.append(
        event_stream_frame(
            "metadata",
            {
                "usage": {
                    "inputTokens": 1432,
                    "outputTokens": delta_count,
                    "totalTokens": 1432 + delta_count,
                    "cacheReadInputTokens": 0,
                    "cacheWriteInputTokens": 0,
                },
                "metrics": {"latencyMs": 1834},
                "p": "abcdefghij",
            },
        )
    )
    return frames


def split_network(body: bytes, size: int = NETWORK_CHUNK_BYTES) -> list[bytes]:
    """Split a body into the `size`-byte pieces a socket read returns."""
    return [body[offset : offset + size] for offset in range(0, len(body), size)]
