"""The JSON array and JSON Lines splitters: element boundaries under any chunking, and errors."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.jsonstream import (
    JSONArrayError,
    JSONArraySplitter,
    JSONStreamClosedError,
    JSONStreamTooLargeError,
    LineSplitter,
)
from tokenwire.errors import DecodeError

# A Gemini-style array stream: elements separated by "\n,\r\n", with strings that
# contain every byte the splitter treats specially.
ARRAY_ELEMENTS = (
    b'{"candidates": [{"content": {"parts": [{"text": "a ] } , [ {"}]}}]}',
    b'{"text": "escaped \\" quote and \\\\ backslash", "nested": {"a": [1, {"b": []}]}}',
    b'{"usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 259}}',
)
ARRAY_BODY = b"[" + b"\n,\r\n".join(ARRAY_ELEMENTS) + b"\n]"

LINES = (b'{"event_type": "stream-start"}', b'{"text": "line with \\n escape"}', b'{"n": 3}')
NDJSON_BODY = b"\n".join(LINES) + b"\n"


def _split_array(chunks: list[bytes]) -> list[bytes]:
    splitter = JSONArraySplitter()
    elements: list[bytes] = []
    for chunk in chunks:
        elements += splitter.feed(chunk)
    elements += splitter.close()
    return elements


def _split_lines(chunks: list[bytes]) -> list[bytes]:
    splitter = LineSplitter()
    lines: list[bytes] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    lines += splitter.close()
    return lines


def _bytewise(body: bytes) -> list[bytes]:
    return [body[index : index + 1] for index in range(len(body))]


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([ARRAY_BODY], id="whole"),
        pytest.param(_bytewise(ARRAY_BODY), id="bytewise"),
        pytest.param([ARRAY_BODY, b" \r\n\t"], id="trailing-whitespace"),
    ],
)
def test_array_splitter_returns_each_element(chunks: list[bytes]) -> None:
    assert _split_array(chunks) == list(ARRAY_ELEMENTS)


def test_array_splitter_elements_are_valid_json() -> None:
    for element in _split_array([ARRAY_BODY]):
        assert isinstance(json.loads(element), dict)


def test_array_splitter_returns_element_when_complete() -> None:
    splitter = JSONArraySplitter()

    first = splitter.feed(b'[{"a": 1}, {"b": ')
    second = splitter.feed(b"2}")

    assert first == [b'{"a": 1}']
    assert second == [b'{"b": 2}']
    assert splitter.pending_bytes == 0


def test_array_splitter_single_object_body() -> None:
    body = b'{"error": {"code": 400, "status": "INVALID_ARGUMENT"}}\n'

    assert _split_array(_bytewise(body)) == [body.strip()]


def test_array_splitter_empty_array_and_empty_body() -> None:
    assert _split_array([b" [ ] "]) == []
    assert _split_array([b""]) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b'[{"a": 1}, {"b": [', "ended inside an element", id="cut-in-element"),
        pytest.param(b'[{"a": 1},', "without its closing ']'", id="cut-between"),
        pytest.param(b'[{"a": "x\\', "ended inside an element", id="cut-after-escape"),
    ],
)
def test_array_splitter_close_reports_cut_body(body: bytes, message: str) -> None:
    splitter = JSONArraySplitter()
    splitter.feed(body)

    with pytest.raises(JSONArrayError, match=message) as raised:
        splitter.close()

    assert isinstance(raised.value, DecodeError)


def test_array_splitter_close_counts_bytes() -> None:
    splitter = JSONArraySplitter()
    splitter.feed(b'[{"a": 1}, {"bc": ')

    with pytest.raises(JSONArrayError, match=r"7 bytes of it received after the first 11 bytes"):
        splitter.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"data: {}", "starts with b'd'", id="sse-instead"),
        pytest.param(b"[1, 2]", "between JSON array elements", id="bare-number"),
        pytest.param(b'[{"a": 1}] x', "after the end of the JSON array", id="after-end"),
        pytest.param(b'[{"a": 1}}]', "between JSON array elements", id="extra-brace"),
    ],
)
def test_array_splitter_rejects_invalid_framing(body: bytes, message: str) -> None:
    splitter = JSONArraySplitter()

    with pytest.raises(JSONArrayError, match=message):
        splitter.feed(body)
    with pytest.raises(JSONStreamClosedError):
        splitter.feed(b"[]")


def test_array_splitter_cap_rejects_endless_element() -> None:
    splitter = JSONArraySplitter(max_element_bytes=16)
    splitter.feed(b'[{"a": "0123456')

    with pytest.raises(JSONStreamTooLargeError, match="exceeds 16 bytes"):
        splitter.feed(b"789abcdef")


def test_array_splitter_cap_allows_many_small_elements() -> None:
    body = b"[" + b",".join([b'{"n": 1}'] * 100) + b"]"

    assert len(_split_array([body])) == 100


def test_array_splitter_feed_after_close_raises() -> None:
    splitter = JSONArraySplitter()
    splitter.close()

    with pytest.raises(JSONStreamClosedError):
        splitter.feed(b"[")
    assert splitter.close() == []


@given(st.lists(st.integers(min_value=0, max_value=len(ARRAY_BODY)), max_size=40))
def test_array_splitter_any_chunking(cuts: list[int]) -> None:
    points = sorted({0, len(ARRAY_BODY), *cuts})
    chunks = [ARRAY_BODY[start:end] for start, end in itertools.pairwise(points)]

    assert _split_array(chunks) == list(ARRAY_ELEMENTS)


@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=5),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=4,
        ),
        max_size=5,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_array_splitter_any_json_objects(documents: list[dict[str, object]], size: int) -> None:
    body = json.dumps(documents, indent=1).encode()
    chunks = [body[offset : offset + size] for offset in range(0, len(body), size)]

    assert [json.loads(element) for element in _split_array(chunks)] == documents


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([NDJSON_BODY], id="whole"),
        pytest.param(_bytewise(NDJSON_BODY), id="bytewise"),
        pytest.param([NDJSON_BODY, b"\r\n\n  \n"], id="trailing-blank-lines"),
    ],
)
def test_line_splitter_returns_each_line(chunks: list[bytes]) -> None:
    assert _split_lines(chunks) == list(LINES)


def test_line_splitter_strips_crlf_and_skips_blank_lines() -> None:
    assert _split_lines([b'{"a": 1}\r\n\r\n\n{"b": 2}\r\n']) == [b'{"a": 1}', b'{"b": 2}']


def test_line_splitter_close_returns_unterminated_line() -> None:
    splitter = LineSplitter()

    assert splitter.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert splitter.pending_bytes == 4
    assert splitter.close() == [b'{"b"']
    assert splitter.close() == []


def test_line_splitter_cap_rejects_endless_line() -> None:
    splitter = LineSplitter(max_line_bytes=8)

    with pytest.raises(JSONStreamTooLargeError, match="exceeds 8 bytes"):
        splitter.feed(b'{"a": "0123')
    with pytest.raises(JSONStreamClosedError):
        splitter.feed(b"\n")


@pytest.mark.parametrize("splitter_class", [JSONArraySplitter, LineSplitter])
def test_splitters_reject_nonpositive_cap(splitter_class: type) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        splitter_class(
            **{"max_element_bytes" if splitter_class is JSONArraySplitter else "max_line_bytes": 0}
        )


@given(st.lists(st.integers(min_value=0, max_value=len(NDJSON_BODY)), max_size=30))
def test_line_splitter_any_chunking(cuts: list[int]) -> None:
    points = sorted({0, len(NDJSON_BODY), *cuts})
    chunks = [NDJSON_BODY[start:end] for start, end in itertools.pairwise(points)]

    assert _split_lines(chunks) == list(LINES)


def test_array_splitter_linear_on_large_element() -> None:
    # One element of 4 MiB fed in 4 KiB pieces: resuming scans keep this fast.
    payload = b'{"data": "' + b"A" * (4 * 1024 * 1024) + b'"}'
    body = b"[" + payload + b"]"
    chunks = [body[offset : offset + 4096] for offset in range(0, len(body), 4096)]

    assert _split_array(chunks) == [payload]
