"""Sans-I/O splitters for streamed JSON bodies that are not server-sent events.

Two framings are handled:

- `JSONArraySplitter`: one JSON array whose elements arrive over time, as
  Gemini's `streamGenerateContent` sends them without `alt=sse`
  (`[{...}\\n,\\r\\n{...}\\n]`). A body that is a single JSON object (an error
  reply) is returned as one element.
- `LineSplitter`: newline-delimited JSON (NDJSON, JSON Lines), as Cohere's v1
  chat stream and batch result files are sent.

Contract, shared by both: `feed(data)` takes the next bytes, split anywhere,
and returns the complete elements (or lines) those bytes finished, as `bytes`,
in order. An empty list means more bytes are needed. `close()` marks the end
of the body and returns what is still pending; after it, `feed()` raises
`JSONStreamClosedError`. The splitters only find element boundaries: they
never decode JSON, so an element that is not valid JSON is found here and
rejected by whoever decodes it.

Errors are `tokenwire.errors.DecodeError` subclasses: `JSONStreamTooLargeError`
for an element or line past the size cap, `JSONArrayError` for bytes that
cannot belong to a JSON array stream or a body that ends inside an element
(the message gives the byte counts). After an error the splitter is closed.

Cost is linear in the bytes fed: buffers are `bytearray`s consumed with `del`,
and each scan resumes where the previous one stopped.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import DecodeError

__all__ = [
    "MAX_ELEMENT_BYTES",
    "JSONArrayError",
    "JSONArraySplitter",
    "JSONStreamClosedError",
    "JSONStreamError",
    "JSONStreamTooLargeError",
    "LineSplitter",
]

# NOTE: an estimate, not a measured maximum. The largest elements are Gemini
# image-generation chunks and batch result lines that carry base64 images of a
# few MiB each. The cap leaves room for several of them, and it bounds the memory
# that a body which never closes its element can take. The SSE parser uses the same cap.
MAX_ELEMENT_BYTES: Final = 64 * 1024 * 1024

_WHITESPACE: Final = frozenset(b" \t\r\n")
# Inside an element, outside strings: the bytes that change nesting or open a string.
_STRUCTURAL: Final = re.compile(rb'["{}\[\]]')
# Inside a string: the bytes that may end it.
_STRING_END: Final = re.compile(rb'["\\]')


class JSONStreamError(DecodeError):
    """Base class of the errors raised by the JSON stream splitters."""


class JSONStreamClosedError(JSONStreamError):
    """`feed()` called after `close()` or after an earlier error closed the splitter."""


class JSONStreamTooLargeError(JSONStreamError):
    """An element or line larger than the splitter's cap."""


class JSONArrayError(JSONStreamError):
    """Bytes that cannot be part of a JSON array stream, or a body cut inside an element."""


