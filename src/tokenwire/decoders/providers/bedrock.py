"""Amazon Bedrock Runtime: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.

Where the usage is, per operation:

- Converse: `usage` in the JSON body.
- ConverseStream: `usage` in the `metadata` event of the AWS event stream.
- InvokeModel: the `X-Amzn-Bedrock-{Input,Output,Cache-Read-Input,Cache-Write-Input}-Token-Count`
  response headers. The body belongs to the model family and may carry the
  family's own counts.
- InvokeModelWithResponseStream: event-stream `chunk` events whose payload is
  `{"bytes": "<base64 JSON>"}`; the inner JSON is the family's stream event,
  and the last one adds `amazon-bedrock-invocationMetrics`.

The counts Bedrock reports itself (headers, `amazon-bedrock-invocationMetrics`)
are what Bedrock bills, so they win over the family's counts whenever both are
present. The family's counts are kept in `Usage.raw["body"]`, and any class on
which the two disagree is listed in `Usage.raw["mismatch"]`.

Token semantics: Bedrock's `inputTokens` (and the headers' input count)
exclude cache reads and writes, as Anthropic's `input_tokens` do, so the three
input classes map one to one. `totalTokens` is copied; Bedrock-level reports
have none. Converse's `cacheDetails` splits cache writes by TTL ("5m", "1h");
the split is used only when it adds up to `cacheWriteInputTokens`. Bedrock's
own InvokeModel counts have no split, so an Anthropic body's split
(`usage.cache_creation`) is used when it adds up to Bedrock's cache writes. Recent
responses repeat the cache counts as `cacheReadInputTokenCount` /
`cacheWriteInputTokenCount`; those duplicates are read only when the
documented field is absent, never added.

Model families inside InvokeModel bodies and stream chunks, recognized by their
fields (a model id can be an ARN or an inference profile, which names no family):
Anthropic (`message_start`/`message_delta` or a `message` body with `usage`),
Amazon Nova (`usage` or `metadata.usage` with `inputTokens`), Amazon Titan text
and embeddings (`inputTextTokenCount`, `totalOutputTextTokenCount`,
`results[].tokenCount`, sometimes sent as floats such as 28.0), Meta Llama
(`prompt_token_count`, `generation_token_count`), and OpenAI-shaped bodies
(`usage.prompt_tokens`). Mistral and Cohere bodies carry no counts, so their
usage comes only from Bedrock's own report.

An `exception` or `error` frame in a stream (`:message-type` header) ends the
stream; the extractors record its type in `Extraction.error` and mark the
stream finished.

Extractors are stateless; per-response state lives in `Extraction.scratch`.
Everything here is sans-I/O and raises `PayloadError` on malformed payloads.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError, non_negative
from ..eventstream import EventStreamMessage
from .anthropic import messages_usage

__all__ = [
    "API_CONVERSE",
    "API_CONVERSE_STREAM",
    "API_INVOKE_MODEL",
    "API_INVOKE_MODEL_STREAM",
    "HEADER_TOKEN_COUNTS",
    "ConverseExtractor",
    "InvokeModelExtractor",
    "converse_usage",
    "header_usage",
    "invocation_metrics_usage",
]

API_CONVERSE = "converse"
API_CONVERSE_STREAM = "converse_stream"
API_INVOKE_MODEL = "invoke_model"
API_INVOKE_MODEL_STREAM = "invoke_model_with_response_stream"

HEADER_TOKEN_COUNTS: dict[str, str] = {
    "x-amzn-bedrock-input-token-count": "input_tokens",
    "x-amzn-bedrock-cache-read-input-token-count": "cached_input_tokens",
    "x-amzn-bedrock-cache-write-input-token-count": "cache_creation_tokens",
    "x-amzn-bedrock-output-token-count": "output_tokens",
}
"""InvokeModel response headers (lower case) and the `Usage` class each one counts."""

_REQUEST_ID_HEADER = "x-amzn-requestid"
_ERROR_TYPE_HEADER = "x-amzn-errortype"
_SERVICE_TIER_HEADER = "x-amzn-bedrock-service-tier"
_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"

_CACHE_TTLS = ("5m", "1h")

# Canonical classes compared between Bedrock's report and the family's counts.
_COMPARED_CLASSES = (
    "input_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "output_tokens",
)

Family = Literal["anthropic", "nova", "titan", "llama", "openai"]


# --- Usage normalization ---------------------------------------------------


def _first_present(raw: Mapping[str, Any], *names: str) -> tuple[Any, str]:
    """Return the value of the first of `names` present and not null, with its name."""
    for name in names:
        value = raw.get(name)
        if value is not None:
            return value, name
    return None, names[0]


def converse_usage(raw: dict[str, Any]) -> Usage:
    """Normalize a Converse `usage` object (input excludes the cache) into a `Usage`."""
    cache_read, read_name = _first_present(raw, "cacheReadInputTokens", "cacheReadInputTokenCount")
    cache_write, write_name = _first_present(
        raw, "cacheWriteInputTokens", "cacheWriteInputTokenCount"
    )
    cache_creation = non_negative(cache_write, write_name)
    split_5m, split_1h = _cache_split(raw.get("cacheDetails"), cache_creation)

    return Usage(
        input_tokens=non_negative(raw.get("inputTokens"), "inputTokens"),
        cached_input_tokens=non_negative(cache_read, read_name),
        cache_creation_tokens=cache_creation,
        cache_creation_5m_tokens=split_5m,
        cache_creation_1h_tokens=split_1h,
        output_tokens=non_negative(raw.get("outputTokens"), "outputTokens"),
        total_tokens=non_negative(raw.get("totalTokens"), "totalTokens"),
        raw=raw,
    )


def _cache_split(details: Any, cache_creation: int | None) -> tuple[int | None, int | None]:
    """Return the (5m, 1h) cache-write split of `cacheDetails`, or (None, None).

    The split is trusted only when every entry has a known TTL and a count, and
    the counts add up to the reported cache writes. A malformed `cacheDetails`
    leaves the split unknown rather than failing the record, because the
    billable total does not depend on it.
    """
    if cache_creation is None or not isinstance(details, list) or not details:
        return None, None

    sums = dict.fromkeys(_CACHE_TTLS, 0)
    for entry in details:
        if not isinstance(entry, dict):
            return None, None
        ttl = entry.get("ttl")
        count = entry.get("inputTokens")
        if ttl not in sums or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return None, None
        sums[ttl] += count

    if sums["5m"] + sums["1h"] != cache_creation:
        return None, None
    return sums["5m"], sums["1h"]


def invocation_metrics_usage(metrics: dict[str, Any]) -> Usage:
    """Normalize `amazon-bedrock-invocationMetrics` (Bedrock's billed counts) into a `Usage`."""
    return Usage(
        input_tokens=non_negative(metrics.get("inputTokenCount"), "inputTokenCount"),
        cached_input_tokens=non_negative(
            metrics.get("cacheReadInputTokenCount"), "cacheReadInputTokenCount"
        ),
        cache_creation_tokens=non_negative(
            metrics.get("cacheWriteInputTokenCount"), "cacheWriteInputTokenCount"
        ),
        output_tokens=non_negative(metrics.get("outputTokenCount"), "outputTokenCount"),
        raw={_INVOCATION_METRICS: metrics},
    )


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(name).lower(): value for name, value in headers.items()}


