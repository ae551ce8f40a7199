"""Tests for the AWS event-stream decoder.

Frames are built here by hand or by `encode_frame`, a small encoder that shares
no code with the decoder, so a bug in one cannot hide a bug in the other.
"""

from __future__ import annotations

import datetime
import itertools
import struct
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenwire.decoders.eventstream import (
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    EventStreamDecoder,
    EventStreamError,
    EventStreamMessage,
    FrameLengthError,
    HeaderError,
    MessageChecksumError,
    PreludeChecksumError,
    TruncatedFrameError,
)
from tokenwire.errors import DecodeError

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

# --- encoder helper -------------------------------------------------------------


def encode_header(name: str | bytes, type_code: int, value: bytes = b"") -> bytes:
    """Encode one header: 1-byte name length, name, 1-byte type, raw value bytes."""
    raw_name = name.encode() if isinstance(name, str) else name
    return bytes([len(raw_name)]) + raw_name + bytes([type_code]) + value


def encode_string(name: str, value: str) -> bytes:
    raw = value.encode()
    return encode_header(name, 7, struct.pack(">H", len(raw)) + raw)


def encode_frame(
    headers: bytes = b"",
    payload: bytes = b"",
    *,
    total_length: int | None = None,
    headers_length: int | None = None,
    prelude_crc: int | None = None,
    message_crc: int | None = None,
) -> bytes:
    """Encode a frame. Each keyword overrides one field, and the CRCs cover the overrides."""
    if total_length is None:
        total_length = 16 + len(headers) + len(payload)
    if headers_length is None:
        headers_length = len(headers)
    lengths = struct.pack(">II", total_length, headers_length)
    if prelude_crc is None:
        prelude_crc = zlib.crc32(lengths)
    body = lengths + struct.pack(">I", prelude_crc) + headers + payload
    if message_crc is None:
        message_crc = zlib.crc32(body)
    return body + struct.pack(">I", message_crc)


# --- golden frames --------------------------------------------------------------

# The smallest frame: no headers, empty payload.
FRAME_EMPTY = (
    b"\x00\x00\x00\x10"  # total length: 16
    b"\x00\x00\x00\x00"  # headers length: 0
    b"\x05\xc2\x48\xeb"  # prelude CRC32
    b"\x7d\x98\xc8\xff"  # message CRC32
)

# A Bedrock InvokeModelWithResponseStream chunk: the three usual string headers
# and a JSON payload whose `bytes` field is base64 of {"type":"message_stop"}.
# Each header is: name length, name, value type 7 (string), 2-byte value length, value.
PAYLOAD_CHUNK = b'{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=","p":"abcdefghijkl"}'
FRAME_BEDROCK_CHUNK = (
    b"\x00\x00\x00\x9a"  # total length: 154 = 12 + 75 + 63 + 4
    b"\x00\x00\x00\x4b"  # headers length: 75
    b"\x1f\x9a\x78\xc0"  # prelude CRC32
    b"\x0b:event-type\x07\x00\x05chunk"  # 20 bytes
    b"\x0d:content-type\x07\x00\x10application/json"  # 33 bytes
    b"\x0d:message-type\x07\x00\x05event"  # 22 bytes
    + PAYLOAD_CHUNK  # 63 bytes
    + b"\xda\x81\xca\x27"  # message CRC32
)

# An in-band Bedrock exception frame, with headers laid out as above.
PAYLOAD_EXCEPTION = b'{"message":"Too many requests, please wait before trying again."}'
FRAME_BEDROCK_EXCEPTION = (
    b"\x00\x00\x00\xb2"  # total length: 178 = 12 + 97 + 65 + 4
    b"\x00\x00\x00\x61"  # headers length: 97
    b"\x35\x90\xd5\xd3"  # prelude CRC32
    b"\x0f:exception-type\x07\x00\x13throttlingException"  # 38 bytes
    b"\x0d:content-type\x07\x00\x10application/json"  # 33 bytes
    b"\x0d:message-type\x07\x00\x09exception"  # 26 bytes
    + PAYLOAD_EXCEPTION  # 65 bytes
    + b"\xe8\xff\xb2\x6a"  # message CRC32
)

