"""The event-stream decoder against the framing vectors of aws-sdk-go and smithy-rs.

The vectors live in the shared wire corpus, found through `TOKENWIRE_SHARED`
(default: the directory `shared` beside the repository root). Their expected
outcomes are listed in `wire-corpus/EVENTSTREAM_VECTORS.tsv`. aws-sdk-go ships a
JSON rendering of each valid frame, in which string, byte-array and UUID header
values and the payload are base64-encoded and timestamps are integer
milliseconds since the epoch.
"""

from __future__ import annotations

import base64
import csv
import datetime
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tokenwire.decoders.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    EventStreamMessage,
    MessageChecksumError,
    PreludeChecksumError,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TOKENWIRE_SHARED", REPOSITORY_ROOT.parent / "shared"))
CORPUS = SHARED / "wire-corpus"
VECTORS_TSV = CORPUS / "EVENTSTREAM_VECTORS.tsv"

if not VECTORS_TSV.is_file():
    pytest.skip(f"event-stream vectors not found at {VECTORS_TSV}", allow_module_level=True)

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def read_vectors() -> list[dict[str, str]]:
    with VECTORS_TSV.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file, delimiter="\t"))


VECTORS = read_vectors()
VALID = [row for row in VECTORS if row["valid"] == "valid"]
INVALID = [row for row in VECTORS if row["valid"] == "invalid"]


def vector_params(rows: list[dict[str, str]]) -> list[Any]:
    return [
        pytest.param(row, id=row["local_path"].removeprefix("aws_eventstream/")) for row in rows
    ]


def decode_whole(data: bytes) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder()
    messages = decoder.feed(data)
    decoder.close()
    return messages


def decode_bytewise(data: bytes) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder()
    messages: list[EventStreamMessage] = []
    for index in range(len(data)):
        messages += decoder.feed(data[index : index + 1])
    decoder.close()
    return messages


def test_vectors_listed() -> None:
    assert len(VALID) >= 1
    assert len(INVALID) >= 1


@pytest.mark.parametrize("row", vector_params(VALID))
def test_valid_vector_decodes(row: dict[str, str]) -> None:
    data = (CORPUS / row["local_path"]).read_bytes()

    messages = decode_whole(data)

    assert len(messages) == int(row["messages"])
    assert decode_bytewise(data) == messages
    if row["payload_bytes"] != "-":
        assert len(messages[-1].payload) == int(row["payload_bytes"])
    header_names = [] if row["header_names"] == "-" else row["header_names"].split(",")
    assert list(messages[-1].headers) == header_names


def json_header_value(type_code: int, value: Any) -> Any:
    """Convert one aws-sdk-go JSON header value to the type the decoder returns."""
    if type_code == 7:
        return base64.b64decode(value).decode("utf-8")
    if type_code == 6:
        return base64.b64decode(value)
    if type_code == 9:
        return uuid.UUID(bytes=base64.b64decode(value))
    if type_code == 8:
        return EPOCH + datetime.timedelta(milliseconds=value)
    return value


@pytest.mark.parametrize(
    "row", vector_params([row for row in VALID if row["source_repo"] == "aws/aws-sdk-go"])
)
def test_valid_vector_equals_decoded_json(row: dict[str, str]) -> None:
    encoded = CORPUS / row["local_path"]
    decoded_path = Path(str(encoded).replace("/encoded/", "/decoded/"))
    expected = json.loads(decoded_path.read_text(encoding="utf-8"))

    (message,) = decode_whole(encoded.read_bytes())

    expected_headers = [
        (header["name"], json_header_value(header["type"], header["value"]))
        for header in expected["headers"]
    ]
    headers = list(message.headers.items())
    assert [(name, type(value)) for name, value in headers] == [
        (name, type(value)) for name, value in expected_headers
    ]
    assert headers == expected_headers
    assert message.payload == base64.b64decode(expected["payload"])


# "true=True, byte=50, bytes='some bytes', time=5000000000": the smithy-rs rows'
# expected header values, written in Python literal style.
HEADER_CLAUSE = re.compile(r"headers: (.*?); payload")
HEADER_ITEM = re.compile(r"([\w-]+)=('[^']*'|[^,]+)")


def matches_text(value: Any, text: str) -> bool:
    """Compare a decoded header value with its expected text from the vectors table."""
    if isinstance(value, bool):
        return str(value) == text
    if isinstance(value, datetime.datetime):
        return value == EPOCH + datetime.timedelta(milliseconds=int(text))
    if isinstance(value, int):
        return value == int(text)
    unquoted = text.strip("'")
    if isinstance(value, uuid.UUID):
        return value.hex == unquoted
    if isinstance(value, bytes):
        return value == unquoted.encode()
    return bool(value == unquoted)


@pytest.mark.parametrize(
    "row",
    vector_params([row for row in VALID if HEADER_CLAUSE.search(row["expected_outcome"])]),
)
def test_valid_vector_header_values(row: dict[str, str]) -> None:
    clause = HEADER_CLAUSE.search(row["expected_outcome"])
    assert clause is not None
    expected = dict(HEADER_ITEM.findall(clause.group(1)))

    (message,) = decode_whole((CORPUS / row["local_path"]).read_bytes())

    assert list(message.headers) == list(expected)
    for name, text in expected.items():
        assert matches_text(message.headers[name], text), (name, message.headers[name], text)


def test_smithy_valid_vectors_concatenated() -> None:
    rows = [row for row in VALID if row["source_repo"] == "smithy-lang/smithy-rs"]
    frames = [(CORPUS / row["local_path"]).read_bytes() for row in rows]
    if len(frames) < 2:
        pytest.skip("fewer than two smithy-rs valid vectors")

    messages = decode_bytewise(b"".join(frames))

    assert messages == [message for frame in frames for message in decode_whole(frame)]


def expected_error_class(row: dict[str, str]) -> type[EventStreamError]:
    # Only the checksum rows map to one class. This decoder checks the message CRC
    # before it parses headers, while smithy-rs parses headers first. So where
    # smithy-rs reports a header value or name error, this decoder raises
    # MessageChecksumError, and for a headers length past the frame, FrameLengthError.
    outcome = row["expected_outcome"].lower().replace(" ", "")
    if "preludechecksummismatch" in outcome:
        return PreludeChecksumError
    if "messagechecksummismatch" in outcome:
        return MessageChecksumError
    return EventStreamError


@pytest.mark.parametrize("row", vector_params(INVALID))
def test_invalid_vector_rejected(row: dict[str, str]) -> None:
    data = (CORPUS / row["local_path"]).read_bytes()

    with pytest.raises(EventStreamError) as whole_error:
        decode_whole(data)
    with pytest.raises(EventStreamError) as bytewise_error:
        decode_bytewise(data)

    assert isinstance(whole_error.value, expected_error_class(row))
    assert type(bytewise_error.value) is type(whole_error.value)
