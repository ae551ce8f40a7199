"""Unit tests for tokenwire.testing.cassettes, on cassettes written here as YAML text."""

from __future__ import annotations

import base64
import gzip
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenwire.errors import TokenwireError
from tokenwire.testing.cassettes import (
    CassetteError,
    RecordedRequest,
    RecordedResponse,
    find_cassettes,
    load_cassette,
)

CHAT_URI = "https://api.openai.com/v1/chat/completions"
REQUEST_JSON = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
RESPONSE_JSON = '{"id":"chatcmpl-1","usage":{"prompt_tokens":9,"completion_tokens":3}}'
# The same response compressed as a server would send it. mtime=0 keeps the bytes stable.
RESPONSE_GZIP = gzip.compress(RESPONSE_JSON.encode(), mtime=0)

# A parsed_body as pydantic-ai writes it: the JSON tree as YAML, keys sorted.
PARSED_RESPONSE_YAML = """\
    parsed_body:
      id: msg_1
      stop_reason: null
      usage:
        cache_read_input_tokens: 1111
        input_tokens: 3
        output_tokens: 42
      weights:
      - 0.5
      - true"""
PARSED_RESPONSE_TREE = {
    "id": "msg_1",
    "stop_reason": None,
    "usage": {"cache_read_input_tokens": 1111, "input_tokens": 3, "output_tokens": 42},
    "weights": [0.5, True],
}

STATUS_OK = """\
    status:
      code: 200
      message: OK"""
JSON_HEADERS = """\
    headers:
      Content-Type:
      - application/json"""


def yaml_quote(text: str) -> str:
    """Quote text as a YAML single-quoted scalar."""
    return "'" + text.replace("'", "''") + "'"


def yaml_binary(data: bytes, indent: int) -> str:
    """Write data as a !!binary block scalar whose lines are indented by indent spaces."""
    lines = base64.encodebytes(data).decode("ascii").splitlines()
    return "!!binary |\n" + "\n".join(" " * indent + line for line in lines)


def make_cassette(
    *,
    method: str = "POST",
    request_headers: str = JSON_HEADERS,
    request_body: str = f"    body: {yaml_quote(REQUEST_JSON)}",
    status: str = STATUS_OK,
    response_headers: str = JSON_HEADERS,
    response_body: str = f"    body:\n      string: {yaml_quote(RESPONSE_JSON)}",
    version: str = "version: 1",
) -> str:
    """Build a one-interaction cassette from YAML parts indented as keys of a request."""
    return (
        "interactions:\n"
        "- request:\n"
        f"{request_body}\n"
        f"{request_headers}\n"
        f"    method: {method}\n"
        f"    uri: {CHAT_URI}\n"
        "  response:\n"
        f"{response_body}\n"
        f"{response_headers}\n"
        f"{status}\n"
        f"{version}\n"
    )