# One header of each of the ten value types: name length, name, type, value bytes.
UUID_ALL_TYPES = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
FRAME_ALL_TYPES = (
    b"\x00\x00\x00\x88"  # total length: 136 = 12 + 113 + 7 + 4
    b"\x00\x00\x00\x71"  # headers length: 113
    b"\xc3\xb6\x65\x90"  # prelude CRC32
    b"\x04true\x00"  # type 0: bool true, no value bytes
    b"\x05false\x01"  # type 1: bool false, no value bytes
    b"\x04byte\x02\xfe"  # type 2: int8 -2
    b"\x05short\x03\x80\x00"  # type 3: int16 -32768
    b"\x03int\x04\x00\x01\x00\x00"  # type 4: int32 65536
    b"\x04long\x05\xff\xff\xff\xff\xff\xff\xff\xff"  # type 5: int64 -1
    b"\x05bytes\x06\x00\x03\x00\xff\x10"  # type 6: 2-byte length 3, bytes 00 ff 10
    b"\x03str\x07\x00\x06h\xc3\xa9llo"  # type 7: 2-byte length 6, UTF-8 "héllo"
    b"\x04time\x08\x00\x00\x01\x8b\xcf\xe5\x68\x7b"  # type 8: int64 1700000000123 ms
    b"\x04uuid\x09"  # type 9: the 16 bytes of the UUID follow
    + UUID_ALL_TYPES.bytes
    + b"payload"  # 7 bytes
    + b"\xa8\x11\x51\x64"  # message CRC32
)

HEADERS_BEDROCK_CHUNK = {
    ":event-type": "chunk",
    ":content-type": "application/json",
    ":message-type": "event",
}
HEADERS_BEDROCK_EXCEPTION = {
    ":exception-type": "throttlingException",
    ":content-type": "application/json",
    ":message-type": "exception",
}
HEADERS_ALL_TYPES = {
    "true": True,
    "false": False,
    "byte": -2,
    "short": -32768,
    "int": 65536,
    "long": -1,
    "bytes": b"\x00\xff\x10",
    "str": "héllo",
    "time": datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.UTC),
    "uuid": UUID_ALL_TYPES,
}

# --- helpers --------------------------------------------------------------------


def typed(messages: Sequence[EventStreamMessage]) -> list[tuple[list[Any], bytes]]:
    """Messages as comparable values that keep each header value's type (True is not 1)."""
    return [
        ([(name, type(value), value) for name, value in message.headers.items()], message.payload)
        for message in messages
    ]


def expect(*messages: tuple[dict[str, Any], bytes]) -> list[tuple[list[Any], bytes]]:
    return typed([EventStreamMessage(headers, payload) for headers, payload in messages])


def decode_chunks(
    chunks: Sequence[bytes],
) -> tuple[list[EventStreamMessage], EventStreamError | None]:
    """Feed `chunks` then close, returning the messages and the first error."""
    decoder = EventStreamDecoder()
    messages: list[EventStreamMessage] = []
    try:
        for chunk in chunks:
            messages += decoder.feed(chunk)
        decoder.close()
    except EventStreamError as error:
        return messages, error
    return messages, None


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


# --- golden frames, fed three ways ----------------------------------------------

