"""OpenAI Chat Completions and every API that copies its shape (Azure, Mistral, Groq, DeepSeek...).

Token semantics: `prompt_tokens` is the whole prompt. Cache reads
(`prompt_tokens_details.cached_tokens`) and, on newer responses, cache writes
(`prompt_tokens_details.cache_write_tokens`) are inside it, so fresh input is
`prompt_tokens - cached_tokens - cache_write_tokens`. `completion_tokens`
already contains `completion_tokens_details.reasoning_tokens`. DeepSeek reports
cache reads as `prompt_cache_hit_tokens` (also inside `prompt_tokens`).

xAI counts reasoning outside `completion_tokens`: Google Cloud's page on Grok
reasoning says the count "is outputted in the reasoning_tokens field, separated
from the completion_tokens", and its example reports prompt 663, completion 50,
reasoning 124 and total 837 (docs.cloud.google.com, Vertex AI partner models,
Grok, "Reasoning for Grok Models"). Gateways that translate Gemini
replies into this shape often do the same. So the reasoning tokens are added
to output when `total_tokens` equals prompt + completion + reasoning. Otherwise
the OpenAI reading applies.

Streams carry usage in one chunk near the end, only when the request set
`stream_options.include_usage` (Mistral sends it on the `finish_reason` chunk
unasked). Groq puts it in `x_groq.usage`; a top-level `usage` wins when both
are present. Groq's compound systems add `x_groq.usage_breakdown` (usage per
underlying model), kept in `raw` under `usage_breakdown`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, decode_object, non_negative

__all__ = ["ChatCompletionsExtractor", "chat_usage"]


class _Envelope(msgspec.Struct):
    """The fields of a completion (or a stream chunk) that billing needs."""

    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    service_tier: str | None = None
    error: Any = None
    x_groq: dict[str, Any] | None = None


_envelope = msgspec.json.Decoder(_Envelope)


def chat_usage(raw: dict[str, Any]) -> Usage:
    """Normalize an OpenAI-shaped `usage` object into disjoint classes."""
    prompt = non_negative(raw.get("prompt_tokens"), "prompt_tokens")
    completion = non_negative(raw.get("completion_tokens"), "completion_tokens")
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    if not isinstance(prompt_details, dict) or not isinstance(completion_details, dict):
        raise PayloadError("usage *_tokens_details is not an object")

    cached = non_negative(prompt_details.get("cached_tokens"), "cached_tokens")
    if cached is None:
        cached = non_negative(raw.get("prompt_cache_hit_tokens"), "prompt_cache_hit_tokens")
    written = non_negative(prompt_details.get("cache_write_tokens"), "cache_write_tokens")

    fresh = None
    if prompt is not None:
        fresh = prompt - (cached or 0) - (written or 0)
        if fresh < 0:
            raise PayloadError(
                f"cached ({cached}) and cache-write ({written}) tokens exceed "
                f"prompt_tokens ({prompt})"
            )

    reasoning = non_negative(completion_details.get("reasoning_tokens"), "reasoning_tokens")
    total = non_negative(raw.get("total_tokens"), "total_tokens")
    output = completion
    if (
        prompt is not None
        and completion is not None
        and reasoning
        and total == prompt + completion + reasoning
    ):
        # The reported total shows reasoning counted beside completion (xAI).
        output = completion + reasoning

    return Usage(
        input_tokens=fresh,
        cached_input_tokens=cached,
        cache_creation_tokens=written,
        output_tokens=output,
        reasoning_tokens=reasoning,
        audio_input_tokens=non_negative(prompt_details.get("audio_tokens"), "audio_tokens"),
        audio_output_tokens=non_negative(completion_details.get("audio_tokens"), "audio_tokens"),
        image_input_tokens=non_negative(prompt_details.get("image_tokens"), "image_tokens"),
        total_tokens=total,
        raw=raw,
    )


def _error_label(error: Any) -> str:
    """Return the type or code of an error object, never its message text."""
    if isinstance(error, dict):
        for key in ("code", "type", "status"):
            value = error.get(key)
            if isinstance(value, str | int) and value != "":
                return str(value)
    return "error"


class ChatCompletionsExtractor:
    """Extract usage from Chat Completions JSON bodies and SSE chunks."""

    end_marker = True

    def on_json(self, body: bytes, out: Extraction) -> None:
        self._read(_decode(body), out)

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        data = event.data
        if data == b"[DONE]":
            out.finished = True
            return
        if event.event == "error":
            out.error = _error_label(decode_object(data, "error event").get("error"))
            return
        # Most chunks carry only content deltas. Decode a chunk only while the id
        # and model are unknown, or when it may hold usage or an error.
        if (
            out.response_id is not None
            and out.response_model is not None
            and not _may_hold_usage_or_error(data)
        ):
            return
        self._read(_decode(data), out)

    def _read(self, envelope: _Envelope, out: Extraction) -> None:
        if envelope.id:
            out.response_id = out.response_id or envelope.id
        if envelope.model:
            out.response_model = envelope.model
        if envelope.service_tier:
            out.service_tier = envelope.service_tier
        if envelope.error is not None:
            out.error = _error_label(envelope.error)

        raw = envelope.usage
        if raw is None and envelope.x_groq is not None:
            groq_usage = envelope.x_groq.get("usage")
            raw = groq_usage if isinstance(groq_usage, dict) else None
        if raw is not None and envelope.x_groq is not None:
            breakdown = envelope.x_groq.get("usage_breakdown")
            if breakdown is not None and "usage_breakdown" not in raw:
                raw = {**raw, "usage_breakdown": breakdown}
        if raw is not None:
            out.usage = chat_usage(raw)
            out.terminal = True


def _may_hold_usage_or_error(data: bytes) -> bool:
    """Return whether a chunk may carry a usage object or an error, by substring counts.

    With `include_usage` every chunk has `"usage":null`, so a chunk is skipped
    when each `"usage"` key it contains is followed by `:null`. JSON escapes
    quotes inside strings, so message text cannot produce these byte sequences.
    """
    keys = data.count(b'"usage"')
    if keys and keys != data.count(b'"usage":null'):
        return True
    return b'"error"' in data


def _decode(data: bytes) -> _Envelope:
    try:
        return _envelope.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"chat completion payload is not valid: {exc}") from exc