def write_cassette(directory: Path, text: str, name: str = "cassette.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_one(directory: Path, text: str) -> tuple[RecordedRequest, RecordedResponse]:
    interactions = load_cassette(write_cassette(directory, text))
    assert len(interactions) == 1
    return interactions[0].request, interactions[0].response


def header_values(headers: tuple[tuple[str, str], ...], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


# --- bodies ---------------------------------------------------------------------------


def test_load_string_bodies(tmp_path: Path) -> None:
    request, response = load_one(tmp_path, make_cassette(method="post"))

    assert request.method == "POST"
    assert request.uri == CHAT_URI
    assert request.body == REQUEST_JSON.encode()
    assert response.status == 200
    assert response.body == RESPONSE_JSON.encode()
    assert response.body_form == "string"
    assert response.headers == (("Content-Type", "application/json"),)


def test_load_string_body_non_ascii_as_utf8(tmp_path: Path) -> None:
    text = '{"content":"héllo ✓ 日本"}'
    cassette = make_cassette(response_body=f"    body:\n      string: {yaml_quote(text)}")

    _, response = load_one(tmp_path, cassette)

    assert response.body == text.encode("utf-8")


def test_load_lone_surrogate_rejected(tmp_path: Path) -> None:
    cassette = make_cassette(response_body='    body:\n      string: "a\\ud800b"')

    with pytest.raises(CassetteError, match=r"invalid YAML|not encodable as UTF-8"):
        load_one(tmp_path, cassette)


def test_load_interactions_in_file_order(tmp_path: Path) -> None:
    first = make_cassette(request_body="    body: first")
    second = make_cassette(request_body="    body: second")
    # Join the interaction lists of two one-interaction cassettes.
    second_entries = second.removeprefix("interactions:\n").removesuffix("version: 1\n")
    text = first.removesuffix("version: 1\n") + second_entries + "version: 1\n"

    interactions = load_cassette(write_cassette(tmp_path, text))

    assert [interaction.index for interaction in interactions] == [0, 1]
    assert [interaction.request.body for interaction in interactions] == [b"first", b"second"]


def test_load_gzip_binary_body_kept_encoded(tmp_path: Path) -> None:
    cassette = make_cassette(
        response_headers=JSON_HEADERS + "\n      Content-Encoding:\n      - gzip",
        response_body=f"    body:\n      string: {yaml_binary(RESPONSE_GZIP, 8)}",
    )

    _, response = load_one(tmp_path, cassette)

    assert response.body == RESPONSE_GZIP
    assert response.body_form == "binary"
    assert header_values(response.headers, "content-encoding") == ["gzip"]
    assert gzip.decompress(response.body) == RESPONSE_JSON.encode()


def test_load_binary_request_body(tmp_path: Path) -> None:
    payload = bytes(range(256))
    cassette = make_cassette(request_body=f"    body: {yaml_binary(payload, 6)}")

    request, _ = load_one(tmp_path, cassette)

    assert request.body == payload


def test_load_null_request_body(tmp_path: Path) -> None:
    request, _ = load_one(tmp_path, make_cassette(request_body="    body: null"))

    assert request.body is None


def test_load_request_without_body_key(tmp_path: Path) -> None:
    request, _ = load_one(tmp_path, make_cassette(request_body="    # no body"))

    assert request.body is None


def test_load_empty_response_string(tmp_path: Path) -> None:
    cassette = make_cassette(response_body="    body:\n      string: ''")

    _, response = load_one(tmp_path, cassette)

    assert response.body == b""
    assert response.body_form == "string"


# --- parsed_body ----------------------------------------------------------------------


def test_load_parsed_body_response_as_json(tmp_path: Path) -> None:
    cassette = make_cassette(response_body=PARSED_RESPONSE_YAML)

    _, response = load_one(tmp_path, cassette)

    assert response.body_form == "parsed_body"
    assert json.loads(response.body) == PARSED_RESPONSE_TREE
    assert b": " not in response.body, "expected compact JSON"
    assert b", " not in response.body, "expected compact JSON"


def test_load_parsed_body_request_as_json(tmp_path: Path) -> None:
    request_yaml = """\
    parsed_body:
      max_tokens: 4096
      messages:
      - content: hi
        role: user
      model: claude-sonnet-4-5"""

    request, _ = load_one(tmp_path, make_cassette(request_body=request_yaml))

    assert request.body is not None
    assert json.loads(request.body) == {
        "max_tokens": 4096,
        "messages": [{"content": "hi", "role": "user"}],
        "model": "claude-sonnet-4-5",
    }


def test_load_parsed_body_request_drops_stale_length(tmp_path: Path) -> None:
    headers = JSON_HEADERS + "\n      content-length:\n      - '5637'"
    request_yaml = "    parsed_body:\n      model: m"

    request, _ = load_one(
        tmp_path, make_cassette(request_headers=headers, request_body=request_yaml)
    )

    assert header_values(request.headers, "content-length") == []
    assert header_values(request.headers, "content-type") == ["application/json"]


@pytest.mark.parametrize(
    ("parsed_yaml", "expected"),
    [
        pytest.param("    parsed_body:\n    - 1\n    - two", [1, "two"], id="list"),
        pytest.param("    parsed_body: {}", {}, id="empty-mapping"),
        pytest.param("    parsed_body: plain text", "plain text", id="string"),
        pytest.param(
            "    parsed_body: 12345678901234567890123", 12345678901234567890123, id="big-int"
        ),
        pytest.param("    parsed_body: null", None, id="null"),
    ],
)
def test_load_parsed_body_other_json_values(
    tmp_path: Path, parsed_yaml: str, expected: object
) -> None:
    _, response = load_one(tmp_path, make_cassette(response_body=parsed_yaml))

    assert json.loads(response.body) == expected


def test_parsed_body_headers_drop_encoding_and_length(tmp_path: Path) -> None:
    headers = """\
    headers:
      content-type:
      - application/json; charset=UTF-8
      content-encoding:
      - gzip
      content-length:
      - '2081'
      transfer-encoding:
      - chunked
      x-request-id:
      - req_1"""

    _, response = load_one(
        tmp_path, make_cassette(response_headers=headers, response_body=PARSED_RESPONSE_YAML)
    )

    assert response.headers == (
        ("content-type", "application/json; charset=UTF-8"),
        ("x-request-id", "req_1"),
    )


def test_parsed_body_without_content_type_gets_json(tmp_path: Path) -> None:
    headers = "    headers:\n      x-request-id:\n      - req_1"

    _, response = load_one(
        tmp_path, make_cassette(response_headers=headers, response_body=PARSED_RESPONSE_YAML)
    )

    assert response.headers == (("x-request-id", "req_1"), ("content-type", "application/json"))


@pytest.mark.parametrize(
    ("parsed_yaml", "fragment"),
    [
        pytest.param("    parsed_body:\n      created: 2024-05-01", "/created", id="date"),
        pytest.param("    parsed_body:\n      score: .nan", "/score", id="nan"),
        pytest.param("    parsed_body:\n      score: -.inf", "/score", id="infinity"),
        pytest.param("    parsed_body:\n      1: one", "key 1", id="integer-key"),
        pytest.param("    parsed_body:\n      blob: !!binary aGk=", "/blob", id="bytes"),
        pytest.param("    parsed_body:\n      a:\n      - x: !!set {b}", "/a/0/x", id="set"),
        pytest.param("    parsed_body:\n      a/b~c: 2024-05-01", "/a~1b~0c", id="pointer-escaped"),
    ],
)
def test_parsed_body_non_json_value_rejected(
    tmp_path: Path, parsed_yaml: str, fragment: str
) -> None:
    with pytest.raises(CassetteError, match="interaction 0 response parsed_body") as caught:
        load_one(tmp_path, make_cassette(response_body=parsed_yaml))

    assert fragment in caught.value.reason


def test_parsed_body_alias_bomb_rejected(tmp_path: Path) -> None:
    # Each level repeats the previous one ten times by alias: 10**9 leaves in 10 lines.
    levels = ["      a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        levels.append(f"      a{level}: &a{level} [{', '.join([previous] * 10)}]")
    parsed_yaml = "    parsed_body:\n" + "\n".join(levels)

    with pytest.raises(CassetteError, match="more than 1000000 values"):
        load_one(tmp_path, make_cassette(response_body=parsed_yaml))


def test_body_and_parsed_body_together_rejected(tmp_path: Path) -> None:
    both = f"    body:\n      string: {yaml_quote(RESPONSE_JSON)}\n" + PARSED_RESPONSE_YAML

    with pytest.raises(CassetteError, match="both 'body' and 'parsed_body'"):
        load_one(tmp_path, make_cassette(response_body=both))


# --- headers --------------------------------------------------------------------------


def test_headers_scalar_value_accepted(tmp_path: Path) -> None:
    headers = (
        "    headers:\n      Set-Cookie: session=abc; Secure\n      openai-organization: org-1"
    )

    _, response = load_one(tmp_path, make_cassette(response_headers=headers))

    assert response.headers == (
        ("Set-Cookie", "session=abc; Secure"),
        ("openai-organization", "org-1"),
    )


def test_headers_multiple_values_flattened_in_order(tmp_path: Path) -> None:
    headers = """\
    headers:
      Vary:
      - Origin
      - X-Origin
      Content-Type:
      - application/json
      vary:
      - Referer"""

    _, response = load_one(tmp_path, make_cassette(response_headers=headers))

    assert response.headers == (
        ("Vary", "Origin"),
        ("Vary", "X-Origin"),
        ("Content-Type", "application/json"),
        ("vary", "Referer"),
    )


def test_headers_binary_value_decoded(tmp_path: Path) -> None:
    headers = f"    headers:\n      amz-sdk-invocation-id:\n      - {yaml_binary(b'c7d963d8', 8)}"

    request, _ = load_one(tmp_path, make_cassette(request_headers=headers))

    assert request.headers == (("amz-sdk-invocation-id", "c7d963d8"),)


def test_headers_missing_means_none(tmp_path: Path) -> None:
    request, _ = load_one(tmp_path, make_cassette(request_headers="    headers: null"))

    assert request.headers == ()


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        pytest.param("    headers:\n      Content-Length: 12", "Content-Length", id="integer"),
        pytest.param("    headers:\n      X-Flag:\n      - yes", "X-Flag", id="boolean"),
        pytest.param("    headers:\n      X-List:\n      - [a, b]", "X-List", id="nested-list"),
        pytest.param("    headers:\n    - Content-Type", "must be a mapping", id="list"),
    ],
)
def test_headers_non_string_rejected(tmp_path: Path, headers: str, fragment: str) -> None:
    with pytest.raises(CassetteError, match="interaction 0 response headers") as caught:
        load_one(tmp_path, make_cassette(response_headers=headers))

    assert fragment in caught.value.reason


def test_headers_transfer_encoding_removed(tmp_path: Path) -> None:
    headers = JSON_HEADERS + "\n      Transfer-Encoding:\n      - chunked"

    _, response = load_one(tmp_path, make_cassette(response_headers=headers))

    assert response.headers == (("Content-Type", "application/json"),)


def test_headers_matching_content_length_kept(tmp_path: Path) -> None:
    length = len(RESPONSE_JSON.encode())
    headers = JSON_HEADERS + f"\n      Content-Length:\n      - '{length}'"

    _, response = load_one(tmp_path, make_cassette(response_headers=headers))

    assert header_values(response.headers, "content-length") == [str(length)]


@pytest.mark.parametrize(
    "recorded_length",
    [
        pytest.param(str(len(RESPONSE_JSON.encode()) + 1), id="longer"),
        pytest.param("0", id="zero"),
        pytest.param("abc", id="not-a-number"),
    ],
)
def test_headers_wrong_content_length_dropped(tmp_path: Path, recorded_length: str) -> None:
    headers = JSON_HEADERS + f"\n      Content-Length:\n      - '{recorded_length}'"

    request, response = load_one(
        tmp_path, make_cassette(request_headers=headers, response_headers=headers)
    )

    assert header_values(response.headers, "content-length") == []
    assert header_values(request.headers, "content-length") == []


# --- content-encoding against the body ------------------------------------------------


def test_gzip_header_over_plain_body_dropped(tmp_path: Path) -> None:
    headers = JSON_HEADERS + "\n      Content-Encoding:\n      - gzip"

    _, response = load_one(tmp_path, make_cassette(response_headers=headers))

    assert response.body == RESPONSE_JSON.encode()
    assert response.headers == (("Content-Type", "application/json"),)


@pytest.mark.parametrize(
    ("coding", "body", "kept"),
    [
        pytest.param("gzip", RESPONSE_GZIP, True, id="gzip-over-gzip"),
        pytest.param("x-gzip", b"plain", False, id="x-gzip-over-plain"),
        pytest.param("zstd", b"\x28\xb5\x2f\xfd\x00\x58", True, id="zstd-frame"),
        pytest.param("zstd", b"\x5a\x2a\x4d\x18\x00\x00", True, id="zstd-skippable-frame"),
        pytest.param("zstd", b"plain", False, id="zstd-over-plain"),
        pytest.param("deflate", b"plain", True, id="deflate-unchecked"),
        pytest.param("br", b"plain", True, id="br-unchecked"),
        pytest.param("gzip, br", b"plain", True, id="stacked-unchecked"),
    ],
)
def test_content_encoding_checked_against_body(
    tmp_path: Path, coding: str, body: bytes, kept: bool
) -> None:
    headers = f"    headers:\n      Content-Encoding:\n      - {coding}"
    cassette = make_cassette(
        response_headers=headers,
        response_body=f"    body:\n      string: {yaml_binary(body, 8)}",
    )

    _, response = load_one(tmp_path, cassette)

    assert response.body == body
    assert header_values(response.headers, "content-encoding") == ([coding] if kept else [])


# --- layout errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        pytest.param("    status:\n      code: '200'", "must be an integer", id="string-code"),
        pytest.param("    status:\n      code: 200.0", "must be an integer", id="float-code"),
        pytest.param("    status:\n      code: true", "must be an integer", id="boolean-code"),
        pytest.param(
            "    status:\n      message: OK", "must be an integer, got null", id="no-code"
        ),
        pytest.param("    status: 200", "must be a mapping", id="bare-integer"),
        pytest.param("    status:\n      code: 999", "outside the HTTP status range", id="range"),
        pytest.param("    # no status", "status: missing", id="missing"),
    ],
)
def test_bad_status_rejected(tmp_path: Path, status: str, fragment: str) -> None:
    with pytest.raises(CassetteError, match="interaction 0 response status") as caught:
        load_one(tmp_path, make_cassette(status=status))

    assert fragment in caught.value.reason


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("version: 1\n", "missing the 'interactions' list", id="no-interactions"),
        pytest.param("interactions: {}\n", "'interactions' must be a list", id="mapping"),
        pytest.param("", "top level must be a mapping", id="empty-file"),
        pytest.param("- request: {}\n", "before format version 1", id="old-list-layout"),
        pytest.param("interactions: []\nversion: 2\n", "format version 2", id="version-2"),
        pytest.param("interactions:\n- 42\n", "interaction 0: must be a mapping", id="entry"),
        pytest.param(
            "interactions:\n- request:\n    method: GET\n    uri: https://example.com/\n",
            "interaction 0: missing 'response'",
            id="no-response",
        ),
        pytest.param(
            "interactions:\n- response: {}\n", "interaction 0: missing 'request'", id="no-request"
        ),
    ],
)
def test_bad_layout_rejected(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_cassette(tmp_path, text)

    with pytest.raises(CassetteError) as caught:
        load_cassette(path)

    assert fragment in caught.value.reason
    assert caught.value.path == str(path)


def test_empty_interactions_list_loads(tmp_path: Path) -> None:
    assert load_cassette(write_cassette(tmp_path, "interactions: []\nversion: 1\n")) == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"method": "''"}, "request method: must not be empty", id="empty-method"),
        pytest.param({"request_body": "    body: [1, 2]"}, "request body", id="list-body"),
        pytest.param(
            {"response_body": "    body: plain"}, "must be a mapping with a 'string'", id="bare"
        ),
        pytest.param({"response_body": "    body:\n      other: x"}, "'string'", id="no-string"),
        pytest.param(
            {"response_body": "    body:\n      string: 42"}, "got 42 (int)", id="integer-string"
        ),
        pytest.param({"response_body": "    # no body"}, "missing 'body'", id="no-body"),
    ],
)
def test_bad_request_or_body_rejected(
    tmp_path: Path, overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(CassetteError) as caught:
        load_one(tmp_path, make_cassette(**overrides))

    assert fragment in caught.value.reason


def test_relative_uri_rejected(tmp_path: Path) -> None:
    text = make_cassette().replace(CHAT_URI, "/v1/chat/completions")

    with pytest.raises(CassetteError, match="absolute http"):
        load_one(tmp_path, text)


def test_malformed_yaml_rejected(tmp_path: Path) -> None:
    path = write_cassette(tmp_path, "interactions:\n- request: {method: POST\n  response: [\n")

    with pytest.raises(CassetteError, match=r"invalid YAML at line \d+, column \d+") as caught:
        load_cassette(path)

    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, yaml.YAMLError)