def header_usage(headers: Mapping[str, str]) -> Usage | None:
    """Return the usage in InvokeModel's token-count headers, or None when they are absent.

    `headers` may use any letter case. A count that is not a decimal integer
    raises `PayloadError`.
    """
    lowered = _lower_keys(headers)
    found = {name: lowered[name] for name in HEADER_TOKEN_COUNTS if name in lowered}
    if not found:
        return None

    counts: dict[str, int] = {}
    for name, value in found.items():
        text = str(value).strip()
        if not text.isdecimal():
            raise PayloadError(f"header {name} is not a token count: {value!r}")
        counts[HEADER_TOKEN_COUNTS[name]] = int(text)
    return Usage(**counts, raw={"headers": found})


# --- Model-family bodies ---------------------------------------------------


class _AnthropicMessage(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None


class _NovaMetadata(msgspec.Struct):
    usage: dict[str, Any] | None = None


class _TitanResult(msgspec.Struct):
    tokenCount: Any = None


class _ModelBody(msgspec.Struct, rename={"invocation_metrics": _INVOCATION_METRICS}):
    """An InvokeModel body or one decoded stream chunk, with only the fields read here."""

    type: str | None = None
    id: str | None = None
    model: str | None = None
    message: Any = None
    """Anthropic `message_start` carries an object here; error bodies carry a string."""
    usage: dict[str, Any] | None = None
    metadata: _NovaMetadata | None = None
    invocation_metrics: dict[str, Any] | None = None
    inputTextTokenCount: Any = None
    totalOutputTextTokenCount: Any = None
    results: list[_TitanResult] | None = None
    prompt_token_count: Any = None
    generation_token_count: Any = None


class _PayloadPart(msgspec.Struct):
    bytes: str | None = None


class _ConverseBody(msgspec.Struct, rename={"service_tier": "serviceTier"}):
    """A Converse body or a ConverseStream `metadata` event payload."""

    usage: dict[str, Any] | None = None
    service_tier: dict[str, Any] | None = None


_model_body = msgspec.json.Decoder(_ModelBody)
_payload_part = msgspec.json.Decoder(_PayloadPart)
_converse_body = msgspec.json.Decoder(_ConverseBody)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes, what: str) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"{what} is not valid: {exc}") from exc


