"""Sans-I/O parser for server-sent events (`text/event-stream`), as the WHATWG HTML standard
defines them. See `tokenwire.sse._parser` for the contract and the deliberate deviations."""

from __future__ import annotations

from tokenwire.sse._parser import (
    DEFAULT_MAX_EVENT_BYTES,
    ServerSentEvent,
    SSEDecodeError,
    SSEEventTooLargeError,
    SSEParser,
    SSEParserClosedError,
)

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "SSEDecodeError",
    "SSEEventTooLargeError",
    "SSEParser",
    "SSEParserClosedError",
    "ServerSentEvent",
]