def test_invalid_utf8_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"interactions: []\nnote: caf\xe9\n")

    with pytest.raises(CassetteError, match="invalid YAML"):
        load_cassette(path)


@pytest.mark.parametrize(
    "tagged_value",
    [
        pytest.param("!!python/object/apply:builtins.exec [{code}]", id="object-apply"),
        pytest.param("!!python/object/new:builtins.exec [{code}]", id="object-new"),
        pytest.param("!!python/name:builtins.exec", id="name"),
        pytest.param("!!python/object:collections.OrderedDict {{}}", id="object"),
    ],
)
def test_python_tag_rejected_not_executed(tmp_path: Path, tagged_value: str) -> None:
    marker = tmp_path / "executed"
    code = yaml_quote(f"open({str(marker)!r}, 'w').close()")
    cassette = make_cassette(request_body=f"    body: {tagged_value.format(code=code)}")

    with pytest.raises(CassetteError, match="Python object tag") as caught:
        load_one(tmp_path, cassette)

    assert not marker.exists()
    assert "!!python/" in caught.value.reason


def test_unknown_tag_rejected(tmp_path: Path) -> None:
    cassette = make_cassette(request_body="    body: !custom value")

    with pytest.raises(CassetteError, match="invalid YAML"):
        load_one(tmp_path, cassette)