GOLDEN_STREAMS = [
    pytest.param(FRAME_EMPTY, expect(({}, b"")), id="empty"),
    pytest.param(
        FRAME_BEDROCK_CHUNK, expect((HEADERS_BEDROCK_CHUNK, PAYLOAD_CHUNK)), id="bedrock-chunk"
    ),
    pytest.param(
        FRAME_BEDROCK_EXCEPTION,
        expect((HEADERS_BEDROCK_EXCEPTION, PAYLOAD_EXCEPTION)),
        id="bedrock-exception",
    ),
    pytest.param(FRAME_ALL_TYPES, expect((HEADERS_ALL_TYPES, b"payload")), id="all-types"),
    pytest.param(
        FRAME_BEDROCK_CHUNK + FRAME_EMPTY + FRAME_ALL_TYPES + FRAME_BEDROCK_CHUNK,
        expect(
            (HEADERS_BEDROCK_CHUNK, PAYLOAD_CHUNK),
            ({}, b""),
            (HEADERS_ALL_TYPES, b"payload"),
            (HEADERS_BEDROCK_CHUNK, PAYLOAD_CHUNK),
        ),
        id="four-frames",
    ),
]


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(FRAME_EMPTY, id="empty"),
        pytest.param(FRAME_BEDROCK_CHUNK, id="bedrock-chunk"),
        pytest.param(FRAME_BEDROCK_EXCEPTION, id="bedrock-exception"),
        pytest.param(FRAME_ALL_TYPES, id="all-types"),
    ],
)
def test_golden_frame_matches_encoder(frame: bytes) -> None:
    # Checks the hand-written constants (lengths and CRCs) against the encoder helper.
    (headers_length,) = struct.unpack(">I", frame[4:8])
    headers = frame[12 : 12 + headers_length]
    payload = frame[12 + headers_length : -4]
    assert encode_frame(headers, payload) == frame


@pytest.mark.parametrize(("stream", "expected"), GOLDEN_STREAMS)
def test_golden_fed_whole(stream: bytes, expected: list[Any]) -> None:
    decoder = EventStreamDecoder()
    messages = decoder.feed(stream)
    assert typed(messages) == expected
    assert decoder.pending_bytes == 0
    decoder.close()


@pytest.mark.parametrize(("stream", "expected"), GOLDEN_STREAMS)
def test_golden_fed_bytewise(stream: bytes, expected: list[Any]) -> None:
    decoder = EventStreamDecoder()
    messages: list[EventStreamMessage] = []
    for index, chunk in enumerate(bytewise(stream)):
        messages += decoder.feed(chunk)
        assert decoder.pending_bytes <= index + 1
    assert typed(messages) == expected
    assert decoder.pending_bytes == 0
    decoder.close()


@pytest.mark.parametrize(("stream", "expected"), GOLDEN_STREAMS)
@pytest.mark.parametrize("trailing_length", [1, 11, 12, 13, 40])
def test_golden_with_trailing_partial_frame(
    stream: bytes, expected: list[Any], trailing_length: int
) -> None:
    trailing = FRAME_BEDROCK_CHUNK[:trailing_length]
    decoder = EventStreamDecoder()

    messages = decoder.feed(stream + trailing)

    assert typed(messages) == expected
    assert decoder.pending_bytes == trailing_length
    if trailing_length < 12:
        fragment = f"{trailing_length} bytes of a 12-byte prelude arrived"
    else:
        fragment = f"{trailing_length} bytes of a 154-byte frame arrived"
    with pytest.raises(TruncatedFrameError, match=fragment):
        decoder.close()


def test_close_names_truncated_frame_position() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(FRAME_EMPTY + FRAME_BEDROCK_CHUNK + FRAME_ALL_TYPES[:20])
    with pytest.raises(TruncatedFrameError, match="frame 2 at body offset 170: 20 bytes of a 136"):
        decoder.close()


def test_feed_empty_chunk_returns_nothing() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(b"") == []
    assert decoder.pending_bytes == 0
    decoder.close()


def test_pending_bytes_counts_partial_frame() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(FRAME_BEDROCK_CHUNK[:100]) == []
    assert decoder.pending_bytes == 100
    assert len(decoder.feed(FRAME_BEDROCK_CHUNK[100:] + FRAME_EMPTY[:5])) == 1
    assert decoder.pending_bytes == 5


# --- header value types ---------------------------------------------------------

