"""OpenAI audio and image endpoints: transcription, translation, speech, images.

Takes a JSON body, or one server-sent event of a stream. Transcription streams
end with `transcript.text.done`, speech streams (`stream_format: "sse"`) with
`speech.audio.done`, image streams with `image_generation.completed` or
`image_edit.completed`; the usage is in that terminal event. Bodies without
usage (audio bytes from speech, `dall-e-*` images, transcripts in text, SRT or
VTT format) leave the record `missing`: the body decoder does not buffer audio
or image bytes at all.

Usage shapes, all kept whole in `raw`:

- tokens (`gpt-4o-transcribe`, `gpt-4o-mini-tts`, `gpt-image-*`):
  `input_tokens` (all input, text and audio or image), `output_tokens`,
  `total_tokens`, and the input split in `input_token_details` (transcription)
  or `input_tokens_details` (images): `audio_tokens`, `image_tokens`,
  `text_tokens`, `cached_tokens` when reported. Cached tokens are inside
  `input_tokens`, as in Chat Completions, so they are subtracted from fresh input.
- duration (`whisper-1`): `{"type": "duration", "seconds": ...}`. The seconds
  have no canonical token class; the record is complete, carries no billable
  counts, and the seconds stay in `raw`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, non_negative, usage_object

__all__ = ["MediaExtractor", "media_usage"]

_TERMINAL_EVENTS = frozenset(
    {
        "transcript.text.done",
        "speech.audio.done",
        "image_generation.completed",
        "image_edit.completed",
    }
)


class _Payload(msgspec.Struct):
    """A JSON body or one stream event; `type` names the event."""

    type: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    svg_usage: dict[str, Any] | None = None
    error: Any = None


_decoder = msgspec.json.Decoder(_Payload)


def media_usage(raw: dict[str, Any]) -> Usage:
    """Normalize an audio or image `usage` object into disjoint classes."""
    if raw.get("type") == "duration":
        # Billed by audio seconds, not tokens: nothing maps to a token class.
        return Usage(raw=raw)

    # Transcriptions spell it `input_token_details`, image generation `input_tokens_details`.
    input_details = usage_object(raw, "input_tokens_details")
    input_details = input_details or usage_object(raw, "input_token_details")
    output_details = usage_object(raw, "output_tokens_details")
    total_input = non_negative(raw.get("input_tokens"), "input_tokens")
    cached = non_negative(input_details.get("cached_tokens"), "cached_tokens")
    fresh = total_input
    if total_input is not None and cached is not None:
        if cached > total_input:
            raise PayloadError(f"cached_tokens ({cached}) exceed input_tokens ({total_input})")
        fresh = total_input - cached

    return Usage(
        input_tokens=fresh,
        cached_input_tokens=cached,
        output_tokens=non_negative(raw.get("output_tokens"), "output_tokens"),
        reasoning_tokens=non_negative(output_details.get("reasoning_tokens"), "reasoning_tokens"),
        audio_input_tokens=non_negative(input_details.get("audio_tokens"), "audio_tokens"),
        image_input_tokens=non_negative(input_details.get("image_tokens"), "image_tokens"),
        image_output_tokens=non_negative(output_details.get("image_tokens"), "image_tokens"),
        total_tokens=non_negative(raw.get("total_tokens"), "total_tokens"),
        raw=raw,
    )


def _decode(data: bytes) -> _Payload:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"audio or image payload is not valid: {exc}") from exc


def _error_label(error: Any) -> str:
    if isinstance(error, dict):
        for key in ("code", "type"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return value
    return "error"


class MediaExtractor:
    """Extract usage from OpenAI audio and image JSON bodies and SSE events."""

    end_marker = True

    def on_json(self, body: bytes, out: Extraction) -> None:
        payload = _decode(body)
        if payload.error is not None:
            out.error = _error_label(payload.error)
            return
        self._read(payload, out)

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        name = event.event
        if name not in _TERMINAL_EVENTS and name != "error":
            # Partial images and audio deltas are large and carry no usage.
            data = event.data
            if b'"usage"' not in data and b'"error"' not in data:
                return
        payload = _decode(event.data)
        kind = payload.type or name
        if kind == "error" or (payload.error is not None and payload.usage is None):
            out.error = _error_label(payload.error)
            return
        self._read(payload, out)
        if kind in _TERMINAL_EVENTS:
            out.finished = True

    @staticmethod
    def _read(payload: _Payload, out: Extraction) -> None:
        if payload.model:
            out.response_model = payload.model
        raw = payload.usage
        if raw is None:
            return
        if payload.svg_usage is not None:
            # NOTE: SVG authoring usage belongs to another model (`svg_usage.model`),
            # so it is kept in `raw` only and not added to the image model's counts.
            raw = {**raw, "svg_usage": payload.svg_usage}
        out.usage = media_usage(raw)
        out.terminal = True