def _usage_family(usage: dict[str, Any]) -> Family | None:
    if "input_tokens" in usage or "output_tokens" in usage:
        return "anthropic"
    if "inputTokens" in usage or "outputTokens" in usage:
        return "nova"
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return "openai"
    return None


def _merge(scratch: dict[str, Any], family: Family, fields: Mapping[str, Any]) -> None:
    """Overwrite the family's counts field by field with the non-null `fields`."""
    scratch["family"] = family
    native: dict[str, Any] = scratch.setdefault("native", {})
    native.update({name: value for name, value in fields.items() if value is not None})


def _read_model_body(body: _ModelBody, out: Extraction) -> bool:
    """Merge the family's counts and identity from one body or stream chunk into `out`.

    Returns whether the body carried any counts, so that callers normalize the
    usage again only then (most stream chunks are text deltas without counts).
    """
    scratch = out.scratch
    counted = False

    if body.type == "message_start" and isinstance(body.message, dict):
        message = _to_message(body.message)
        out.response_model = message.model or out.response_model
        if out.response_id is None:
            out.response_id = message.id
        if message.usage is not None:
            _merge(scratch, "anthropic", message.usage)
            counted = True
    elif body.type == "message" and out.response_id is None:  # an Anthropic body
        out.response_id = body.id
    if body.type == "message" and body.model is not None:
        out.response_model = body.model

    if body.usage is not None:
        family = _usage_family(body.usage)
        if family is not None:
            _merge(scratch, family, body.usage)
            counted = True
    if body.metadata is not None and body.metadata.usage is not None:
        _merge(scratch, "nova", body.metadata.usage)
        counted = True

    if (
        body.inputTextTokenCount is not None
        or body.totalOutputTextTokenCount is not None
        or body.results is not None
    ):
        titan: dict[str, Any] = {
            "inputTextTokenCount": body.inputTextTokenCount,
            "totalOutputTextTokenCount": body.totalOutputTextTokenCount,
        }
        if body.results is not None:
            titan["results[].tokenCount"] = [result.tokenCount for result in body.results]
        _merge(scratch, "titan", titan)
        counted = True

    if body.prompt_token_count is not None or body.generation_token_count is not None:
        _merge(
            scratch,
            "llama",
            {
                "prompt_token_count": body.prompt_token_count,
                "generation_token_count": body.generation_token_count,
            },
        )
        counted = True

    if body.invocation_metrics is not None:
        scratch["bedrock"] = invocation_metrics_usage(body.invocation_metrics)
        counted = True
    return counted