HEADER_VALUES = [
    pytest.param(0, b"", True, id="bool-true"),
    pytest.param(1, b"", False, id="bool-false"),
    pytest.param(2, b"\x80", -128, id="byte-min"),
    pytest.param(2, b"\x7f", 127, id="byte-max"),
    pytest.param(3, b"\x7f\xff", 32767, id="short-max"),
    pytest.param(3, b"\xff\xfe", -2, id="short-negative"),
    pytest.param(4, b"\x80\x00\x00\x00", -(2**31), id="integer-min"),
    pytest.param(4, b"\x00\x00\xa0\x0c", 40972, id="integer"),
    pytest.param(5, b"\x7f\xff\xff\xff\xff\xff\xff\xff", 2**63 - 1, id="long-max"),
    pytest.param(5, b"\x80\x00\x00\x00\x00\x00\x00\x00", -(2**63), id="long-min"),
    pytest.param(6, b"\x00\x00", b"", id="byte-array-empty"),
    pytest.param(6, b"\x00\x02\x00\x01", b"\x00\x01", id="byte-array"),
    pytest.param(7, b"\x00\x00", "", id="string-empty"),
    pytest.param(7, b"\x00\x04\xe2\x82\xac!", "€!", id="string-utf8"),
    pytest.param(8, b"\x00" * 8, EPOCH, id="timestamp-epoch"),
    pytest.param(
        8,
        b"\xff\xff\xff\xff\xff\xff\xfc\x18",  # -1000 ms
        datetime.datetime(1969, 12, 31, 23, 59, 59, tzinfo=datetime.UTC),
        id="timestamp-before-epoch",
    ),
    pytest.param(
        8,
        b"\x00\x00\x00\x00\x00\x00\x00\x01",  # 1 ms
        datetime.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=datetime.UTC),
        id="timestamp-one-ms",
    ),
    pytest.param(
        9, bytes(range(1, 17)), uuid.UUID("01020304-0506-0708-090a-0b0c0d0e0f10"), id="uuid"
    ),
]


@pytest.mark.parametrize(("type_code", "raw_value", "expected"), HEADER_VALUES)
def test_header_value_type(type_code: int, raw_value: bytes, expected: Any) -> None:
    frame = encode_frame(encode_header("h", type_code, raw_value), b"x")
    (message,) = EventStreamDecoder().feed(frame)
    value = message.headers["h"]
    assert type(value) is type(expected)
    assert value == expected


def test_timestamp_header_is_utc_aware() -> None:
    (message,) = EventStreamDecoder().feed(FRAME_ALL_TYPES)
    timestamp = message.headers["time"]
    assert isinstance(timestamp, datetime.datetime)
    assert timestamp.utcoffset() == datetime.timedelta(0)


def test_header_name_empty_accepted() -> None:
    # botocore, aws-sdk-go and smithy-rs all accept a zero-length header name.
    (message,) = EventStreamDecoder().feed(encode_frame(encode_header("", 0)))
    assert message.headers == {"": True}


def test_header_order_kept() -> None:
    headers = encode_string("b", "1") + encode_string("a", "2") + encode_string("c", "3")
    (message,) = EventStreamDecoder().feed(encode_frame(headers))
    assert list(message.headers) == ["b", "a", "c"]


def test_repeated_header_block_gives_independent_dicts() -> None:
    decoder = EventStreamDecoder()
    first, second = decoder.feed(FRAME_BEDROCK_CHUNK + FRAME_BEDROCK_CHUNK)
    first.headers[":event-type"] = "changed"
    (third,) = decoder.feed(FRAME_BEDROCK_CHUNK)
    assert second.headers == HEADERS_BEDROCK_CHUNK
    assert third.headers == HEADERS_BEDROCK_CHUNK
    assert first.headers is not second.headers


def test_many_distinct_header_blocks_decoded() -> None:
    # More distinct header blocks than the decoder caches, each seen twice.
    frames = [encode_frame(encode_string("n", str(index)), b"p") for index in range(100)]
    messages, error = decode_chunks([b"".join(frames + frames)])
    assert error is None
    assert [message.headers["n"] for message in messages] == [str(i) for i in range(100)] * 2


def test_message_is_frozen() -> None:
    (message,) = EventStreamDecoder().feed(FRAME_EMPTY)
    with pytest.raises(AttributeError):
        message.payload = b"changed"  # type: ignore[misc]


