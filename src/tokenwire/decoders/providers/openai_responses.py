"""OpenAI Responses API (`/v1/responses`, also Azure's `/openai/v1/responses`).

Token semantics mirror Chat Completions under other names: `input_tokens`
includes `input_tokens_details.cached_tokens` (and `cache_write_tokens` when
reported), and `output_tokens` includes `output_tokens_details.reasoning_tokens`.

Streams report usage only in the terminal event, whichever arrives:
`response.completed`, `response.incomplete` or `response.failed`. Every other
event is skipped without decoding, except `response.created`, which gives the
id and model early so that a stream cut short still names them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, non_negative

__all__ = ["ResponsesExtractor", "responses_usage"]

_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_DECODED_EVENTS = _TERMINAL_EVENTS | {"response.created", "error"}


class _Response(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    status: str | None = None
    usage: dict[str, Any] | None = None
    service_tier: str | None = None
    error: Any = None


class _Event(msgspec.Struct):
    """A Responses JSON body (`object: response`) or one streamed event (`type: ...`)."""

    type: str | None = None
    response: _Response | None = None
    id: str | None = None
    model: str | None = None
    status: str | None = None
    usage: dict[str, Any] | None = None
    service_tier: str | None = None
    error: Any = None
    code: str | None = None


_decoder = msgspec.json.Decoder(_Event)


def responses_usage(raw: dict[str, Any]) -> Usage:
    """Normalize a Responses `usage` object into disjoint classes."""
    total_input = non_negative(raw.get("input_tokens"), "input_tokens")
    input_details = raw.get("input_tokens_details") or {}
    output_details = raw.get("output_tokens_details") or {}
    if not isinstance(input_details, dict) or not isinstance(output_details, dict):
        raise PayloadError("usage *_tokens_details is not an object")

    cached = non_negative(input_details.get("cached_tokens"), "cached_tokens")
    written = non_negative(input_details.get("cache_write_tokens"), "cache_write_tokens")
    fresh = None
    if total_input is not None:
        fresh = total_input - (cached or 0) - (written or 0)
        if fresh < 0:
            raise PayloadError(
                f"cached ({cached}) and cache-write ({written}) tokens exceed "
                f"input_tokens ({total_input})"
            )

    return Usage(
        input_tokens=fresh,
        cached_input_tokens=cached,
        cache_creation_tokens=written,
        output_tokens=non_negative(raw.get("output_tokens"), "output_tokens"),
        reasoning_tokens=non_negative(output_details.get("reasoning_tokens"), "reasoning_tokens"),
        total_tokens=non_negative(raw.get("total_tokens"), "total_tokens"),
        raw=raw,
    )


def _decode(data: bytes) -> _Event:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"responses payload is not valid: {exc}") from exc


def _error_label(error: Any, fallback: str = "error") -> str:
    if isinstance(error, dict):
        for key in ("code", "type"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return value
    return fallback


class ResponsesExtractor:
    """Extract usage from Responses JSON bodies and SSE events."""

    end_marker = True

    def on_json(self, body: bytes, out: Extraction) -> None:
        event = _decode(body)
        if event.error is not None and event.id is None:
            out.error = _error_label(event.error)
            return
        self._read(
            _Response(
                id=event.id,
                model=event.model,
                status=event.status,
                usage=event.usage,
                service_tier=event.service_tier,
                error=event.error,
            ),
            out,
        )

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        name = event.event
        if name == "message":
            # No `event:` line: look for the type inside the data instead.
            if not any(kind.encode() in event.data for kind in _DECODED_EVENTS):
                return
        elif name not in _DECODED_EVENTS:
            return

        payload = _decode(event.data)
        kind = payload.type or name
        if kind == "error":
            out.error = _error_label(payload.error, payload.code or "error")
            return
        if payload.response is not None:
            self._read(payload.response, out)
        if kind in _TERMINAL_EVENTS:
            out.finished = True

    def _read(self, response: _Response, out: Extraction) -> None:
        out.response_id = response.id or out.response_id
        out.response_model = response.model or out.response_model
        out.service_tier = response.service_tier or out.service_tier
        if response.status == "failed" or response.error is not None:
            out.error = _error_label(response.error, "failed")
        if response.usage is not None:
            out.usage = responses_usage(response.usage)
            out.terminal = True
