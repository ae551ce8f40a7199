"""Shared parts of provider extractors: the per-response accumulator and the extractor protocol.

An extractor is stateless; everything it learns about one response goes into
that response's `Extraction`. Usage is overwritten as events arrive, never
summed, because every provider that streams usage sends cumulative values.
Extractors do no I/O and raise `DecodeError` subclasses on malformed payloads.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from ..errors import DecodeError
from ..sse import ServerSentEvent
from ..usage import Usage

__all__ = ["Extraction", "Extractor", "PayloadError", "non_negative", "usage_object"]


class PayloadError(DecodeError):
    """A provider payload that is not the JSON shape its API documents."""


class Extraction:
    """Facts learned about one response so far."""

    __slots__ = (
        "discard",
        "error",
        "finished",
        "response_id",
        "response_model",
        "scratch",
        "service_tier",
        "terminal",
        "usage",
    )

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.service_tier: str | None = None
        self.terminal = False
        """The terminal usage of the response was seen."""
        self.finished = False
        """The provider's own end-of-stream marker was seen (`[DONE]`, `message_stop`)."""
        self.error: str | None = None
        """An error the provider reported in the body (type or code, never its text)."""
        self.scratch: dict[str, Any] = {}
        """Extractor-specific state, such as usage fields merged across events."""
        self.discard = False
        """The body showed that this is not an LLM response after all (a file
        download that is not a batch result), so no record should be made."""


class Extractor(Protocol):
    """Turn one provider API's payloads into an `Extraction`."""

    end_marker: bool
    """Whether the API's streams end with a marker of their own (`[DONE]`,
    `message_stop`); a stream that has one and ends without it was cut short."""

    def on_json(self, body: bytes, out: Extraction) -> None:
        """Read a complete (decompressed) JSON response body."""

    def on_event(self, event: ServerSentEvent, out: Extraction) -> None:
        """Read one server-sent event of a streamed response."""


def non_negative(value: Any, field: str) -> int | None:
    """Return a token count as int, rejecting negatives, booleans and fractions."""
    if type(value) is int and value >= 0:
        # The common case, checked first: `type() is int` excludes bool and int subclasses.
        return value
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"usage field {field!r} is not a number: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise PayloadError(f"usage field {field!r} is not a whole number: {value!r}")
        value = int(value)
    if value < 0:
        raise PayloadError(f"usage field {field!r} is negative: {value}")
    return int(value)


def usage_object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    """Return the nested object `raw[key]` (empty when absent), raising `PayloadError` otherwise."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"usage.{key} is not an object: {value!r}")
    return value


_dict_decoder = msgspec.json.Decoder(dict[str, Any])


def decode_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Decode a JSON object, raising `PayloadError` with `what` in the message."""
    try:
        return _dict_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"{what} is not a JSON object: {exc}") from exc