# --- errors ---------------------------------------------------------------------


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


ERROR_STREAMS = [
    pytest.param(
        flip(FRAME_BEDROCK_CHUNK, 3),
        PreludeChecksumError,
        "prelude checksum mismatch in frame 0 at body offset 0: stored 0x1f9a78c0, computed 0x",
        id="prelude-crc-length-flipped",
    ),
    pytest.param(
        flip(FRAME_BEDROCK_CHUNK, 9),
        PreludeChecksumError,
        "stored 0x1f9b78c0",
        id="prelude-crc-flipped",
    ),
    pytest.param(
        flip(FRAME_BEDROCK_CHUNK, 100),
        MessageChecksumError,
        "message checksum mismatch in frame 0 at body offset 0: stored 0xda81ca27, computed 0x",
        id="message-crc-payload-flipped",
    ),
    pytest.param(
        flip(FRAME_BEDROCK_CHUNK, 153),
        MessageChecksumError,
        "stored 0xda81ca26, computed 0xda81ca27 over 150 bytes",
        id="message-crc-flipped",
    ),
    pytest.param(
        FRAME_EMPTY + flip(FRAME_ALL_TYPES, 20),
        MessageChecksumError,
        "frame 1 at body offset 16",
        id="message-crc-second-frame",
    ),
    pytest.param(
        encode_frame(total_length=15),
        FrameLengthError,
        "total length 15 of frame 0 at body offset 0 is below the minimum of 16 bytes",
        id="total-length-below-minimum",
    ),
    pytest.param(
        encode_frame(total_length=0),
        FrameLengthError,
        "total length 0 of frame 0",
        id="total-length-zero",
    ),
    pytest.param(
        encode_frame(b"\x00" * 4, headers_length=5),
        FrameLengthError,
        "headers length 5 of frame 0 at body offset 0 exceeds the 4 bytes left by its "
        "total length 20",
        id="headers-length-past-frame",
    ),
    pytest.param(
        encode_frame(
            total_length=16 + MAX_HEADERS_LENGTH + 1, headers_length=MAX_HEADERS_LENGTH + 1
        ),
        FrameLengthError,
        "headers length 131073 of frame 0 at body offset 0 exceeds the maximum of 131072 bytes",
        id="headers-length-over-cap",
    ),
    pytest.param(
        encode_frame(total_length=16 + MAX_PAYLOAD_LENGTH + 1),
        FrameLengthError,
        "payload length 25165825 of frame 0 at body offset 0 exceeds the maximum of 25165824 bytes",
        id="payload-length-over-cap",
    ),
    pytest.param(
        encode_frame(b"\x05ab"),
        HeaderError,
        "header name length 5 at header byte 0 runs past the 3-byte header block in frame 0",
        id="header-name-past-block",
    ),
    pytest.param(
        encode_frame(encode_header("a", 0) + b"\x02ab"),
        HeaderError,
        "header at header byte 3 ends before its value type byte",
        id="header-type-byte-missing",
    ),
    pytest.param(
        encode_frame(encode_header("a", 10)),
        HeaderError,
        "unknown value type 10 of header 'a' at header byte 0 (known types are 0 to 9)",
        id="header-type-unknown",
    ),
    pytest.param(
        encode_frame(encode_header("byte", 0x60, b"2")),
        HeaderError,
        "unknown value type 96 of header 'byte'",
        id="header-type-0x60",
    ),
    pytest.param(
        encode_frame(encode_header("s", 7, b"\x00")),
        HeaderError,
        "string value length of header 's' is cut off: 1 of 2 bytes left",
        id="string-length-cut-off",
    ),
    pytest.param(
        encode_frame(encode_header("b", 6)),
        HeaderError,
        "byte array value length of header 'b' is cut off: 0 of 2 bytes left",
        id="byte-array-length-cut-off",
    ),
    pytest.param(
        encode_frame(encode_header("s", 7, b"\x00\x08abc")),
        HeaderError,
        "string value of header 's' runs past the header block: 8 bytes declared, 3 left",
        id="string-value-past-block",
    ),
    pytest.param(
        encode_frame(encode_header("b", 6, b"\xff\xffabc")),
        HeaderError,
        "byte array value of header 'b' runs past the header block: 65535 bytes declared",
        id="byte-array-value-past-block",
    ),
    pytest.param(
        encode_frame(encode_header("i", 4, b"\x00\x01")),
        HeaderError,
        "integer value of header 'i' runs past the header block: 4 bytes needed, 2 left",
        id="integer-value-past-block",
    ),
    pytest.param(
        encode_frame(encode_header("u", 9, b"\x00" * 15)),
        HeaderError,
        "uuid value of header 'u' runs past the header block: 16 bytes needed, 15 left",
        id="uuid-value-past-block",
    ),
    pytest.param(
        encode_frame(encode_header(b"\xff\xfe", 0)),
        HeaderError,
        "header name at header byte 0 is not valid UTF-8",
        id="header-name-not-utf8",
    ),
    pytest.param(
        encode_frame(encode_header("s", 7, b"\x00\x02\xc3\x28")),
        HeaderError,
        "value of header 's' at header byte 0 is not valid UTF-8",
        id="string-value-not-utf8",
    ),
    pytest.param(
        encode_frame(encode_header("a", 0) + encode_header("a", 1)),
        HeaderError,
        "duplicate header 'a' at header byte 3",
        id="duplicate-header",
    ),
    pytest.param(
        encode_frame(encode_header("t", 8, struct.pack(">q", 2**63 - 1))),
        HeaderError,
        "timestamp value 9223372036854775807 ms of header 't' is outside the range",
        id="timestamp-out-of-range",
    ),
    pytest.param(
        FRAME_EMPTY + FRAME_BEDROCK_CHUNK[:-1],
        TruncatedFrameError,
        "stream ended inside frame 1 at body offset 16: 153 bytes of a 154-byte frame arrived",
        id="truncated-frame",
    ),
    pytest.param(
        FRAME_BEDROCK_CHUNK[:7],
        TruncatedFrameError,
        "stream ended inside frame 0 at body offset 0: 7 bytes of a 12-byte prelude arrived",
        id="truncated-prelude",
    ),
]