def _to_message(value: dict[str, Any]) -> _AnthropicMessage:
    try:
        return msgspec.convert(value, _AnthropicMessage)
    except msgspec.ValidationError as exc:
        raise PayloadError(f"message_start message is not valid: {exc}") from exc


def _family_usage(family: Family, native: dict[str, Any]) -> Usage:
    """Normalize the merged counts of one model family into a `Usage`."""
    if family == "anthropic":
        return messages_usage(dict(native))
    if family == "nova":
        return converse_usage(dict(native))
    if family == "openai":
        return Usage(
            input_tokens=non_negative(native.get("prompt_tokens"), "prompt_tokens"),
            output_tokens=non_negative(native.get("completion_tokens"), "completion_tokens"),
            total_tokens=non_negative(native.get("total_tokens"), "total_tokens"),
        )
    if family == "llama":
        return Usage(
            input_tokens=non_negative(native.get("prompt_token_count"), "prompt_token_count"),
            output_tokens=non_negative(
                native.get("generation_token_count"), "generation_token_count"
            ),
        )
    output = non_negative(native.get("totalOutputTextTokenCount"), "totalOutputTextTokenCount")
    results = native.get("results[].tokenCount")
    if output is None and isinstance(results, list) and results:
        counts = [non_negative(count, "results[].tokenCount") for count in results]
        output = None if None in counts else sum(count for count in counts if count is not None)
    return Usage(
        input_tokens=non_negative(native.get("inputTextTokenCount"), "inputTextTokenCount"),
        output_tokens=output,
    )


def _publish(out: Extraction) -> None:
    """Set `out.usage` from Bedrock's report when there is one, else from the family's counts."""
    scratch = out.scratch
    bedrock: Usage | None = scratch.get("bedrock")
    native: dict[str, Any] | None = scratch.get("native")
    family: Family | None = scratch.get("family")

    family_usage: Usage | None = None
    if native and family is not None:
        try:
            family_usage = _family_usage(family, native)
        except PayloadError:
            if bedrock is None:
                raise
            # The family's counts are informational once Bedrock reported its own.

    if bedrock is None:
        if family_usage is not None:
            family_usage.raw = {"body": dict(native or {})}
            out.usage = family_usage
        return

    raw = dict(bedrock.raw)
    if native:
        raw["body"] = dict(native)
    if family_usage is not None:
        mismatch = {
            name: {"bedrock": getattr(bedrock, name), "model": getattr(family_usage, name)}
            for name in _COMPARED_CLASSES
            if getattr(bedrock, name) is not None
            and getattr(family_usage, name) is not None
            and getattr(bedrock, name) != getattr(family_usage, name)
        }
        if mismatch:
            raw["mismatch"] = mismatch
    split_5m, split_1h = _family_cache_split(bedrock, family_usage)
    out.usage = msgspec.structs.replace(
        bedrock, cache_creation_5m_tokens=split_5m, cache_creation_1h_tokens=split_1h, raw=raw
    )


def _family_cache_split(bedrock: Usage, family: Usage | None) -> tuple[int | None, int | None]:
    """Return the family's 5m/1h cache-write split when it adds up to Bedrock's cache writes.

    Bedrock's headers and invocation metrics report cache writes without a TTL
    split, while Anthropic bodies split them (`usage.cache_creation`).
    """
    if family is None or bedrock.cache_creation_tokens is None:
        return None, None
    split_5m, split_1h = family.cache_creation_5m_tokens, family.cache_creation_1h_tokens
    if split_5m is None or split_1h is None or split_5m + split_1h != bedrock.cache_creation_tokens:
        return None, None
    return split_5m, split_1h


# --- Shared by both extractors ----------------------------------------------


