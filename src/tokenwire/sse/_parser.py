"""Sans-I/O parser for `text/event-stream` bodies (server-sent events).

Contract:

- `SSEParser.feed(data)` takes the next bytes of the body, split anywhere, and returns the
  events that those bytes completed, in stream order. An empty list means that more bytes are
  needed. The incomplete last line stays buffered, and `pending_bytes` reports its size.
- `SSEParser.close()` marks the end of the body and returns the events still pending (see the
  deviation below). A second call returns an empty list.
- `feed()` after `close()` raises `SSEParserClosedError`. An incomplete line plus undispatched
  data of more than `max_event_bytes` raises `SSEEventTooLargeError` and closes the parser. Its
  `events` attribute contains the events that the same call completed. Both errors are
  subclasses of `tokenwire.errors.DecodeError`. No other input raises: lines that are not valid
  SSE are ignored, as the standard requires, and invalid UTF-8 is passed through.

Parsing follows "Interpreting an event stream" in the WHATWG HTML Living Standard
(https://html.spec.whatwg.org/multipage/server-sent-events.html): lines end in CRLF, LF or CR,
one leading UTF-8 BOM is stripped, lines starting with ":" are comments, and a blank line
dispatches the event unless its data buffer is empty. These points differ from the standard:

- At `close()`, an event whose data buffer is not empty is returned although the blank line that
  dispatches it never arrived (the standard discards it). Providers that omit the final blank line
  still sent usage that must be billed. An incomplete last line is processed as a line first.
- `data` stays bytes, as received, so that the JSON decoder reads it without a decode and
  re-encode. `event` and `id` values are decoded as UTF-8 with errors="replace".
- `retry` is reported on the event whose block set it, because a parser has no connection to
  apply it to. A `retry` in a block without data is therefore not reported. A `retry` value needs
  at least one digit, and values of more than `_MAX_RETRY_DIGITS` digits are ignored.
- `id` is None while the last event ID buffer is empty, whether no `id` field came yet or an
  empty one reset it.

Cost is linear in the bytes fed. The buffer only ever holds an incomplete line, which contains
no CR or LF, so each byte is searched once, when its chunk arrives. A chunk of complete
LF-terminated lines without CR, the usual shape of LLM streams, is split once and needs no buffer.
"""

from __future__ import annotations

from typing import Final, NoReturn

import msgspec

from tokenwire.errors import ConfigurationError, DecodeError

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "SSEDecodeError",
    "SSEEventTooLargeError",
    "SSEParser",
    "SSEParserClosedError",
    "ServerSentEvent",
]

# NOTE: an estimate, not a measured maximum. The largest events of LLM APIs are final events that
# repeat the whole response, which can include base64 images of several MiB. The cap leaves room
# for a few such images and still stops a body that never ends its line or its event.
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024 * 1024

# 640 is the smallest limit that sys.set_int_max_str_digits() accepts (Python 3.11), so int() on a
# value this long never raises, whatever the process has configured. Real reconnection times have
# a few digits.
_MAX_RETRY_DIGITS: Final = 640

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_LF: Final = b"\n"
_CR_BYTE: Final = 0x0D
_LF_BYTE: Final = 0x0A


class SSEDecodeError(DecodeError):
    """Base class of the errors raised by `SSEParser`."""


class SSEParserClosedError(SSEDecodeError):
    """`feed()` called after `close()` or after an earlier error closed the parser."""


class SSEEventTooLargeError(SSEDecodeError):
    """An incomplete line plus undispatched data larger than the parser's `max_event_bytes`.

    `events` contains the events that the same `feed()` call completed before the limit was
    exceeded, so that a caller can still use them.
    """

    def __init__(self, message: str, events: list[ServerSentEvent] | None = None) -> None:
        super().__init__(message)
        self.events: list[ServerSentEvent] = [] if events is None else events


class ServerSentEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event.

    `data` is the event's `data` lines joined with LF, as bytes. `id` is the last event ID at
    dispatch time, which carries over from earlier events, and None while it is empty. `retry` is
    the reconnection time in milliseconds when this event's block contained a valid `retry` field.
    """

    event: str = "message"
    data: bytes = b""
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Incremental parser that turns event-stream bytes into `ServerSentEvent`s."""

    __slots__ = (
        "_at_stream_start",
        "_buffer",
        "_close_reason",
        "_closed",
        "_data_lines",
        "_data_size",
        "_event_type",
        "_last_event_id",
        "_max_event_bytes",
        "_needs_preparation",
        "_retry",
        "_skip_leading_lf",
    )

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ConfigurationError(f"max_event_bytes must be at least 1, got {max_event_bytes}")
        self._max_event_bytes = max_event_bytes

        # Bytes of the incomplete last line. It never contains CR or LF.
        self._buffer = bytearray()
        # True until the first 3 bytes of the stream have been checked for a BOM.
        self._at_stream_start = True
        # True when the last chunk ended with CR, so that an LF starting the next chunk completes
        # that CRLF instead of ending an empty line.
        self._skip_leading_lf = False
        # True when the next chunk needs `_prepare()`: at stream start, after a CR at the end of
        # a chunk and after close. One flag keeps the common case to a single check.
        self._needs_preparation = True

        # Field buffers of the event being built. `_data_size` counts the data buffer's bytes.
        self._data_lines: list[bytes] = []
        self._data_size = 0
        self._event_type = "message"
        self._last_event_id: str | None = None
        self._retry: int | None = None

        self._closed = False
        self._close_reason = "feed() after close()"

    @property
    def pending_bytes(self) -> int:
        """Number of buffered bytes that do not yet form a complete line."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next bytes of the body and return the events that they complete."""
        if self._needs_preparation or data.__class__ is not bytes:
            data = self._prepare(data)

        if _CR_BYTE in data:
            lines, incomplete_line = self._split_lines_with_cr(data)
        else:
            lines = data.split(_LF)
            incomplete_line = lines.pop()

        buffer = self._buffer
        events: list[ServerSentEvent] = []
        if lines:
            if buffer:
                buffer += lines[0]
                lines[0] = bytes(buffer)
                del buffer[:]
            self._process_lines(lines, events)

        if incomplete_line:
            buffer += incomplete_line
        if len(buffer) + self._data_size > self._max_event_bytes:
            self._fail_too_large(events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """Mark the end of the body and return the pending event, if it has data.

        Feeding the two line ends that the body lacked processes an incomplete last line and then
        dispatches the pending event. The standard discards an event that no blank line
        dispatched, but its data may hold usage that must be billed.
        """
        if self._closed:
            return []

        self._skip_leading_lf = False
        events = self.feed(b"\n\n")

        self._closed = True
        self._needs_preparation = True
        return events

    def _prepare(self, data: bytes) -> bytes:
        """Return `data` as bytes with a leading BOM or the LF of a split CRLF removed.

        Raises `SSEParserClosedError` after close. Returns b"" while the stream so far is a proper
        prefix of the BOM, so that a BOM split over chunks is still recognized. Those bytes wait
        in the buffer meanwhile.
        """
        if self._closed:
            raise SSEParserClosedError(self._close_reason)
        if data.__class__ is not bytes:
            data = bytes(data)

        if self._at_stream_start:
            self._buffer += data
            head = bytes(self._buffer)
            if len(head) < len(_UTF8_BOM) and _UTF8_BOM.startswith(head):
                return b""
            self._at_stream_start = False
            del self._buffer[:]
            data = head[len(_UTF8_BOM) :] if head.startswith(_UTF8_BOM) else head

        if self._skip_leading_lf and data:
            self._skip_leading_lf = False
            if data[0] == _LF_BYTE:
                data = data[1:]

        self._needs_preparation = self._at_stream_start or self._skip_leading_lf
        return data

    def _split_lines_with_cr(self, data: bytes) -> tuple[list[bytes], bytes]:
        """Split a chunk that contains CR into complete lines and the incomplete last line.

        `bytes.splitlines()` ends lines at CRLF, LF and CR, which are exactly the SSE line ends.
        A CR at the end of the chunk ends its line now, and `_prepare()` drops the LF that may
        start the next chunk.
        """
        lines = data.splitlines()
        last_byte = data[-1]
        if last_byte == _CR_BYTE:
            self._skip_leading_lf = True
            self._needs_preparation = True
            return lines, b""
        if last_byte == _LF_BYTE:
            return lines, b""
        return lines, lines.pop()

    def _process_lines(self, lines: list[bytes], events: list[ServerSentEvent]) -> None:
        """Apply complete lines (without their line ends) and append the events dispatched."""
        data_lines = self._data_lines
        data_size = self._data_size

        for line in lines:
            if not line:
                if data_lines:
                    events.append(
                        ServerSentEvent(
                            self._event_type,
                            _LF.join(data_lines),
                            self._last_event_id,
                            self._retry,
                        )
                    )
                    data_lines = []
                    data_size = 0
                self._event_type = "message"
                self._retry = None

            # The two most frequent lines of LLM streams skip the generic field split.
            elif line.startswith(b"data: "):
                data_lines.append(line[6:])
                data_size += len(line) - 5
            elif line.startswith(b"event: "):
                self._event_type = line[7:].decode("utf-8", "replace") or "message"

            else:
                field = _split_field(line)
                if field is None:
                    continue
                name, value = field
                if name == b"data":
                    data_lines.append(value)
                    data_size += len(value) + 1
                else:
                    self._apply_field(name, value)

        self._data_lines = data_lines
        self._data_size = data_size

    def _apply_field(self, name: bytes, value: bytes) -> None:
        """Apply an `event`, `id` or `retry` field and ignore any other name."""
        if name == b"event":
            self._event_type = value.decode("utf-8", "replace") or "message"

        elif name == b"id":
            if b"\x00" not in value:
                self._last_event_id = value.decode("utf-8", "replace") or None

        elif name == b"retry" and value.isdigit():
            # bytes.isdigit() accepts ASCII digits only and is False for b"".
            significant_digits = value.lstrip(b"0")
            if len(significant_digits) <= _MAX_RETRY_DIGITS:
                self._retry = int(significant_digits) if significant_digits else 0

    def _fail_too_large(self, events: list[ServerSentEvent]) -> NoReturn:
        pending_size = len(self._buffer) + self._data_size
        message = (
            f"SSE event too large: {pending_size} bytes pending without a dispatch "
            f"({len(self._buffer)} in an incomplete line, {self._data_size} of data), "
            f"more than max_event_bytes={self._max_event_bytes}"
        )
        self._closed = True
        self._needs_preparation = True
        self._close_reason = f"feed() after the parser failed: {message}"
        self._buffer = bytearray()
        self._data_lines = []
        self._data_size = 0
        raise SSEEventTooLargeError(message, events)


def _split_field(line: bytes) -> tuple[bytes, bytes] | None:
    """Split a non-blank line into field name and value, or return None for a comment.

    A line without a colon is a field name with an empty value. One space after the colon is
    removed from the value.
    """
    colon = line.find(b":")
    if colon < 0:
        return line, b""
    if colon == 0:
        return None

    value_start = colon + 1
    if line.startswith(b" ", value_start):
        value_start += 1
    return line[:colon], line[value_start:]