@pytest.mark.parametrize(("stream", "error_class", "fragment"), ERROR_STREAMS)
def test_error_fed_whole(stream: bytes, error_class: type[Exception], fragment: str) -> None:
    _, error = decode_chunks([stream])
    assert type(error) is error_class
    assert fragment in str(error)


@pytest.mark.parametrize(("stream", "error_class", "fragment"), ERROR_STREAMS)
def test_error_fed_bytewise(stream: bytes, error_class: type[Exception], fragment: str) -> None:
    _, error = decode_chunks(bytewise(stream))
    assert type(error) is error_class
    assert fragment in str(error)


@pytest.mark.parametrize(
    "error_class",
    [
        PreludeChecksumError,
        MessageChecksumError,
        FrameLengthError,
        HeaderError,
        TruncatedFrameError,
    ],
)
def test_error_classes_share_base(error_class: type[Exception]) -> None:
    assert issubclass(error_class, EventStreamError)
    assert issubclass(error_class, DecodeError)


@pytest.mark.parametrize(
    ("prelude", "error_class"),
    [
        pytest.param(flip(FRAME_BEDROCK_CHUNK, 0)[:12], PreludeChecksumError, id="checksum"),
        pytest.param(encode_frame(total_length=10)[:12], FrameLengthError, id="too-short"),
        pytest.param(
            encode_frame(total_length=16 + MAX_PAYLOAD_LENGTH + 1)[:12],
            FrameLengthError,
            id="over-cap",
        ),
    ],
)
def test_prelude_checked_before_body_arrives(prelude: bytes, error_class: type[Exception]) -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(prelude[:11]) == []
    with pytest.raises(error_class):
        decoder.feed(prelude[11:])


