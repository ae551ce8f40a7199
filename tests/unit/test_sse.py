"""Tests for the sans-I/O SSE parser.

Expected events are written out by hand. The property tests compare the parser with
`reference_parse`, a line-by-line model of the standard's rules over the whole body that shares
no code with the parser.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenwire.sse
from tokenwire.errors import ConfigurationError, DecodeError
from tokenwire.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    ServerSentEvent,
    SSEDecodeError,
    SSEEventTooLargeError,
    SSEParser,
    SSEParserClosedError,
)

BOM = b"\xef\xbb\xbf"

# An incomplete line that the third way of `assert_parses` appends: it must stay pending.
PENDING_TAIL = b"data: pending"

# An OpenAI chat completion chunk as the API sends it: one `data` line and a blank line.
OPENAI_CHUNK = (
    b"data: "  # field name, colon and the one space that is removed
    b'{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[]}'  # data
    b"\n\n"  # end of the data line, then the blank line that dispatches
)

# An Anthropic Messages stream event: an `event` line names the type.
ANTHROPIC_EVENT = (
    b"event: message_delta\n"  # event type
    b'data: {"type":"message_delta","usage":{"output_tokens":15}}\n'  # data
    b"\n"  # blank line: dispatch
)


def sse(
    data: bytes, event: str = "message", id: str | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


def parse_whole(body: bytes) -> tuple[list[ServerSentEvent], list[ServerSentEvent]]:
    parser = SSEParser()
    return parser.feed(body), parser.close()


def parse_chunks(chunks: list[bytes]) -> tuple[list[ServerSentEvent], list[ServerSentEvent]]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events, parser.close()


def split_bytewise(body: bytes) -> list[bytes]:
    return [body[index : index + 1] for index in range(len(body))]


def incomplete_last_line(body: bytes) -> bytes:
    """Return the bytes after the last line end, ignoring a leading BOM."""
    return re.split(rb"\r\n|\r|\n", body.removeprefix(BOM))[-1]


def assert_parses(
    body: bytes, expected: list[ServerSentEvent], at_close: list[ServerSentEvent]
) -> None:
    """Check `body` fed whole, one byte at a time, and followed by an incomplete line.

    `expected` are the events that `feed()` returns, `at_close` those that `close()` returns.
    """
    assert parse_whole(body) == (expected, at_close)
    assert parse_chunks(split_bytewise(body)) == (expected, at_close)

    parser = SSEParser()
    last_line = incomplete_last_line(body)
    if last_line:
        # The body ends inside a line, so any tail would extend that line.
        assert parser.feed(body) == expected
        assert parser.pending_bytes == len(last_line)
        return

    assert parser.feed(body + PENDING_TAIL) == expected
    assert parser.pending_bytes == len(PENDING_TAIL)
    closing_events = parser.close()
    assert closing_events
    assert closing_events[-1].data.endswith(b"pending")


# --- table of cases ----------------------------------------------------------------------------

LINE_END_CASES = [
    pytest.param(b"data: a\n\n", [sse(b"a")], [], id="lf"),
    pytest.param(b"data: a\r\n\r\n", [sse(b"a")], [], id="crlf"),
    pytest.param(b"data: a\r\r", [sse(b"a")], [], id="cr"),
    pytest.param(b"data: a\r\ndata: b\rdata: c\n\r\n", [sse(b"a\nb\nc")], [], id="mixed"),
    pytest.param(b"data: a\n\r", [sse(b"a")], [], id="lf then cr is two line ends"),
    pytest.param(b"data: a\r\r\n", [sse(b"a")], [], id="cr then crlf is two line ends"),
    pytest.param(b"data: a\n\ndata: b\r\n\r\n", [sse(b"a"), sse(b"b")], [], id="two events"),
    pytest.param(OPENAI_CHUNK, [sse(OPENAI_CHUNK[6:-2])], [], id="openai chunk"),
    pytest.param(
        ANTHROPIC_EVENT,
        [sse(b'{"type":"message_delta","usage":{"output_tokens":15}}', event="message_delta")],
        [],
        id="anthropic event",
    ),
]

BOM_CASES = [
    pytest.param(BOM + b"data: a\n\n", [sse(b"a")], [], id="bom stripped"),
    pytest.param(BOM + BOM + b"data: a\n\n", [], [], id="second bom kept"),
    pytest.param(b"\xef\xbbdata: a\n\n", [], [], id="partial bom kept"),
    pytest.param(b"data: a\n\n" + BOM + b"data: b\n\n", [sse(b"a")], [], id="bom later kept"),
    pytest.param(BOM, [], [], id="bom only"),
]

FIELD_CASES = [
    pytest.param(b": keep-alive\n\ndata: a\n\n", [sse(b"a")], [], id="comment block"),
    pytest.param(b"data: a\n: note\ndata: b\n\n", [sse(b"a\nb")], [], id="comment between data"),
    pytest.param(b":\n\n", [], [], id="empty comment"),
    pytest.param(b"data: a\ndata: b\ndata: c\n\n", [sse(b"a\nb\nc")], [], id="multi-line data"),
    pytest.param(b"data\n\n", [sse(b"")], [], id="data without colon"),
    pytest.param(b"data\ndata\n\n", [sse(b"\n")], [], id="two data without colon"),
    pytest.param(b"data:a\n\n", [sse(b"a")], [], id="data without space"),
    pytest.param(b"data:\n\n", [sse(b"")], [], id="data colon empty"),
    pytest.param(b"data:  a\n\n", [sse(b" a")], [], id="two spaces keep one"),
    pytest.param(b"data: a  \n\n", [sse(b"a  ")], [], id="trailing spaces kept"),
    pytest.param(b"data:\ta\n\n", [sse(b"\ta")], [], id="tab kept"),
    pytest.param(b"data: a:b: c\n\n", [sse(b"a:b: c")], [], id="colons in value"),
    pytest.param(b"data: a\x00b\n\n", [sse(b"a\x00b")], [], id="nul in data kept"),
    pytest.param(b"data: \xff\xfe\n\n", [sse(b"\xff\xfe")], [], id="invalid utf8 data kept"),
    pytest.param(b"Data: a\n\n", [], [], id="field name case sensitive"),
    pytest.param(b"data : a\n\n", [], [], id="space before colon"),
    pytest.param(b"foo: bar\ndata: a\n\n", [sse(b"a")], [], id="unknown field ignored"),
    pytest.param(b"event: add\ndata: a\n\n", [sse(b"a", event="add")], [], id="event"),
    pytest.param(b"event:add\ndata: a\n\n", [sse(b"a", event="add")], [], id="event no space"),
    pytest.param(b"event:\ndata: a\n\n", [sse(b"a")], [], id="empty event is message"),
    pytest.param(
        b"event: add\ndata: a\n\ndata: b\n\n",
        [sse(b"a", event="add"), sse(b"b")],
        [],
        id="event reset after dispatch",
    ),
    pytest.param(b"event: add\n\ndata: a\n\n", [sse(b"a")], [], id="event reset by empty block"),
    pytest.param(b"event: a\nevent: b\ndata: x\n\n", [sse(b"x", event="b")], [], id="last event"),
    pytest.param(
        "event: café\ndata: a\n\n".encode(), [sse(b"a", event="café")], [], id="utf8 event"
    ),
    pytest.param(
        b"event: \xff\ndata: a\n\n", [sse(b"a", event="\ufffd")], [], id="invalid utf8 event"
    ),
    pytest.param(
        b"id: 7\ndata: a\n\ndata: b\n\n",
        [sse(b"a", id="7"), sse(b"b", id="7")],
        [],
        id="id carries over",
    ),
    pytest.param(b"id: 5\n\ndata: a\n\n", [sse(b"a", id="5")], [], id="id from empty block"),
    pytest.param(
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [sse(b"a", id="1"), sse(b"b", id="1")],
        [],
        id="id with nul ignored",
    ),
    pytest.param(
        b"id: 1\ndata: a\n\nid\ndata: b\n\n",
        [sse(b"a", id="1"), sse(b"b")],
        [],
        id="empty id resets",
    ),
    pytest.param(b"id: \xff\ndata: a\n\n", [sse(b"a", id="\ufffd")], [], id="invalid utf8 id"),
    pytest.param(b"retry: 3000\ndata: a\n\n", [sse(b"a", retry=3000)], [], id="retry"),
    pytest.param(b"retry:0\ndata: a\n\n", [sse(b"a", retry=0)], [], id="retry zero"),
    pytest.param(b"retry: 007\ndata: a\n\n", [sse(b"a", retry=7)], [], id="retry leading zeros"),
    pytest.param(
        b"retry: 3000\ndata: a\n\ndata: b\n\n",
        [sse(b"a", retry=3000), sse(b"b")],
        [],
        id="retry not carried over",
    ),
    pytest.param(
        b"retry: 10\nretry: x\ndata: a\n\n",
        [sse(b"a", retry=10)],
        [],
        id="invalid retry keeps earlier",
    ),
    pytest.param(b"retry: 3s\ndata: a\n\n", [sse(b"a")], [], id="retry with unit"),
    pytest.param(b"retry: -1\ndata: a\n\n", [sse(b"a")], [], id="retry negative"),
    pytest.param(b"retry: 1.5\ndata: a\n\n", [sse(b"a")], [], id="retry fraction"),
    pytest.param(b"retry:\ndata: a\n\n", [sse(b"a")], [], id="retry empty"),
    pytest.param(b"retry:  300\ndata: a\n\n", [sse(b"a")], [], id="retry second space"),
    pytest.param("retry: ٣\ndata: a\n\n".encode(), [sse(b"a")], [], id="retry non-ascii digit"),
    pytest.param(b"retry: " + b"9" * 700 + b"\ndata: a\n\n", [sse(b"a")], [], id="retry huge"),
    pytest.param(
        b"retry: " + b"0" * 1000 + b"5\ndata: a\n\n",
        [sse(b"a", retry=5)],
        [],
        id="retry many leading zeros",
    ),
]

DISPATCH_CASES = [
    pytest.param(b"\n\n\n", [], [], id="blank lines only"),
    pytest.param(b"event: add\nid: 1\nretry: 5\n\n", [], [], id="block without data"),
    pytest.param(b"", [], [], id="empty body"),
    pytest.param(b"data: a\n", [], [sse(b"a")], id="close without blank line"),
    pytest.param(b"data: a", [], [sse(b"a")], id="close incomplete line"),
    pytest.param(b"data: a\r", [], [sse(b"a")], id="close after cr"),
    pytest.param(b"data: a\ndata: b", [], [sse(b"a\nb")], id="close incomplete second line"),
    pytest.param(
        b"event: done\nid: 9\nretry: 10\ndata: a",
        [],
        [sse(b"a", event="done", id="9", retry=10)],
        id="close keeps fields",
    ),
    pytest.param(b"data: a\n\n: tail\n", [sse(b"a")], [], id="close with comment pending"),
    pytest.param(b"data: a\n\n: tail", [sse(b"a")], [], id="close incomplete comment"),
    pytest.param(b"event: add\n", [], [], id="close with event only"),
    pytest.param(b"\xef\xbb", [], [], id="close partial bom"),
]


@pytest.mark.parametrize(
    ("body", "expected", "at_close"),
    LINE_END_CASES + BOM_CASES + FIELD_CASES + DISPATCH_CASES,
)
def test_parser_cases(
    body: bytes, expected: list[ServerSentEvent], at_close: list[ServerSentEvent]
) -> None:
    assert_parses(body, expected, at_close)


# --- chunk boundaries, state and errors ----------------------------------------------------


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = SSEParser()

    assert parser.feed(b"data: a\r") == []
    # If this LF counted as a second line end, it would dispatch "a" on its own.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [sse(b"a\nb")]
    assert parser.feed(b"\ndata: c\n\n") == [sse(b"c")]


def test_cr_at_chunk_end_then_data() -> None:
    parser = SSEParser()

    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [sse(b"a")]
    assert parser.feed(b"data: b\n\n") == [sse(b"b")]


def test_bom_split_over_chunks() -> None:
    parser = SSEParser()

    assert parser.feed(b"\xef") == []
    assert parser.pending_bytes == 1
    assert parser.feed(b"\xbb") == []
    assert parser.pending_bytes == 2
    assert parser.feed(b"\xbfdata: a\n\n") == [sse(b"a")]
    assert parser.pending_bytes == 0


def test_bom_split_then_second_bom_kept() -> None:
    parser = SSEParser()

    assert parser.feed(b"\xef\xbb") == []
    assert parser.feed(b"\xbf" + BOM + b"data: a\n\n") == []
    assert parser.feed(b"data: b\n\n") == [sse(b"b")]


def test_pending_bytes_counts_incomplete_line() -> None:
    parser = SSEParser()

    assert parser.pending_bytes == 0
    parser.feed(b"data: a\ndata: b")
    assert parser.pending_bytes == len(b"data: b")
    parser.feed(b"cd")
    assert parser.pending_bytes == len(b"data: bcd")
    parser.feed(b"\n")
    assert parser.pending_bytes == 0


def test_feed_empty_bytes() -> None:
    parser = SSEParser()

    assert parser.feed(b"") == []
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n\n") == [sse(b"a")]


@pytest.mark.parametrize(
    "chunk",
    [
        pytest.param(bytearray(b"data: a\n\n"), id="bytearray"),
        pytest.param(memoryview(b"data: a\n\n"), id="memoryview"),
    ],
)
def test_feed_bytes_like_returns_bytes(chunk: Any) -> None:
    parser = SSEParser()

    events = parser.feed(chunk)

    assert events == [sse(b"a")]
    assert type(events[0].data) is bytes


def test_feed_after_close_raises() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n\n")
    parser.close()

    with pytest.raises(SSEParserClosedError, match=r"feed\(\) after close\(\)"):
        parser.feed(b"data: b\n\n")


def test_close_twice_returns_nothing() -> None:
    parser = SSEParser()
    parser.feed(b"data: a")

    assert parser.close() == [sse(b"a")]
    assert parser.close() == []


def test_errors_are_decode_errors() -> None:
    assert issubclass(SSEDecodeError, DecodeError)
    assert issubclass(SSEParserClosedError, SSEDecodeError)
    assert issubclass(SSEEventTooLargeError, SSEDecodeError)


def test_max_event_bytes_incomplete_line() -> None:
    parser = SSEParser(max_event_bytes=100)
    parser.feed(b"data: " + b"x" * 90)

    with pytest.raises(SSEEventTooLargeError, match=r"106 bytes pending.*max_event_bytes=100"):
        parser.feed(b"x" * 10)

    assert parser.pending_bytes == 0


def test_max_event_bytes_data_lines() -> None:
    parser = SSEParser(max_event_bytes=100)
    parser.feed(b"data: " + b"x" * 60 + b"\n")

    with pytest.raises(SSEEventTooLargeError, match=r"122 bytes pending.*0 in an incomplete"):
        parser.feed(b"data: " + b"y" * 60 + b"\n")


def test_max_event_bytes_keeps_events_of_same_call() -> None:
    parser = SSEParser(max_event_bytes=100)

    with pytest.raises(SSEEventTooLargeError) as caught:
        parser.feed(b"data: a\n\ndata: " + b"x" * 200)

    assert caught.value.events == [sse(b"a")]


def test_max_event_bytes_counts_after_dispatch() -> None:
    parser = SSEParser(max_event_bytes=100)
    parser.feed(b"data: " + b"x" * 90 + b"\n")

    # The blank line dispatches the 91 pending data bytes before the new line is buffered.
    events = parser.feed(b"\ndata: " + b"y" * 50)

    assert events == [sse(b"x" * 90)]
    assert parser.pending_bytes == 56


def test_feed_after_too_large_raises() -> None:
    parser = SSEParser(max_event_bytes=10)
    with pytest.raises(SSEEventTooLargeError):
        parser.feed(b"data: 0123456789")

    with pytest.raises(SSEParserClosedError, match=r"after the parser failed: SSE event too"):
        parser.feed(b"\n\n")
    assert parser.close() == []


@pytest.mark.parametrize("max_event_bytes", [0, -1])
def test_max_event_bytes_invalid(max_event_bytes: int) -> None:
    with pytest.raises(ConfigurationError, match=rf"max_event_bytes.*got {max_event_bytes}"):
        SSEParser(max_event_bytes=max_event_bytes)


def test_default_max_event_bytes() -> None:
    parser = SSEParser()
    line = b"data: " + b"x" * (DEFAULT_MAX_EVENT_BYTES - 7)

    assert parser.feed(line) == []
    with pytest.raises(SSEEventTooLargeError):
        parser.feed(b"xx")


def test_sse_all_pinned() -> None:
    assert sorted(tokenwire.sse.__all__) == [
        "DEFAULT_MAX_EVENT_BYTES",
        "SSEDecodeError",
        "SSEEventTooLargeError",
        "SSEParser",
        "SSEParserClosedError",
        "ServerSentEvent",
    ]


def test_server_sent_event_defaults() -> None:
    event = ServerSentEvent()

    assert event.event == "message"
    assert event.data == b""
    assert event.id is None
    assert event.retry is None


# --- linear cost ---------------------------------------------------------------------------


class CountingBuffer(bytearray):
    """A bytearray that counts the bytes its methods read, copy or move.

    The parser's buffer is replaced by one of these, so a change that rescans or copies the whole
    buffer on every feed shows up as a count that grows with the square of the input. Operations
    through the buffer protocol (such as `bytes.join`) are not seen.
    """

    bytes_touched = 0

    def __bytes__(self) -> bytes:
        self.bytes_touched += len(self)
        return bytes(memoryview(self))

    def __iadd__(self, other: Any, /) -> Self:  # type: ignore[misc]
        self.bytes_touched += len(other)
        bytearray.__iadd__(self, other)
        return self

    def extend(self, other: Any) -> None:
        self.bytes_touched += len(other)
        bytearray.extend(self, other)

    def __delitem__(self, key: Any) -> None:
        length = len(self)
        if isinstance(key, slice):
            _, stop, _ = key.indices(length)
            # Deleting a slice moves the bytes after it.
            self.bytes_touched += length - stop
        else:
            self.bytes_touched += length
        bytearray.__delitem__(self, key)


def _count_read(name: str) -> Any:
    method = getattr(bytearray, name)

    def counted(self: CountingBuffer, *args: Any, **kwargs: Any) -> Any:
        self.bytes_touched += len(self)
        return method(self, *args, **kwargs)

    return counted


for _name in (
    "__add__",
    "__contains__",
    "__eq__",
    "__getitem__",
    "__iter__",
    "copy",
    "count",
    "decode",
    "endswith",
    "find",
    "index",
    "partition",
    "replace",
    "rfind",
    "rindex",
    "split",
    "splitlines",
    "startswith",
):
    setattr(CountingBuffer, _name, _count_read(_name))

LONG_LINE_BYTES = 1024 * 1024


def test_long_line_fed_bytewise_is_linear() -> None:
    parser = SSEParser()
    buffer = CountingBuffer()
    parser._buffer = buffer  # test hook: watch every access to the line buffer
    line = b"data: " + b"x" * LONG_LINE_BYTES

    parser.feed(b":\n")  # decides the BOM check before the counting starts
    buffer.bytes_touched = 0
    for index in range(len(line)):
        assert parser.feed(line[index : index + 1]) == []
        if index % 4096 == 0:
            # Checked as it goes, so that a quadratic change fails in seconds, not hours.
            assert buffer.bytes_touched <= 3 * (index + 1)
    assert parser.pending_bytes == len(line)
    events = parser.feed(b"\n\n")

    assert len(events) == 1
    assert len(events[0].data) == LONG_LINE_BYTES
    # Appending each byte once and copying the line out once is 2 bytes per input byte.
    assert buffer.bytes_touched <= 3 * len(line)


def test_counting_buffer_sees_rescans() -> None:
    buffer = CountingBuffer(b"x" * 100)

    for _ in range(10):
        buffer.find(b"\n")

    assert buffer.bytes_touched == 1000


# --- property tests ----------------------------------------------------------------------------


# The parser ignores `retry` values with more significant digits than this.
MAX_RETRY_DIGITS = 640


@dataclass
class ReferenceState:
    data: bytearray = field(default_factory=bytearray)
    event_type: str = ""
    last_event_id: str = ""
    retry: int | None = None
    events: list[ServerSentEvent] = field(default_factory=list)

    def dispatch(self) -> None:
        if self.data:
            data = bytes(self.data)
            if data.endswith(b"\n"):
                data = data[:-1]
            self.events.append(
                ServerSentEvent(
                    event=self.event_type or "message",
                    data=data,
                    id=self.last_event_id or None,
                    retry=self.retry,
                )
            )
        self.data = bytearray()
        self.event_type = ""
        self.retry = None

    def process_line(self, line: bytes) -> None:
        if line == b"":
            self.dispatch()
            return
        if line.startswith(b":"):
            return
        if b":" in line:
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
        else:
            name, value = line, b""

        if name == b"data":
            self.data += value + b"\n"
        elif name == b"event":
            self.event_type = value.decode("utf-8", "replace")
        elif name == b"id" and b"\x00" not in value:
            self.last_event_id = value.decode("utf-8", "replace")
        elif (
            name == b"retry"
            and re.fullmatch(rb"[0-9]+", value)
            and len(value.lstrip(b"0")) <= MAX_RETRY_DIGITS
        ):
            self.retry = int(value)


def reference_parse(body: bytes) -> tuple[list[ServerSentEvent], list[ServerSentEvent]]:
    """Apply the standard's rules to the whole body, with this project's close rule."""
    if body.startswith(BOM):
        body = body[len(BOM) :]
    *complete_lines, last_line = re.split(rb"\r\n|\r|\n", body)

    state = ReferenceState()
    for line in complete_lines:
        state.process_line(line)
    dispatched = state.events
    state.events = []

    if last_line:
        state.process_line(last_line)
    state.process_line(b"")
    return dispatched, state.events


VALUE_PIECES = [b"a", b"Z", b" ", b":", b"0", b"7", b"\x00", b"\xff", "é".encode(), BOM, b"\t"]
# Entries repeat to weight the draw toward the common cases.
FIELD_NAMES = [
    b"data",
    b"data",
    b"data",
    b"event",
    b"id",
    b"retry",
    b"retry",
    b"",
    b"Data",
    b"foo",
    b"data ",
]
SEPARATORS = [b":", b": ", b": ", b":  ", b""]
LINE_ENDS = [b"\n", b"\r", b"\r\n"]
STREAM_STARTS = [b"", b"", BOM, BOM, BOM + BOM, b"\xef\xbb"]

values = st.one_of(
    st.lists(st.sampled_from(VALUE_PIECES), max_size=6).map(b"".join),
    st.integers(min_value=0, max_value=10**6).map(lambda number: str(number).encode()),
)
field_lines = st.builds(
    lambda name, separator, value: name + separator + (value if separator else b""),
    st.sampled_from(FIELD_NAMES),
    st.sampled_from(SEPARATORS),
    values,
)
lines = st.one_of(field_lines, field_lines, field_lines, st.just(b""), st.just(b": comment"))
# A block is a few lines and the blank line that ends it. Lines may be blank themselves.
blocks = st.lists(lines, min_size=1, max_size=5).map(lambda block: [*block, b""])


@st.composite
def event_streams(draw: st.DrawFn) -> bytes:
    body = draw(st.sampled_from(STREAM_STARTS))
    for block in draw(st.lists(blocks, max_size=8)):
        for line in block:
            body += line + draw(st.sampled_from(LINE_ENDS))
    if draw(st.booleans()):
        body += draw(field_lines)  # an incomplete last line
    return body


@st.composite
def chunkings(draw: st.DrawFn, body: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=20)))
    bounds = [0, *cuts, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_chunking_matches_whole_feed(data: st.DataObject) -> None:
    body = data.draw(event_streams())
    chunks = data.draw(chunkings(body))

    parser = SSEParser()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    pending_bytes = parser.pending_bytes

    whole_events, whole_at_close = parse_whole(body)
    assert events == whole_events
    assert parser.close() == whole_at_close
    assert pending_bytes == len(incomplete_last_line(body))


@settings(max_examples=400, deadline=None)
@given(body=event_streams())
def test_parser_matches_reference_model(body: bytes) -> None:
    assert parse_whole(body) == reference_parse(body)
    assert parse_chunks(split_bytewise(body)) == reference_parse(body)


def test_reference_model_examples() -> None:
    # The model is checked against a few hand-written results too, so that a bug shared by the
    # parser and the model does not pass the property tests unnoticed.
    assert reference_parse(b"data: a\r\n\r\n") == ([sse(b"a")], [])
    assert reference_parse(BOM + b"data: a\rdata:b") == ([], [sse(b"a\nb")])
    assert reference_parse(b"id: 1\nretry: 5\ndata\n\n") == ([sse(b"", id="1", retry=5)], [])
