"""Sans-I/O decoder for AWS event-stream framing (`application/vnd.amazon.eventstream`).

Bedrock's streaming operations (ConverseStream, InvokeModelWithResponseStream)
send their events in this binary framing. One frame is::

    total length     uint32, big-endian, counts every byte of the frame
    headers length   uint32, big-endian
    prelude CRC      CRC32 of the 8 bytes above
    headers          `headers length` bytes of encoded headers
    payload          total length - headers length - 16 bytes
    message CRC      CRC32 of every byte of the frame before it

Contract:

- `EventStreamDecoder.feed(data)` takes the next chunk of the body, of any size
  and cut anywhere, and returns the messages that chunk completed, in stream
  order. "Need more bytes" is an empty list. The cost is linear in the input,
  even when the body arrives one byte at a time.
- `EventStreamDecoder.close()` marks the end of the body. It returns nothing
  when the body ended on a frame boundary, and raises `TruncatedFrameError`
  with the byte counts when a partial frame is left over.
- The prelude CRC and the declared lengths are checked as soon as the 12-byte
  prelude is buffered. The message CRC is checked once the whole frame is
  buffered, before its headers are parsed.
- Every failure raises a subclass of `EventStreamError`, whose message names the
  frame (0-based), its offset in the body and the offending values.
- When a chunk completes messages and then hits a bad frame, `feed()` returns
  those messages and the next `feed()` or `close()` raises the error. So no
  message that decoded correctly is lost.
- After an error has been raised the decoder is poisoned: every later `feed()`
  and `close()` raises a new instance of the same class, chained to the first.

The decoder does no I/O and logs nothing. Use one decoder per response body;
it holds no lock, so it must not be shared between threads.
"""

from __future__ import annotations

import datetime
import struct
import uuid
import zlib
from typing import NoReturn, TypeAlias

import msgspec

from ..errors import DecodeError

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "MESSAGE_CRC_LENGTH",
    "MIN_FRAME_LENGTH",
    "PRELUDE_LENGTH",
    "EventStreamDecoder",
    "EventStreamError",
    "EventStreamMessage",
    "FrameLengthError",
    "HeaderError",
    "HeaderValue",
    "MessageChecksumError",
    "PreludeChecksumError",
    "TruncatedFrameError",
]

HeaderValue: TypeAlias = bool | int | bytes | str | datetime.datetime | uuid.UUID

PRELUDE_LENGTH = 12
"""Total length, headers length and prelude CRC: three big-endian uint32."""

MESSAGE_CRC_LENGTH = 4

MIN_FRAME_LENGTH = PRELUDE_LENGTH + MESSAGE_CRC_LENGTH
"""A frame with no headers and an empty payload."""

MAX_HEADERS_LENGTH = 128 * 1024
"""Maximum header block length accepted, 128 KiB.

botocore 1.44 (`botocore/eventstream.py`) enforces the same AWS limit, so no
stream that boto3 can read is rejected here for its size. The cap also bounds
the memory that one declared frame can make the decoder wait for.
"""

MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
"""Maximum payload length accepted, 24 MiB: the AWS limit, enforced by botocore 1.44 too."""

_MAX_CACHED_HEADER_BLOCKS = 32
"""Maximum number of distinct header blocks one decoder keeps parsed.

Bedrock repeats one header block on every InvokeModelWithResponseStream chunk
and sends one per event type in ConverseStream (five or six per response), so
parsing each distinct block once removes most of the per-frame cost. Blocks
seen after the cache is full are parsed every time.
"""

_MAX_CACHED_HEADERS_LENGTH = 1024
"""Maximum length of a cached header block, so the cache keys take at most 32 KiB."""

_PRELUDE = struct.Struct(">III")
_UINT32 = struct.Struct(">I")

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

# Header value type codes. Types 0 and 1 carry no value bytes: the type is the value.
_TYPE_TRUE = 0
_TYPE_FALSE = 1
_TYPE_BYTE_ARRAY = 6
_TYPE_STRING = 7
_TYPE_TIMESTAMP = 8
_TYPE_UUID = 9