def test_missing_file_raises_cassette_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(CassetteError, match="cannot be read") as caught:
        load_cassette(path)

    assert caught.value.path == str(path)


def test_cassette_error_message_and_pickle() -> None:
    error = CassetteError("a/b.yaml", "missing the 'interactions' list")

    restored = pickle.loads(pickle.dumps(error))

    assert isinstance(error, TokenwireError)
    assert str(error) == "cassette a/b.yaml: missing the 'interactions' list"
    assert (restored.path, restored.reason, str(restored)) == (
        error.path,
        error.reason,
        str(error),
    )


# --- find_cassettes -------------------------------------------------------------------


def make_tree(root: Path, relative_paths: list[str]) -> None:
    for relative in relative_paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("interactions: []\n", encoding="utf-8")


def test_find_cassettes_recursive_sorted(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        [
            "z.yaml",
            "b/x.yml",
            "a/deep/er/c.yaml",
            "a/b.yaml",
            "a-b/a.yaml",
            "notes.txt",
            "a/data.json",
            "a/old.yaml.gz",
        ],
    )

    found = find_cassettes([tmp_path])

    relative = [path.relative_to(tmp_path).as_posix() for path in found]
    assert relative == ["a/b.yaml", "a/deep/er/c.yaml", "a-b/a.yaml", "b/x.yml", "z.yaml"]