def test_message_crc_checked_before_headers() -> None:
    # A bad header block under a wrong message CRC is reported as the checksum error.
    frame = encode_frame(encode_header("a", 10), message_crc=0)
    with pytest.raises(MessageChecksumError):
        EventStreamDecoder().feed(frame)


def test_error_after_messages_raised_on_next_call() -> None:
    decoder = EventStreamDecoder()

    messages = decoder.feed(FRAME_BEDROCK_CHUNK + flip(FRAME_EMPTY, 14))

    assert typed(messages) == expect((HEADERS_BEDROCK_CHUNK, PAYLOAD_CHUNK))
    with pytest.raises(MessageChecksumError, match=r"^message checksum mismatch in frame 1 at"):
        decoder.feed(b"")
    with pytest.raises(
        MessageChecksumError, match=r"^decoder stopped by an earlier error .*: message checksum"
    ):
        decoder.close()


def test_error_after_messages_raised_by_close() -> None:
    decoder = EventStreamDecoder()
    assert len(decoder.feed(FRAME_EMPTY + flip(FRAME_EMPTY, 0))) == 1
    with pytest.raises(
        PreludeChecksumError, match=r"^prelude checksum mismatch in frame 1 at body"
    ):
        decoder.close()


@pytest.mark.parametrize(("stream", "error_class", "fragment"), ERROR_STREAMS)
def test_poisoned_decoder_raises_same_class(
    stream: bytes, error_class: type[Exception], fragment: str
) -> None:
    decoder = EventStreamDecoder()
    first_error = None
    try:
        decoder.feed(stream)
        decoder.close()
    except EventStreamError as error:
        first_error = error
    assert first_error is not None

    with pytest.raises(error_class, match="decoder stopped by an earlier error") as feed_error:
        decoder.feed(FRAME_EMPTY)
    assert fragment in str(feed_error.value)
    assert feed_error.value.__cause__ is first_error

    with pytest.raises(error_class, match="decoder stopped by an earlier error"):
        decoder.close()


def test_close_twice_without_data() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(FRAME_EMPTY)
    decoder.close()
    decoder.close()


# --- property tests -------------------------------------------------------------

TIMESTAMP_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
TIMESTAMP_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _length_prefixed(raw: bytes) -> bytes:
    return struct.pack(">H", len(raw)) + raw


# Each strategy draws (type code, value bytes, expected decoded value).
header_values = st.one_of(
    st.booleans().map(lambda value: (0 if value else 1, b"", value)),
    st.integers(-(2**7), 2**7 - 1).map(lambda value: (2, struct.pack(">b", value), value)),
    st.integers(-(2**15), 2**15 - 1).map(lambda value: (3, struct.pack(">h", value), value)),
    st.integers(-(2**31), 2**31 - 1).map(lambda value: (4, struct.pack(">i", value), value)),
    st.integers(-(2**63), 2**63 - 1).map(lambda value: (5, struct.pack(">q", value), value)),
    st.binary(max_size=40).map(lambda value: (6, _length_prefixed(value), value)),
    st.text(max_size=20).map(lambda value: (7, _length_prefixed(value.encode()), value)),
    st.integers(TIMESTAMP_MIN_MS, TIMESTAMP_MAX_MS).map(
        lambda ms: (8, struct.pack(">q", ms), EPOCH + datetime.timedelta(milliseconds=ms))
    ),
    st.uuids().map(lambda value: (9, value.bytes, value)),
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, dict[str, tuple[int, Any]], bytes]:
    """Draw one frame: its bytes, its headers as name -> (type code, value), its payload."""
    headers = draw(st.dictionaries(st.text(max_size=12), header_values, max_size=6))
    payload = draw(st.binary(max_size=300))
    block = b"".join(
        encode_header(name, type_code, raw_value)
        for name, (type_code, raw_value, _) in headers.items()
    )
    described = {name: (type_code, value) for name, (type_code, _, value) in headers.items()}
    return encode_frame(block, payload), described, payload


frame_lists = st.lists(frames(), min_size=1, max_size=5)


