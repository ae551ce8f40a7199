"""Anthropic Messages (api.anthropic.com and the same body inside Bedrock and Vertex).

Token semantics: `input_tokens`, `cache_read_input_tokens` and
`cache_creation_input_tokens` are disjoint; the total input is their sum.
`cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens` split
the writes by TTL. `output_tokens` includes extended thinking, with no
separate reasoning count, and there is no total.

Streams: `message_start.message.usage` contains the input-side counts and a
provisional output count. Each `message_delta.usage` contains cumulative values
that overwrite (never add to) what came before, field by field.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, non_negative

__all__ = ["MessagesExtractor", "messages_usage"]


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


class _Event(msgspec.Struct):
    """A Messages JSON body or one streamed event, told apart by `type`."""

    type: str | None = None
    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    message: _Message | None = None
    error: dict[str, Any] | None = None


_decoder = msgspec.json.Decoder(_Event)

# Stream events that never carry usage; skipped without decoding.
_SKIPPED_EVENTS = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "ping"}
)


def messages_usage(raw: dict[str, Any]) -> Usage:
    """Normalize an Anthropic `usage` object (already disjoint) into a `Usage`."""
    split = raw.get("cache_creation")
    if split is not None and not isinstance(split, dict):
        raise PayloadError(f"usage.cache_creation is not an object: {split!r}")
    split = split or {}

    return Usage(
        input_tokens=non_negative(raw.get("input_tokens"), "input_tokens"),
        cached_input_tokens=non_negative(
            raw.get("cache_read_input_tokens"), "cache_read_input_tokens"
        ),
        cache_creation_tokens=non_negative(
            raw.get("cache_creation_input_tokens"), "cache_creation_input_tokens"
        ),
        cache_creation_5m_tokens=non_negative(
            split.get("ephemeral_5m_input_tokens"), "ephemeral_5m_input_tokens"
        ),
        cache_creation_1h_tokens=non_negative(
            split.get("ephemeral_1h_input_tokens"), "ephemeral_1h_input_tokens"
        ),
        output_tokens=non_negative(raw.get("output_tokens"), "output_tokens"),
        raw=raw,
    )


def _decode(data: bytes) -> _Event:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"messages payload is not valid: {exc}") from exc


def _error_label(error: dict[str, Any] | None) -> str:
    value = (error or {}).get("type")
    return value if isinstance(value, str) and value else "error"


class MessagesExtractor:
    """Extract usage from Messages JSON bodies and SSE events."""

    end_marker = True

    def on_json(self, body: bytes, out: Extraction) -> None:
        event = _decode(body)
        if event.type == "error" or event.error is not None:
            out.error = _error_label(event.error)
            return
        out.response_id = event.id
        out.response_model = event.model
        if event.usage is not None:
            out.usage = messages_usage(event.usage)
            out.service_tier = _service_tier(event.usage)
            out.terminal = True

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        if event.event in _SKIPPED_EVENTS:
            return
        payload = _decode(event.data)
        kind = payload.type or event.event

        if kind == "message_start" and payload.message is not None:
            out.response_id = payload.message.id
            out.response_model = payload.message.model
            self._merge(payload.message.usage, out)
        elif kind == "message_delta":
            self._merge(payload.usage, out)
            out.terminal = out.usage is not None
        elif kind == "message_stop":
            out.finished = True
        elif kind == "error":
            out.error = _error_label(payload.error)

    def _merge(self, usage: dict[str, Any] | None, out: Extraction) -> None:
        if usage is None:
            return
        merged: dict[str, Any] = out.scratch.setdefault("usage", {})
        merged.update({key: value for key, value in usage.items() if value is not None})
        out.usage = messages_usage(dict(merged))
        out.service_tier = _service_tier(merged) or out.service_tier


def _service_tier(usage: dict[str, Any]) -> str | None:
    tier = usage.get("service_tier")
    return tier if isinstance(tier, str) else None