def test_find_cassettes_files_as_given_in_order(tmp_path: Path) -> None:
    make_tree(tmp_path, ["folder/b.yaml", "folder/a.yaml", "notes.txt"])

    found = find_cassettes([str(tmp_path / "notes.txt"), tmp_path / "folder"])

    assert found == [tmp_path / "notes.txt", tmp_path / "folder/a.yaml", tmp_path / "folder/b.yaml"]


def test_find_cassettes_lists_each_file_once(tmp_path: Path) -> None:
    make_tree(tmp_path, ["a.yaml", "b.yaml"])

    found = find_cassettes([tmp_path / "b.yaml", tmp_path])

    assert found == [tmp_path / "b.yaml", tmp_path / "a.yaml"]


def test_find_cassettes_missing_path_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(CassetteError, match="not found") as caught:
        find_cassettes([tmp_path, missing])

    assert caught.value.path == str(missing)


def test_find_cassettes_single_path_raises_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Wrap it in a list"):
        find_cassettes(str(tmp_path))


# --- property tests: bodies written by PyYAML's own dumper come back unchanged --------


def dump_cassette(response_body: dict[str, Any]) -> str:
    document = {
        "interactions": [
            {
                "request": {"method": "POST", "uri": CHAT_URI, "headers": {}, "body": None},
                "response": {"status": {"code": 200, "message": "OK"}, "headers": {}}
                | response_body,
            }
        ],
        "version": 1,
    }
    return yaml.safe_dump(document, allow_unicode=True)