def expected_of(drawn: list[tuple[bytes, dict[str, tuple[int, Any]], bytes]]) -> list[Any]:
    return expect(
        *(
            ({name: value for name, (_, value) in headers.items()}, payload)
            for _, headers, payload in drawn
        )
    )


def frame_ends(drawn: list[tuple[bytes, dict[str, tuple[int, Any]], bytes]]) -> list[int]:
    ends = []
    offset = 0
    for frame, _, _ in drawn:
        offset += len(frame)
        ends.append(offset)
    return ends


PROPERTY_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(drawn=frame_lists, data=st.data())
def test_any_chunking_same_messages(drawn: list[Any], data: st.DataObject) -> None:
    stream = b"".join(frame for frame, _, _ in drawn)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))

    messages, error = decode_chunks(split(stream, cuts))

    assert error is None
    assert typed(messages) == expected_of(drawn)


@PROPERTY_SETTINGS
@given(drawn=frame_lists, data=st.data())
def test_any_byte_flip_raises(drawn: list[Any], data: st.DataObject) -> None:
    stream = b"".join(frame for frame, _, _ in drawn)
    index = data.draw(st.integers(0, len(stream) - 1))
    mask = data.draw(st.integers(1, 255))
    corrupted = stream[:index] + bytes([stream[index] ^ mask]) + stream[index + 1 :]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))

    messages, error = decode_chunks(split(corrupted, cuts))

    assert isinstance(error, EventStreamError)
    expected = expected_of(drawn)
    assert typed(messages) == expected[: len(messages)]
    # Every frame ending before the flipped byte still decodes.
    intact = sum(1 for end in frame_ends(drawn) if end <= index)
    assert len(messages) == intact


@PROPERTY_SETTINGS
@given(drawn=frame_lists, data=st.data())
def test_truncated_stream_keeps_complete_frames(drawn: list[Any], data: st.DataObject) -> None:
    stream = b"".join(frame for frame, _, _ in drawn)
    length = data.draw(st.integers(0, len(stream) - 1))
    cuts = data.draw(st.lists(st.integers(0, length), max_size=10))

    messages, error = decode_chunks(split(stream[:length], cuts))

    ends = frame_ends(drawn)
    complete = sum(1 for end in ends if end <= length)
    assert typed(messages) == expected_of(drawn)[:complete]
    if length == 0 or length in ends:
        assert error is None
    else:
        assert isinstance(error, TruncatedFrameError)


@PROPERTY_SETTINGS
@given(drawn=frame_lists, data=st.data())
def test_inserted_bytes_raise(drawn: list[Any], data: st.DataObject) -> None:
    stream = b"".join(frame for frame, _, _ in drawn)
    index = data.draw(st.integers(0, len(stream)))
    inserted = data.draw(st.binary(min_size=1, max_size=24))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))

    messages, error = decode_chunks(split(stream[:index] + inserted + stream[index:], cuts))

    assert isinstance(error, EventStreamError)
    assert typed(messages) == expected_of(drawn)[: len(messages)]


# --- cross-check with botocore ----------------------------------------------------


def _from_botocore(type_code: int, value: Any) -> Any:
    # botocore returns timestamps as int milliseconds and UUIDs as 16 raw bytes.
    if type_code == 8:
        return EPOCH + datetime.timedelta(milliseconds=value)
    if type_code == 9:
        return uuid.UUID(bytes=value)
    return value


@PROPERTY_SETTINGS
@given(drawn=frame_lists)
def test_same_messages_as_botocore(drawn: list[Any]) -> None:
    eventstream = pytest.importorskip("botocore.eventstream")
    stream = b"".join(frame for frame, _, _ in drawn)
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(stream)
    botocore_messages = [
        EventStreamMessage(
            {
                name: _from_botocore(headers[name][0], value)
                for name, value in message.headers.items()
            },
            message.payload,
        )
        for message, (_, headers, _) in zip(buffer, drawn, strict=True)
    ]

    messages, error = decode_chunks([stream])

    assert error is None
    assert typed(messages) == typed(botocore_messages)