def _read_headers(headers: Mapping[str, str], out: Extraction) -> dict[str, str]:
    lowered = _lower_keys(headers)
    request_id = lowered.get(_REQUEST_ID_HEADER)
    if request_id:
        out.response_id = request_id
    error_type = lowered.get(_ERROR_TYPE_HEADER)
    if error_type:
        # "ValidationException:http://internal.amazon.com/coral/..." names the type first.
        out.error = error_type.split(":", 1)[0]
    tier = lowered.get(_SERVICE_TIER_HEADER)
    if tier:
        out.service_tier = tier
    return lowered


def _stream_exception(message: EventStreamMessage, out: Extraction) -> bool:
    """Record an `exception` or `error` frame; return whether `message` was one."""
    kind = message.headers.get(":message-type", "event")
    if kind == "exception":
        label = message.headers.get(":exception-type")
    elif kind == "error":
        label = message.headers.get(":error-code")
    else:
        return False
    out.error = label if isinstance(label, str) and label else str(kind)
    out.finished = True
    return True


def _not_sse(event: ServerSentEvent) -> None:
    raise PayloadError(
        f"Bedrock responses are AWS event streams, not server-sent events "
        f"(got an SSE event of type {event.event!r})"
    )


# --- Extractors ---------------------------------------------------------------


class ConverseExtractor:
    """Extract usage from Converse bodies and ConverseStream `metadata` events."""

    end_marker = True
    """A ConverseStream that ends before its `metadata` event was cut short."""

    def on_headers(self, headers: Mapping[str, str], out: Extraction) -> None:
        _read_headers(headers, out)

    def on_json(self, body: bytes, out: Extraction) -> None:
        self._read_usage(_decode(_converse_body, body, "Converse body"), out)

    def on_message(self, message: EventStreamMessage, out: Extraction) -> None:
        if _stream_exception(message, out):
            return
        if message.headers.get(":event-type") != "metadata":
            return
        self._read_usage(_decode(_converse_body, message.payload, "metadata event"), out)
        out.finished = True

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        _not_sse(event)

    def _read_usage(self, body: _ConverseBody, out: Extraction) -> None:
        tier = (body.service_tier or {}).get("type")
        if isinstance(tier, str):
            out.service_tier = tier
        if body.usage is not None:
            out.usage = converse_usage(body.usage)
            out.terminal = True


class InvokeModelExtractor:
    """Extract usage from InvokeModel headers and bodies, and from response-stream chunks."""

    end_marker = True
    """A response stream that ends before `amazon-bedrock-invocationMetrics` was cut short."""

    def on_headers(self, headers: Mapping[str, str], out: Extraction) -> None:
        lowered = _read_headers(headers, out)
        usage = header_usage(lowered)
        if usage is not None:
            out.scratch["bedrock"] = usage
            _publish(out)
            out.terminal = True

    def on_json(self, body: bytes, out: Extraction) -> None:
        try:
            decoded: _ModelBody = _decode(_model_body, body, "InvokeModel body")
        except PayloadError:
            if "bedrock" in out.scratch:
                # The headers already gave the usage; an image or other non-JSON
                # body only means there are no family counts to compare.
                return
            raise
        if _read_model_body(decoded, out):
            _publish(out)
        out.terminal = out.terminal or out.usage is not None

    def on_message(self, message: EventStreamMessage, out: Extraction) -> None:
        if _stream_exception(message, out):
            return
        if message.headers.get(":event-type") != "chunk":
            return

        part: _PayloadPart = _decode(_payload_part, message.payload, "chunk event")
        if part.bytes is None:
            return
        try:
            inner = base64.b64decode(part.bytes, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PayloadError(
                f"chunk bytes are not valid base64 ({len(part.bytes)} characters): {exc}"
            ) from exc

        if _read_model_body(_decode(_model_body, inner, "chunk payload"), out):
            _publish(out)
        if "bedrock" in out.scratch:
            out.terminal = True
            out.finished = True

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        _not_sse(event)