# Types whose value is a 2-byte big-endian length followed by that many bytes.
_LENGTH_PREFIXED_TYPES = frozenset({_TYPE_BYTE_ARRAY, _TYPE_STRING})

_TYPE_NAMES = (
    "bool true",
    "bool false",
    "byte",
    "short",
    "integer",
    "long",
    "byte array",
    "string",
    "timestamp",
    "uuid",
)

# Fixed-size value types: type code -> (value size in bytes, big-endian unpacker).
# Timestamps (milliseconds since the epoch) and UUIDs get converted afterwards.
_FIXED_SIZE_TYPES: dict[int, tuple[int, struct.Struct]] = {
    2: (1, struct.Struct(">b")),
    3: (2, struct.Struct(">h")),
    4: (4, struct.Struct(">i")),
    5: (8, struct.Struct(">q")),
    _TYPE_TIMESTAMP: (8, struct.Struct(">q")),
    _TYPE_UUID: (16, struct.Struct("16s")),
}


class EventStreamError(DecodeError):
    """Bytes that are not a valid AWS event stream."""


class PreludeChecksumError(EventStreamError):
    """The CRC32 stored in a prelude does not match its first 8 bytes."""


class MessageChecksumError(EventStreamError):
    """The CRC32 at the end of a frame does not match the frame's bytes."""


class FrameLengthError(EventStreamError):
    """A prelude declares lengths that no valid frame can have, or that exceed the caps."""


class HeaderError(EventStreamError):
    """A header block that cannot be parsed."""


class TruncatedFrameError(EventStreamError):
    """The stream ended inside a frame."""


class EventStreamMessage(msgspec.Struct, frozen=True):
    """One decoded frame.

    Header values keep their wire type: booleans, ints (byte, short, integer
    and long), `bytes` (byte array), `str` (string), an aware UTC `datetime`
    (timestamp) and `uuid.UUID`.
    """

    headers: dict[str, HeaderValue]
    payload: bytes


