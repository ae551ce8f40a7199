"""Google Gemini API and Vertex AI: generate, stream, embed, and cached contents.

Takes a `generateContent` JSON body, or the chunks of a stream: server-sent
events with `alt=sse`, else the elements of one JSON array (the body decoder
splits both into payloads of the same shape). Every payload may carry a
`usageMetadata`; an error reply is `{"error": {"code", "message", "status"}}`.

Token semantics (Gemini API `UsageMetadata` reference,
https://ai.google.dev/api/generate-content#UsageMetadata):

- `promptTokenCount` includes `cachedContentTokenCount`, so cache reads are
  subtracted to get fresh input.
- `toolUsePromptTokenCount` (grounding, search and code-execution results fed
  back to the model) is outside `promptTokenCount` and billed at the input
  rate, so it is added to fresh input. It also stays in `raw`.
- `candidatesTokenCount` excludes `thoughtsTokenCount`: output is their sum,
  and reasoning is `thoughtsTokenCount`.
- `totalTokenCount` = prompt + candidates + thoughts + tool-use prompt, copied.

Streams: every chunk may carry a running `usageMetadata`, cumulative, so the
last one replaces the earlier ones (never summed). Streams have no end marker
of their own; the chunk whose candidate has a `finishReason` (or whose prompt
was blocked) is the terminal one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, non_negative

__all__ = ["GeminiExtractor", "gemini_model_name", "gemini_usage"]


class _Candidate(msgspec.Struct, rename="camel"):
    finish_reason: str | int | None = None


class _Payload(msgspec.Struct, rename="camel"):
    """A GenerateContentResponse, a stream chunk, a CachedContent or an error reply."""

    usage_metadata: dict[str, Any] | None = None
    model_version: str | None = None
    response_id: str | None = None
    candidates: list[_Candidate] | None = None
    prompt_feedback: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # CachedContent resources (`cachedContents` create and update replies).
    name: str | None = None
    model: str | None = None


_decoder = msgspec.json.Decoder(_Payload)

# Modality names in `*TokensDetails` entries that have a canonical subset count.
# NOTE: Vertex AI replies with integer enum values when the request asked for
# `enum-encoding=int`; those entries are left to `raw` rather than guessed.
_AUDIO = "AUDIO"
_IMAGE = "IMAGE"


def gemini_usage(raw: dict[str, Any]) -> Usage:
    """Normalize a Gemini `usageMetadata` object into disjoint classes."""
    prompt = non_negative(raw.get("promptTokenCount"), "promptTokenCount")
    cached = non_negative(raw.get("cachedContentTokenCount"), "cachedContentTokenCount")
    tool_use = non_negative(raw.get("toolUsePromptTokenCount"), "toolUsePromptTokenCount")
    candidates = non_negative(raw.get("candidatesTokenCount"), "candidatesTokenCount")
    thoughts = non_negative(raw.get("thoughtsTokenCount"), "thoughtsTokenCount")

    fresh = None
    if prompt is not None:
        if cached is not None and cached > prompt:
            raise PayloadError(
                f"cachedContentTokenCount ({cached}) exceeds promptTokenCount ({prompt})"
            )
        # Tool-use prompt tokens are billed as input but reported outside the prompt.
        fresh = prompt - (cached or 0) + (tool_use or 0)
    elif tool_use is not None:
        fresh = tool_use

    output = None
    if candidates is not None or thoughts is not None:
        # Candidates exclude thoughts; output counts everything generated.
        output = (candidates or 0) + (thoughts or 0)

    prompt_details = _modality_counts(raw.get("promptTokensDetails"), "promptTokensDetails")
    output_details = _modality_counts(raw.get("candidatesTokensDetails"), "candidatesTokensDetails")
    return Usage(
        input_tokens=fresh,
        cached_input_tokens=cached,
        output_tokens=output,
        reasoning_tokens=thoughts,
        audio_input_tokens=prompt_details.get(_AUDIO),
        image_input_tokens=prompt_details.get(_IMAGE),
        audio_output_tokens=output_details.get(_AUDIO),
        image_output_tokens=output_details.get(_IMAGE),
        total_tokens=non_negative(raw.get("totalTokenCount"), "totalTokenCount"),
        raw=raw,
    )


def _modality_counts(details: Any, field: str) -> dict[str, int]:
    """Sum a `[{modality, tokenCount}]` list by modality name."""
    if details is None:
        return {}
    if not isinstance(details, list):
        raise PayloadError(f"usageMetadata.{field} is not a list: {details!r}")
    counts: dict[str, int] = {}
    for entry in details:
        if not isinstance(entry, dict):
            raise PayloadError(f"usageMetadata.{field} entry is not an object: {entry!r}")
        modality = entry.get("modality")
        count = non_negative(entry.get("tokenCount"), f"{field}.tokenCount")
        if isinstance(modality, str) and count is not None:
            counts[modality] = counts.get(modality, 0) + count
    return counts


def gemini_model_name(resource: str) -> str:
    """Return the model id of a resource name (`models/x`, `projects/.../models/x`)."""
    return resource.rsplit("models/", 1)[-1]


def _decode(data: bytes) -> _Payload:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"gemini payload is not valid: {exc}") from exc


def _error_label(error: dict[str, Any]) -> str:
    """Return the status or code of an error object, never its message text."""
    for key in ("status", "code"):
        value = error.get(key)
        if isinstance(value, str | int) and value != "":
            return str(value)
    return "error"


def _is_final_chunk(payload: _Payload) -> bool:
    if payload.prompt_feedback is not None and payload.prompt_feedback.get("blockReason"):
        return True
    return any(
        candidate.finish_reason not in (None, "", 0, "FINISH_REASON_UNSPECIFIED")
        for candidate in payload.candidates or ()
    )


class GeminiExtractor:
    """Extract usage from Gemini and Vertex AI JSON bodies and stream chunks."""

    end_marker = False

    def on_json(self, body: bytes, out: Extraction) -> None:
        payload = _decode(body)
        self._read(payload, out)
        if payload.usage_metadata is not None:
            out.terminal = True

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        if event.data == b"[DONE]":
            # Not sent by Google; some gateways end relayed streams with it.
            out.finished = True
            return
        payload = _decode(event.data)
        self._read(payload, out)
        if out.usage is not None and _is_final_chunk(payload):
            out.terminal = True

    def _read(self, payload: _Payload, out: Extraction) -> None:
        if payload.error is not None:
            out.error = _error_label(payload.error)
            return
        out.response_id = payload.response_id or out.response_id
        if payload.model_version:
            out.response_model = payload.model_version
        if payload.name and payload.name.startswith("cachedContents/"):
            # A cached-content resource: its name is the id, its model the one it serves.
            out.response_id = payload.name
            if payload.model:
                out.response_model = gemini_model_name(payload.model)

        raw = payload.usage_metadata
        if raw is None:
            return
        # Each snapshot is cumulative: replace, never add.
        out.usage = gemini_usage(raw)
        tier = raw.get("serviceTier")
        if isinstance(tier, str) and tier:
            out.service_tier = tier
