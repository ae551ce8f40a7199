"""Cohere chat, embed and rerank, API versions 1 and 2.

Takes a JSON body, or one event of a stream: v1 chat streams newline-delimited
JSON objects tagged by `event_type` (usage in the `stream-end` event's
`response.meta`), v2 chat streams server-sent events tagged by `type` (usage in
the `message-end` event's `delta.usage`, then `data: [DONE]`).

Where the counts are: v1 bodies carry `meta.{billed_units, tokens}`, v2 chat
carries `usage.{billed_units, tokens, cached_tokens}`, embed and rerank carry
`meta.billed_units` only.

Token semantics: `tokens` are the model-side counts, prompt template included;
`billed_units` are what Cohere's invoice counts, and are lower whenever a
template was added. The canonical classes follow `tokens` when the reply has
them, else `billed_units`. The whole usage object, `billed_units` included,
stays in `raw`.
NOTE: a bill built on these records follows the model-side counts; Cohere
invoices `billed_units`, which `raw` keeps beside them.
`cached_tokens` is taken as the cached part of `tokens.input_tokens` (Cohere's
API reference does not say; the recorded counts fit that reading). Cohere
replies name no model, so the record's model is the request's.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, non_negative, usage_object

__all__ = ["CohereExtractor", "cohere_usage"]


class _StreamEndResponse(msgspec.Struct):
    response_id: str | None = None
    generation_id: str | None = None
    meta: dict[str, Any] | None = None


class _Payload(msgspec.Struct):
    """A v1 or v2 JSON body, a v1 stream object or a v2 stream event's data."""

    id: str | None = None
    response_id: str | None = None
    generation_id: str | None = None
    usage: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    event_type: str | None = None
    type: str | None = None
    response: _StreamEndResponse | None = None
    delta: dict[str, Any] | None = None
    finish_reason: str | None = None


_decoder = msgspec.json.Decoder(_Payload)

# Stream events that may carry ids, usage or an error; every other one is skipped undecoded.
_V1_DECODED = (b'"stream-start"', b'"stream-end"')
_V2_DECODED = frozenset({"message-start", "message-end", "error"})


def cohere_usage(raw: dict[str, Any]) -> Usage:
    """Normalize a Cohere `usage` (v2) or `meta` (v1, embed) object into disjoint classes."""
    tokens = usage_object(raw, "tokens")
    billed = usage_object(raw, "billed_units")
    source = tokens if tokens else billed
    field = "tokens" if tokens else "billed_units"

    total_input = non_negative(source.get("input_tokens"), f"{field}.input_tokens")
    cached = None
    if source is tokens:
        cached = non_negative(raw.get("cached_tokens"), "cached_tokens")
    fresh = total_input
    if total_input is not None and cached is not None:
        if cached > total_input:
            raise PayloadError(
                f"cached_tokens ({cached}) exceeds tokens.input_tokens ({total_input})"
            )
        fresh = total_input - cached

    return Usage(
        input_tokens=fresh,
        cached_input_tokens=cached,
        output_tokens=non_negative(source.get("output_tokens"), f"{field}.output_tokens"),
        raw=raw,
    )


def _decode(data: bytes) -> _Payload:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"cohere payload is not valid: {exc}") from exc


class CohereExtractor:
    """Extract usage from Cohere JSON bodies, v1 NDJSON streams and v2 SSE streams."""

    end_marker = True

    def on_json(self, body: bytes, out: Extraction) -> None:
        payload = _decode(body)
        out.response_id = payload.id or payload.response_id or payload.generation_id
        self._read_usage(payload.usage if payload.usage is not None else payload.meta, out)

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        data = event.data
        if data == b"[DONE]":
            out.finished = True
            return
        name = event.event
        if name == "message":
            # No `event:` line: a v1 NDJSON object, or v2 data without its name.
            if not any(marker in data for marker in _V1_DECODED) and not any(
                kind.encode() in data for kind in _V2_DECODED
            ):
                return
        elif name not in _V2_DECODED:
            return

        payload = _decode(data)
        kind = payload.event_type or payload.type or name
        if kind == "stream-start":
            out.response_id = out.response_id or payload.generation_id
        elif kind == "message-start":
            out.response_id = out.response_id or payload.id
        elif kind == "stream-end":
            self._read_stream_end(payload, out)
        elif kind == "message-end":
            delta = payload.delta or {}
            self._read_usage(delta.get("usage"), out)
            self._read_finish(delta.get("finish_reason"), out)
            out.finished = True
        elif kind == "error":
            out.error = "error"

    def _read_stream_end(self, payload: _Payload, out: Extraction) -> None:
        response = payload.response
        if response is not None:
            out.response_id = response.response_id or out.response_id
            self._read_usage(response.meta, out)
        self._read_finish(payload.finish_reason, out)
        out.finished = True

    @staticmethod
    def _read_finish(reason: Any, out: Extraction) -> None:
        # v1 ends a failed generation with finish_reason ERROR, ERROR_TOXIC or ERROR_LIMIT.
        if isinstance(reason, str) and reason.startswith("ERROR"):
            out.error = reason

    @staticmethod
    def _read_usage(raw: Any, out: Extraction) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise PayloadError(f"cohere usage is not an object: {raw!r}")
        if "tokens" not in raw and "billed_units" not in raw:
            return
        out.usage = cohere_usage(raw)
        out.terminal = True