class EventStreamDecoder:
    """Incremental decoder from body chunks to `EventStreamMessage`s.

    See the module docstring for the contract.
    """

    __slots__ = (
        "_buffer",
        "_buffer_offset",
        "_error",
        "_error_raised",
        "_frame_index",
        "_frame_length",
        "_header_cache",
        "_headers_length",
        "_prelude_crc",
    )

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._buffer_offset = 0
        """Offset in the body of `_buffer[0]`, used in error messages."""
        self._frame_index = 0
        """Index of the frame that starts at `_buffer[0]`."""
        self._frame_length = 0
        """Total length of the buffered frame once its prelude is checked, else 0."""
        self._headers_length = 0
        self._prelude_crc = 0
        self._error: EventStreamError | None = None
        self._error_raised = False
        """`_error` has reached the caller, so later calls raise a chained copy."""
        self._header_cache: dict[bytes, dict[str, HeaderValue]] = {}
        """Parsed header blocks by their bytes. Each message gets its own copy of the dict."""

    @property
    def pending_bytes(self) -> int:
        """Number of bytes fed but not yet returned in a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        """Buffer `data` and return the messages it completed, in stream order."""
        if self._error is not None:
            self._raise_stored_error(self._error)

        buffer = self._buffer
        buffer += data
        available = len(buffer)
        if available < (self._frame_length or PRELUDE_LENGTH):
            return []

        messages: list[EventStreamMessage] = []
        position = 0

        try:
            with memoryview(buffer) as view:
                while True:
                    frame_length = self._frame_length
                    if not frame_length:
                        if available - position < PRELUDE_LENGTH:
                            break
                        frame_length = self._check_prelude(view, position)
                    if available - position < frame_length:
                        break

                    messages.append(self._decode_frame(view, position, frame_length))
                    position += frame_length
                    self._frame_length = 0
                    self._frame_index += 1
        except EventStreamError as error:
            self._error = error
            if not messages:
                self._error_raised = True
                raise
        finally:
            if position:
                del buffer[:position]
                self._buffer_offset += position

        return messages

    def close(self) -> None:
        """Mark the end of the body, raising if it ended inside a frame."""
        if self._error is not None:
            self._raise_stored_error(self._error)

        received = len(self._buffer)
        if not received:
            return

        where = self._describe_frame(0)
        if self._frame_length:
            expected = f"a {self._frame_length}-byte frame"
        else:
            expected = f"a {PRELUDE_LENGTH}-byte prelude"
        error = TruncatedFrameError(
            f"stream ended inside {where}: {received} bytes of {expected} arrived"
        )
        self._error = error
        self._error_raised = True
        raise error

    def _check_prelude(self, view: memoryview, position: int) -> int:
        """Validate the prelude at `position` and return the frame's total length."""
        total_length: int
        headers_length: int
        stored_crc: int
        total_length, headers_length, stored_crc = _PRELUDE.unpack_from(view, position)
        computed_crc = zlib.crc32(view[position : position + 8])
        if computed_crc != stored_crc:
            raise PreludeChecksumError(
                f"prelude checksum mismatch in {self._describe_frame(position)}: "
                f"stored 0x{stored_crc:08x}, computed 0x{computed_crc:08x}"
            )

        if total_length < MIN_FRAME_LENGTH:
            raise FrameLengthError(
                f"total length {total_length} of {self._describe_frame(position)} is below "
                f"the minimum of {MIN_FRAME_LENGTH} bytes (prelude and message CRC)"
            )
        if headers_length > total_length - MIN_FRAME_LENGTH:
            raise FrameLengthError(
                f"headers length {headers_length} of {self._describe_frame(position)} "
                f"exceeds the {total_length - MIN_FRAME_LENGTH} bytes left by its "
                f"total length {total_length}"
            )
        if headers_length > MAX_HEADERS_LENGTH:
            raise FrameLengthError(
                f"headers length {headers_length} of {self._describe_frame(position)} "
                f"exceeds the maximum of {MAX_HEADERS_LENGTH} bytes"
            )
        payload_length = total_length - MIN_FRAME_LENGTH - headers_length
        if payload_length > MAX_PAYLOAD_LENGTH:
            raise FrameLengthError(
                f"payload length {payload_length} of {self._describe_frame(position)} "
                f"exceeds the maximum of {MAX_PAYLOAD_LENGTH} bytes"
            )

        self._frame_length = total_length
        self._headers_length = headers_length
        self._prelude_crc = stored_crc
        return total_length

    def _decode_frame(
        self, view: memoryview, position: int, frame_length: int
    ) -> EventStreamMessage:
        """Check the message CRC of the complete frame at `position`, then decode it."""
        crc_start = position + frame_length - MESSAGE_CRC_LENGTH
        (stored_crc,) = _UINT32.unpack_from(view, crc_start)
        # The prelude CRC is the running CRC32 of the first 8 bytes, so the
        # message CRC continues from it over the rest of the frame.
        computed_crc = zlib.crc32(view[position + 8 : crc_start], self._prelude_crc)
        if computed_crc != stored_crc:
            raise MessageChecksumError(
                f"message checksum mismatch in {self._describe_frame(position)}: "
                f"stored 0x{stored_crc:08x}, computed 0x{computed_crc:08x} "
                f"over {frame_length - MESSAGE_CRC_LENGTH} bytes"
            )

        headers_length = self._headers_length
        headers_start = position + PRELUDE_LENGTH
        payload_start = headers_start + headers_length
        if headers_length:
            block = view[headers_start:payload_start].tobytes()
            parsed = self._header_cache.get(block)
            if parsed is None:
                try:
                    parsed = _parse_headers(block)
                except HeaderError as error:
                    raise HeaderError(f"{error} in {self._describe_frame(position)}") from None
                if headers_length <= _MAX_CACHED_HEADERS_LENGTH and (
                    len(self._header_cache) < _MAX_CACHED_HEADER_BLOCKS
                ):
                    self._header_cache[block] = parsed
            headers = parsed.copy()
        else:
            headers = {}

        return EventStreamMessage(headers, view[payload_start:crc_start].tobytes())

    def _describe_frame(self, position: int) -> str:
        """Name the frame starting at buffer `position` by its index and body offset."""
        return f"frame {self._frame_index} at body offset {self._buffer_offset + position}"

    def _raise_stored_error(self, error: EventStreamError) -> NoReturn:
        """Raise `error` itself the first time it reaches the caller, then chained copies."""
        if not self._error_raised:
            # The error was held back so that feed() could return the messages before it.
            self._error_raised = True
            raise error
        raise type(error)(
            f"decoder stopped by an earlier error (use a new decoder for each body): {error}"
        ) from error


