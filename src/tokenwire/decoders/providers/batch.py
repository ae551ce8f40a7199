"""Batch result files: OpenAI (and Azure) batch output, Anthropic Message Batches results.

Takes one line at a time of a JSON Lines body (the body decoder splits it):

- OpenAI `GET /v1/files/{id}/content` of a batch output or error file: each
  line is `{"id", "custom_id", "response": {"status_code", "body"}, "error"}`,
  and a successful `body` is a Chat Completions, Responses or embeddings reply
  with its own `usage`.
- Anthropic `GET /v1/messages/batches/{id}/results`: each line is
  `{"custom_id", "result": {"type", "message"}}`, and a `succeeded` message has
  its own `usage`.

How a file is recorded: one download is one exchange, and it gets one record
(`batch=True`, the file or batch id as its response id). Each line's usage is
normalized with its own API's rules and the disjoint classes are summed over
the lines, which is exact because the classes are additive. `raw` keeps, per
model, the number of lines and the sum of every numeric field of their usage
objects, unknown fields included, plus the number of failed lines. Per-line
response ids are not kept; the file itself has them.
NOTE: a file whose lines name several models gets the first model as the
record's model; the per-model sums in `raw` are what prices it correctly.

A file that is not a batch result (training data, an uploaded document) is
recognised from its first line and marked `discard`, so that no usage record
is made for it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...sse import ServerSentEvent
from ...usage import Usage
from ..base import Extraction, PayloadError
from .anthropic import messages_usage
from .openai import chat_usage
from .openai_responses import responses_usage

__all__ = ["BatchResultsExtractor", "sum_usage"]

_COUNT_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "total_tokens",
)


class _Body(msgspec.Struct):
    model: str | None = None
    usage: dict[str, Any] | None = None


class _Response(msgspec.Struct):
    status_code: int | None = None
    body: _Body | None = None


class _Result(msgspec.Struct):
    type: str | None = None
    message: _Body | None = None


class _Line(msgspec.Struct):
    custom_id: str | None = None
    response: _Response | None = None
    result: _Result | None = None
    error: Any = None


_decoder = msgspec.json.Decoder(_Line)


def sum_usage(total: Usage | None, part: Usage) -> Usage:
    """Return the class-by-class sum of two usages (`None` where both are `None`)."""
    if total is None:
        return Usage(**{name: getattr(part, name) for name in _COUNT_FIELDS})
    summed: dict[str, int | None] = {}
    for name in _COUNT_FIELDS:
        left, right = getattr(total, name), getattr(part, name)
        if right is None:
            summed[name] = left
        elif left is None:
            summed[name] = right
        else:
            summed[name] = left + right
    return Usage(**summed, raw=total.raw)


def _add_numbers(total: dict[str, Any], raw: dict[str, Any]) -> None:
    """Add every numeric leaf of `raw` into `total`, recursing into objects."""
    for key, value in raw.items():
        if isinstance(value, bool) or value is None:
            total.setdefault(key, value)
        elif isinstance(value, int | float):
            current = total.get(key)
            total[key] = value + current if isinstance(current, int | float) else value
        elif isinstance(value, dict):
            nested = total.get(key)
            if not isinstance(nested, dict):
                nested = total[key] = {}
            _add_numbers(nested, value)
        else:
            # Strings and lists cannot be summed; the first line's value is kept.
            total.setdefault(key, value)


def _line_usage(body: _Body, provider_shape: str) -> Usage:
    raw = body.usage
    assert raw is not None
    if provider_shape == "anthropic":
        return messages_usage(raw)
    if "prompt_tokens" in raw:
        return chat_usage(raw)
    return responses_usage(raw)


class BatchResultsExtractor:
    """Sum the usage of every line of a batch result file into one record."""

    end_marker = False

    def on_json(self, body: bytes, out: Extraction) -> None:
        for line in body.splitlines():
            if line.strip():
                self._read_line(line.strip(), out)

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        self._read_line(event.data, out)

    def _read_line(self, data: bytes, out: Extraction) -> None:
        if out.discard:
            return
        state: dict[str, Any] = out.scratch
        first = "lines" not in state
        try:
            line = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            if first:
                out.discard = True
                return
            raise PayloadError(f"batch result line is not valid: {exc}") from exc
        if first:
            if line.custom_id is None or (
                line.response is None and line.result is None and line.error is None
            ):
                out.discard = True
                return
            state["lines"] = 0
            state["failed"] = 0
            state["models"] = {}
        state["lines"] += 1

        body, shape = self._successful_body(line)
        if body is None or body.usage is None:
            if body is None:
                state["failed"] += 1
            self._update_raw(out)
            return

        usage = _line_usage(body, shape)
        model = body.model or "unknown"
        if out.response_model is None and body.model:
            out.response_model = body.model
        per_model = state["models"].setdefault(model, {"lines": 0, "usage": {}})
        per_model["lines"] += 1
        _add_numbers(per_model["usage"], body.usage)

        out.usage = sum_usage(out.usage, usage)
        self._update_raw(out)

    @staticmethod
    def _successful_body(line: _Line) -> tuple[_Body | None, str]:
        if line.result is not None:
            if line.result.type == "succeeded":
                return line.result.message, "anthropic"
            return None, "anthropic"
        response = line.response
        if line.error is not None or response is None or response.body is None:
            return None, "openai"
        if response.status_code is not None and response.status_code >= 400:
            return None, "openai"
        return response.body, "openai"

    @staticmethod
    def _update_raw(out: Extraction) -> None:
        state = out.scratch
        raw = {"lines": state["lines"], "failed_lines": state["failed"], "models": state["models"]}
        if out.usage is None:
            if state["failed"] == state["lines"]:
                out.error = "all_requests_failed"
            return
        out.error = None
        out.usage.raw = raw