class JSONArraySplitter:
    """Incremental splitter that returns the top-level elements of one JSON array."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_consumed",
        "_depth",
        "_escaped",
        "_in_string",
        "_max_element_bytes",
        "_scan",
        "_state",
    )

    def __init__(self, *, max_element_bytes: int = MAX_ELEMENT_BYTES) -> None:
        if max_element_bytes < 1:
            raise ValueError(f"max_element_bytes must be at least 1, got {max_element_bytes}")
        self._max_element_bytes = max_element_bytes
        self._buffer = bytearray()
        self._closed = False
        self._consumed = 0
        """Bytes deleted from the front of the buffer so far, for error messages."""
        self._state = "start"
        """`start` (before `[` or `{`), `between` (inside the array, outside any
        element), `element` (inside an element), `object` (inside a top-level
        object that is the whole body), `done` (after the closing bracket)."""
        self._scan = 0
        """Buffer offset where the next scan resumes."""
        self._depth = 0
        self._in_string = False
        self._escaped = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an element not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Return the elements completed by `data`."""
        if self._closed:
            raise JSONStreamClosedError("feed() called on a closed JSON array splitter")
        self._buffer += data
        elements: list[bytes] = []
        try:
            self._split(elements)
        except JSONStreamError:
            self._closed = True
            raise
        return elements

    def close(self) -> list[bytes]:
        """End the body; raise `JSONArrayError` when it stopped before the array closed."""
        if self._closed:
            return []
        self._closed = True
        if self._state in ("element", "object"):
            raise JSONArrayError(
                f"JSON array stream ended inside an element: {len(self._buffer)} bytes of it "
                f"received after the first {self._consumed} bytes of the body"
            )
        if self._state == "between":
            raise JSONArrayError(
                f"JSON array stream ended after {self._consumed} bytes without its closing ']'"
            )
        return []

    def _split(self, elements: list[bytes]) -> None:
        buffer = self._buffer
        position = self._scan
        while position < len(buffer):
            state = self._state
            if state in ("element", "object"):
                end = self._scan_element(position)
                if end is None:
                    position = len(buffer)
                    break
                elements.append(bytes(buffer[:end]))
                del buffer[:end]
                self._consumed += end
                position = 0
                self._state = "done" if state == "object" else "between"
                continue

            byte = buffer[position]
            if byte in _WHITESPACE:
                position += 1
                continue
            if state == "start":
                position = self._open(byte, position)
            elif state == "between":
                position = self._between(byte, position)
            else:
                raise JSONArrayError(
                    f"unexpected byte {bytes([byte])!r} after the end of the JSON array "
                    f"at offset {self._consumed + position}"
                )

        if self._state not in ("element", "object"):
            # Only whitespace and separators were left: drop them.
            self._consumed += position
            del buffer[:position]
            position = 0
        elif len(buffer) > self._max_element_bytes:
            raise JSONStreamTooLargeError(
                f"JSON array element exceeds {self._max_element_bytes} bytes "
                f"({len(buffer)} bytes buffered without its end)"
            )
        self._scan = position

    def _open(self, byte: int, position: int) -> int:
        if byte == ord("["):
            self._state = "between"
            return position + 1
        if byte == ord("{"):
            # A single object instead of an array: an error reply.
            return self._start_element(position, "object")
        raise JSONArrayError(
            f"JSON array stream starts with {bytes([byte])!r}, expected '[' or '{{'"
        )

    def _between(self, byte: int, position: int) -> int:
        if byte == ord(","):
            return position + 1
        if byte == ord("]"):
            self._state = "done"
            return position + 1
        if byte in b'{["':
            return self._start_element(position, "element")
        raise JSONArrayError(
            f"unexpected byte {bytes([byte])!r} between JSON array elements "
            f"at offset {self._consumed + position}"
        )

    def _start_element(self, position: int, state: str) -> int:
        # Drop the separators before the element so that it starts the buffer.
        self._consumed += position
        del self._buffer[:position]
        self._state = state
        self._depth = 0
        self._in_string = False
        self._escaped = False
        return 0

    def _scan_element(self, position: int) -> int | None:
        """Return the offset just past the element, or None if it is not complete yet."""
        buffer = self._buffer
        while True:
            if self._in_string:
                if self._escaped:
                    if position >= len(buffer):
                        return None
                    self._escaped = False
                    position += 1
                match = _STRING_END.search(buffer, position)
                if match is None:
                    return None
                position = match.end()
                if match.group() == b"\\":
                    self._escaped = True
                else:
                    self._in_string = False
                    if self._depth == 0:
                        # A top-level string element ends with its quote.
                        return position
                continue

            match = _STRUCTURAL.search(buffer, position)
            if match is None:
                return None
            position = match.end()
            token = match.group()
            if token == b'"':
                self._in_string = True
            elif token in (b"{", b"["):
                self._depth += 1
            else:
                # Brackets are only counted, not matched: a mismatched pair is
                # invalid JSON, which the element's decoder rejects.
                self._depth -= 1
                if self._depth == 0:
                    return position


class LineSplitter:
    """Incremental splitter that returns the non-blank lines of an NDJSON body.

    Lines end in LF; a CR before the LF is removed. At `close()` a last line
    without its LF is returned too, because a provider that omits the final
    newline still sent that line.
    """

    __slots__ = ("_buffer", "_closed", "_max_line_bytes", "_scan")

    def __init__(self, *, max_line_bytes: int = MAX_ELEMENT_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be at least 1, got {max_line_bytes}")
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._closed = False
        self._scan = 0
        """Buffer offset where the search for the next LF resumes."""

    @property
    def pending_bytes(self) -> int:
        """Bytes of a line not yet ended."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Return the non-blank lines completed by `data`, without their line ends."""
        if self._closed:
            raise JSONStreamClosedError("feed() called on a closed line splitter")
        buffer = self._buffer
        buffer += data
        lines: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n", max(start, self._scan))
            if end < 0:
                break
            self._add(lines, buffer[start:end])
            start = end + 1
        del buffer[:start]
        self._scan = len(buffer)
        if len(buffer) > self._max_line_bytes:
            self._closed = True
            raise JSONStreamTooLargeError(
                f"NDJSON line exceeds {self._max_line_bytes} bytes "
                f"({len(buffer)} bytes buffered without a line end)"
            )
        return lines

    def close(self) -> list[bytes]:
        """End the body and return its last line if it had no line end."""
        if self._closed:
            return []
        self._closed = True
        lines: list[bytes] = []
        self._add(lines, self._buffer)
        self._buffer.clear()
        return lines

    @staticmethod
    def _add(lines: list[bytes], line: bytearray) -> None:
        text = bytes(line).strip()
        if text:
            lines.append(text)