def _parse_headers(block: bytes) -> dict[str, HeaderValue]:
    """Parse a complete header block into a dict, raising `HeaderError`."""
    # This loop runs for every header block the decoder has not cached, so it
    # decodes inline and builds error messages only on the error paths.
    headers: dict[str, HeaderValue] = {}
    end = len(block)
    position = 0

    while position < end:
        header_start = position
        name_end = position + 1 + block[position]
        if name_end >= end:
            raise _truncated_name_error(block, header_start)
        try:
            name = block[position + 1 : name_end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _utf8_error("header name", header_start, exc) from None
        if name in headers:
            raise HeaderError(f"duplicate header {name!r} at header byte {header_start}")

        value_type = block[name_end]
        position = name_end + 1
        value: HeaderValue
        if value_type in _LENGTH_PREFIXED_TYPES:
            value_start = position + 2
            if value_start > end:
                raise HeaderError(
                    f"{_TYPE_NAMES[value_type]} value length of header {name!r} is cut off: "
                    f"{end - position} of 2 bytes left in the header block"
                )
            value_length = (block[position] << 8) | block[position + 1]
            position = value_start + value_length
            if position > end:
                raise HeaderError(
                    f"{_TYPE_NAMES[value_type]} value of header {name!r} runs past the "
                    f"header block: {value_length} bytes declared, "
                    f"{end - value_start} left"
                )
            if value_type == _TYPE_STRING:
                try:
                    value = block[value_start:position].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _utf8_error(f"value of header {name!r}", header_start, exc) from None
            else:
                value = block[value_start:position]
        elif value_type == _TYPE_TRUE:
            value = True
        elif value_type == _TYPE_FALSE:
            value = False
        elif value_type in _FIXED_SIZE_TYPES:
            value_size, unpacker = _FIXED_SIZE_TYPES[value_type]
            if position + value_size > end:
                raise HeaderError(
                    f"{_TYPE_NAMES[value_type]} value of header {name!r} runs past the "
                    f"header block: {value_size} bytes needed, {end - position} left"
                )
            (fixed_value,) = unpacker.unpack_from(block, position)
            position += value_size
            if value_type == _TYPE_TIMESTAMP:
                value = _timestamp_from_millis(fixed_value, name)
            elif value_type == _TYPE_UUID:
                value = uuid.UUID(bytes=fixed_value)
            else:
                value = fixed_value
        else:
            raise HeaderError(
                f"unknown value type {value_type} of header {name!r} at header byte "
                f"{header_start} (known types are 0 to 9)"
            )

        headers[name] = value

    return headers


def _truncated_name_error(block: bytes, header_start: int) -> HeaderError:
    name_length = block[header_start]
    if header_start + 1 + name_length > len(block):
        return HeaderError(
            f"header name length {name_length} at header byte {header_start} "
            f"runs past the {len(block)}-byte header block"
        )
    return HeaderError(f"header at header byte {header_start} ends before its value type byte")


def _utf8_error(subject: str, header_start: int, exc: UnicodeDecodeError) -> HeaderError:
    return HeaderError(
        f"{subject} at header byte {header_start} is not valid UTF-8: "
        f"{exc.reason} at byte {exc.start}"
    )


def _timestamp_from_millis(millis: int, name: str) -> datetime.datetime:
    try:
        return _EPOCH + datetime.timedelta(milliseconds=millis)
    except OverflowError:
        raise HeaderError(
            f"timestamp value {millis} ms of header {name!r} is outside the range "
            f"of datetime (years 1 to 9999)"
        ) from None