# Text a recorder can store: valid UTF-8 (no lone surrogates) and no U+0085 (NEL),
# which PyYAML's emitter with allow_unicode=True writes unescaped in a quoted scalar,
# where YAML reads it as a line break, so the writer already loses it.
YAML_SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x85"))
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | YAML_SAFE_TEXT
)
JSON_TREES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(YAML_SAFE_TEXT, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200)
@given(body=st.binary())
def test_property_binary_body_round_trip(
    tmp_path_factory: pytest.TempPathFactory, body: bytes
) -> None:
    directory = tmp_path_factory.mktemp("binary")

    _, response = load_one(directory, dump_cassette({"body": {"string": body}}))

    assert response.body == body
    assert response.body_form == "binary"


@settings(max_examples=200)
@given(text=YAML_SAFE_TEXT)
def test_property_string_body_round_trip(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    directory = tmp_path_factory.mktemp("string")

    _, response = load_one(directory, dump_cassette({"body": {"string": text}}))

    assert response.body == text.encode("utf-8")


@settings(max_examples=200)
@given(tree=JSON_TREES)
def test_property_parsed_body_round_trip(
    tmp_path_factory: pytest.TempPathFactory, tree: object
) -> None:
    directory = tmp_path_factory.mktemp("parsed")

    _, response = load_one(directory, dump_cassette({"parsed_body": tree}))

    assert json.loads(response.body) == tree


def test_load_accepts_str_and_pathlike(tmp_path: Path) -> None:
    path = write_cassette(tmp_path, make_cassette())

    assert load_cassette(str(path)) == load_cassette(path)


def test_records_are_frozen(tmp_path: Path) -> None:
    request, _ = load_one(tmp_path, make_cassette())

    with pytest.raises(AttributeError):
        request.method = "GET"  # type: ignore[misc]
