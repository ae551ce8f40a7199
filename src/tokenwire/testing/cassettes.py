"""Read recorded HTTP exchanges from vcrpy-format YAML cassettes.

Takes a cassette file in the layout that vcrpy (format version 1) writes, including
the variant that pydantic-ai's test suite writes, where JSON bodies are stored as a
YAML tree under ``parsed_body`` in place of ``body``. Returns one `Interaction` per
entry of ``interactions:``, in file order, with bodies as bytes:

- request ``body``: a string (encoded as UTF-8), ``!!binary`` bytes, or null (no body).
- response ``body: {string: ...}``: a string (encoded as UTF-8) or ``!!binary`` bytes,
  kept as they came off the wire, so a gzip body stays gzip.
- ``parsed_body`` on either side: re-encoded as compact JSON with msgspec. Those bytes
  are equivalent JSON, not the recorded wire bytes.

Headers of requests and responses are normalized so that headers and body agree when
replayed. Nothing else is added or changed:

- ``transfer-encoding`` is removed because the recorded body is already de-chunked.
- A ``parsed_body`` side loses ``content-encoding`` and ``content-length``, and gains
  ``content-type: application/json`` when it has no content type.
- A lone ``gzip`` (or ``zstd``) ``content-encoding`` over a body without the gzip
  (or zstd) magic bytes is removed, because the recorder stored the decoded body.
- A ``content-length`` that differs from the body length is removed.

Loading uses PyYAML's safe loader (the libyaml one when available). It builds only
plain data and ``!!binary`` bytes, never Python objects. Every problem with a file
(unreadable, invalid YAML, a Python tag, a missing or mistyped field) raises
`CassetteError`, whose message names the file and, where they apply, the interaction
and the field.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import msgspec
import yaml

from tokenwire.errors import TokenwireError

try:
    from yaml import CSafeLoader as _SafeLoaderBase
except ImportError:  # PyYAML built without libyaml: the same rules, only slower.
    from yaml import SafeLoader as _SafeLoaderBase  # type: ignore[assignment]

__all__ = [
    "BodyForm",
    "CassetteError",
    "Interaction",
    "RecordedRequest",
    "RecordedResponse",
    "find_cassettes",
    "load_cassette",
]

BodyForm = Literal["string", "binary", "parsed_body"]

CASSETTE_FORMAT_VERSION = 1
"""The ``version:`` that vcrpy writes. Cassettes written by pydantic-ai may omit it."""

CASSETTE_SUFFIXES = (".yaml", ".yml")

MAX_PARSED_BODY_NODES = 1_000_000
"""Cap on the values visited in one ``parsed_body``.

A YAML alias inserts a node again by reference, so a few lines of YAML can describe
a tree with billions of nodes. Recorded LLM JSON bodies have hundreds of nodes, so a
million leaves ample room while bounding the work per body.
"""

_GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952, ID1 and ID2
_ZSTD_FRAME_MAGIC = b"\x28\xb5\x2f\xfd"
# Zstandard frame magic 0xFD2FB528 and skippable frame magic 0x184D2A50-0x184D2A5F
# (RFC 8878), stored little-endian. A skippable frame opens with one byte 0x50-0x5F
# followed by these three.
_ZSTD_SKIPPABLE_MAGIC_TAIL = b"\x2a\x4d\x18"

_JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """An HTTP request as the cassette recorded it.

    `method` is upper case and `uri` is the absolute URL. `headers` lists each
    recorded value as its own pair, in file order. `body` is None when the request
    had none.
    """

    method: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """An HTTP response as the cassette recorded it.

    `body` contains the bytes still content-encoded, unless `body_form` is
    ``"parsed_body"``, in which case they are JSON re-encoded from the YAML tree.
    `body_form` is ``"string"`` for a YAML string, ``"binary"`` for ``!!binary``.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_form: BodyForm


@dataclass(frozen=True, slots=True)
class Interaction:
    """One request and its response, at 0-based `index` in ``interactions:``."""

    index: int
    request: RecordedRequest
    response: RecordedResponse


class CassetteError(TokenwireError):
    """A cassette file that cannot be read or does not have the vcrpy layout."""

    path: str
    reason: str

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cassette {path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[CassetteError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


class _InvalidCassette(Exception):
    """A layout problem, which `load_cassette` raises as CassetteError with the file path."""


class _CassetteLoader(_SafeLoaderBase):
    """Safe YAML loader: plain data and ``!!binary`` (as bytes), never Python objects."""


def _reject_python_tag(loader: Any, tag_suffix: str, node: yaml.Node) -> NoReturn:
    # The safe loader already rejects these tags as unknown, so this only gives a clearer reason.
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"the Python object tag !!python/{tag_suffix} is not allowed in a cassette",
        node.start_mark,
    )


_CassetteLoader.add_multi_constructor("tag:yaml.org,2002:python/", _reject_python_tag)


def load_cassette(path: str | os.PathLike[str]) -> list[Interaction]:
    """Parse one cassette file into its interactions, in file order.

    Raises CassetteError naming the file and the reason when the file cannot be read,
    is not valid YAML, uses a Python object tag, or does not have the vcrpy layout.
    """
    name = os.fspath(path)
    try:
        data = pathlib.Path(name).read_bytes()
    except OSError as exc:
        raise CassetteError(name, f"cannot be read: {exc.strerror or exc}") from exc

    try:
        document = yaml.load(data, Loader=_CassetteLoader)
    except yaml.YAMLError as exc:
        raise CassetteError(name, _describe_yaml_error(exc)) from exc

    try:
        return _read_document(document)
    except _InvalidCassette as exc:
        raise CassetteError(name, str(exc)) from None


def find_cassettes(paths: Iterable[str | os.PathLike[str]]) -> list[pathlib.Path]:
    """List the cassette files named by `paths`.

    A file is taken as given, whatever its suffix. A folder is searched recursively
    (without following symlinked folders) for ``*.yaml`` and ``*.yml`` files, which
    are sorted by their path components. The result keeps the order of `paths` and
    lists each file once, at its first occurrence. A path that is neither a file nor
    a folder raises CassetteError.
    """
    if isinstance(paths, str | bytes | os.PathLike):
        raise TypeError(
            f"paths must be an iterable of paths, not the single path {paths!r}. Wrap it in a list."
        )

    found: list[pathlib.Path] = []
    seen: set[pathlib.Path] = set()
    for given in paths:
        path = pathlib.Path(given)
        if path.is_dir():
            candidates = _find_cassettes_in_folder(path)
        elif path.is_file():
            candidates = [path]
        else:
            raise CassetteError(os.fspath(given), "not found: no such file or folder")

        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                found.append(candidate)
    return found


def _find_cassettes_in_folder(folder: pathlib.Path) -> list[pathlib.Path]:
    def raise_walk_error(exc: OSError) -> NoReturn:
        # os.walk skips unreadable folders silently by default, which would hide cassettes.
        raise CassetteError(
            os.fspath(exc.filename or folder), f"cannot be listed: {exc.strerror or exc}"
        ) from exc

    files: list[pathlib.Path] = []
    for directory, _, file_names in os.walk(folder, onerror=raise_walk_error):
        for file_name in file_names:
            if file_name.endswith(CASSETTE_SUFFIXES):
                files.append(pathlib.Path(directory, file_name))
    return sorted(files, key=lambda file: file.relative_to(folder).parts)


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "syntax error"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {exc}"


# Layout readers. Each takes the loaded YAML value and a location such as
# "interaction 2 response status" used to open its error messages.


def _read_document(document: object) -> list[Interaction]:
    if isinstance(document, list):
        raise _InvalidCassette(
            "the top level is a list, the layout vcrpy used before format version 1, "
            "which is not supported. Re-record the cassette with a current vcrpy."
        )
    if not isinstance(document, dict):
        raise _InvalidCassette(
            f"the top level must be a mapping with an 'interactions' list, "
            f"got {_describe(document)}"
        )

    version = document.get("version", CASSETTE_FORMAT_VERSION)
    if isinstance(version, bool) or version != CASSETTE_FORMAT_VERSION:
        raise _InvalidCassette(
            f"unsupported cassette format version {version!r}, "
            f"only version {CASSETTE_FORMAT_VERSION} is supported"
        )

    if "interactions" not in document:
        raise _InvalidCassette("missing the 'interactions' list")
    entries = document["interactions"]
    if not isinstance(entries, list):
        raise _InvalidCassette(f"'interactions' must be a list, got {_describe(entries)}")

    return [_read_interaction(index, entry) for index, entry in enumerate(entries)]


def _read_interaction(index: int, entry: object) -> Interaction:
    where = f"interaction {index}"
    mapping = _require_mapping(entry, where)
    for key in ("request", "response"):
        if key not in mapping:
            raise _InvalidCassette(f"{where}: missing '{key}'")

    return Interaction(
        index=index,
        request=_read_request(mapping["request"], f"{where} request"),
        response=_read_response(mapping["response"], f"{where} response"),
    )


def _read_request(value: object, where: str) -> RecordedRequest:
    mapping = _require_mapping(value, where)

    method = _require_string(mapping.get("method"), f"{where} method")
    if not method.strip():
        raise _InvalidCassette(f"{where} method: must not be empty")

    uri = _require_string(mapping.get("uri"), f"{where} uri")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _InvalidCassette(f"{where} uri: must be an absolute http(s) URL, got {uri!r}")

    headers = _read_headers(mapping.get("headers"), f"{where} headers")
    body, from_parsed_body = _read_request_body(mapping, where)
    return RecordedRequest(
        method=method.upper(),
        uri=uri,
        headers=_normalize_headers(headers, body or b"", from_parsed_body=from_parsed_body),
        body=body,
    )


def _read_request_body(mapping: dict[Any, Any], where: str) -> tuple[bytes | None, bool]:
    _reject_two_bodies(mapping, where)
    if "parsed_body" in mapping:
        return _encode_json(mapping["parsed_body"], f"{where} parsed_body"), True

    body = mapping.get("body")
    if body is None:
        return None, False
    if isinstance(body, bytes):
        return body, False
    if isinstance(body, str):
        return _encode_utf8(body, f"{where} body"), False
    raise _InvalidCassette(
        f"{where} body: must be a string, !!binary bytes or null, got {_describe(body)}"
    )


def _read_response(value: object, where: str) -> RecordedResponse:
    mapping = _require_mapping(value, where)
    status = _read_status(mapping.get("status"), f"{where} status")
    headers = _read_headers(mapping.get("headers"), f"{where} headers")
    body, body_form = _read_response_body(mapping, where)
    return RecordedResponse(
        status=status,
        headers=_normalize_headers(headers, body, from_parsed_body=body_form == "parsed_body"),
        body=body,
        body_form=body_form,
    )


def _read_status(value: object, where: str) -> int:
    if value is None:
        raise _InvalidCassette(f"{where}: missing")
    if not isinstance(value, dict):
        raise _InvalidCassette(
            f"{where}: must be a mapping such as {{code: 200, message: OK}}, got {_describe(value)}"
        )

    code = value.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise _InvalidCassette(f"{where} code: must be an integer, got {_describe(code)}")
    if not 100 <= code <= 599:
        raise _InvalidCassette(f"{where} code: {code} is outside the HTTP status range 100-599")
    return code


def _read_response_body(mapping: dict[Any, Any], where: str) -> tuple[bytes, BodyForm]:
    _reject_two_bodies(mapping, where)
    if "parsed_body" in mapping:
        return _encode_json(mapping["parsed_body"], f"{where} parsed_body"), "parsed_body"
    if "body" not in mapping:
        raise _InvalidCassette(f"{where}: missing 'body' (or 'parsed_body')")

    body = mapping["body"]
    if not isinstance(body, dict) or "string" not in body:
        raise _InvalidCassette(
            f"{where} body: must be a mapping with a 'string' key, got {_describe(body)}"
        )

    content = body["string"]
    if isinstance(content, bytes):
        return content, "binary"
    if isinstance(content, str):
        return _encode_utf8(content, f"{where} body string"), "string"
    if content is None:
        return b"", "string"
    raise _InvalidCassette(
        f"{where} body string: must be a string or !!binary bytes, got {_describe(content)}"
    )


def _reject_two_bodies(mapping: dict[Any, Any], where: str) -> None:
    if "body" in mapping and "parsed_body" in mapping:
        raise _InvalidCassette(f"{where}: has both 'body' and 'parsed_body'. Keep one of them.")


def _read_headers(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _InvalidCassette(
            f"{where}: must be a mapping of names to lists of values, got {_describe(value)}"
        )

    pairs: list[tuple[str, str]] = []
    for raw_name, raw_values in value.items():
        name = _header_text(raw_name, f"{where} name")
        values = raw_values if isinstance(raw_values, list) else [raw_values]
        for raw_value in values:
            pairs.append((name, _header_text(raw_value, f"{where} {name}")))
    return tuple(pairs)


def _header_text(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        # vcrpy stores botocore's bytes values as !!binary. Decoded with the fallbacks
        # of httpx 0.29 Headers.encoding, applied per value: UTF-8 (ASCII included)
        # when valid, else ISO-8859-1, which maps every byte.
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("iso-8859-1")
    raise _InvalidCassette(
        f"{where}: must be a string, got {_describe(value)}. Quote numbers and booleans in YAML."
    )


def _normalize_headers(
    headers: tuple[tuple[str, str], ...], body: bytes, *, from_parsed_body: bool
) -> tuple[tuple[str, str], ...]:
    kept = [(name, value) for name, value in headers if name.lower() != "transfer-encoding"]

    if from_parsed_body:
        kept = [
            (name, value)
            for name, value in kept
            if name.lower() not in ("content-encoding", "content-length")
        ]
        if not any(name.lower() == "content-type" for name, _ in kept):
            kept.append(("content-type", _JSON_CONTENT_TYPE))
    elif _content_encoding_contradicts_body(kept, body):
        kept = [(name, value) for name, value in kept if name.lower() != "content-encoding"]

    # The recorded length can be stale: recorders store the decoded or rewritten body
    # (vcrpy filters, pydantic-ai's JSON re-serialization), and a replaying HTTP client
    # would reject or truncate a body whose length differs from its content-length.
    return tuple(
        (name, value)
        for name, value in kept
        if name.lower() != "content-length" or _length_matches(value, len(body))
    )


def _content_encoding_contradicts_body(headers: list[tuple[str, str]], body: bytes) -> bool:
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name.lower() == "content-encoding"
        for coding in value.split(",")
        if coding.strip()
    ]
    if codings in (["gzip"], ["x-gzip"]):
        return not body.startswith(_GZIP_MAGIC)
    if codings == ["zstd"]:
        return not _starts_like_zstd(body)
    # NOTE: deflate and br bodies have no reliable signature (raw deflate has none,
    # and neither has brotli), and stacked codings are left alone, so those headers stay.
    return False


def _starts_like_zstd(body: bytes) -> bool:
    if body.startswith(_ZSTD_FRAME_MAGIC):
        return True
    return len(body) >= 4 and 0x50 <= body[0] <= 0x5F and body[1:4] == _ZSTD_SKIPPABLE_MAGIC_TAIL


def _length_matches(value: str, body_length: int) -> bool:
    text = value.strip()
    return text.isdecimal() and int(text) == body_length


def _encode_utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _InvalidCassette(
            f"{where}: not encodable as UTF-8 at character {exc.start} ({exc.reason})"
        ) from None


def _encode_json(value: object, where: str) -> bytes:
    _check_json_tree(value, where)
    try:
        return msgspec.json.encode(value)
    except (msgspec.EncodeError, UnicodeEncodeError) as exc:
        raise _InvalidCassette(f"{where}: cannot be encoded as JSON: {exc}") from None


def _check_json_tree(root: object, where: str) -> None:
    """Raise _InvalidCassette unless `root` is built only of values JSON can carry.

    The YAML safe loader also builds dates, sets, bytes and non-finite floats, which
    msgspec would encode silently as something else (NaN becomes null). Pointers in
    messages follow RFC 6901 (``/choices/0/message``).
    """
    stack: list[tuple[object, str]] = [(root, "")]
    visited = 0
    while stack:
        value, pointer = stack.pop()
        visited += 1
        if visited > MAX_PARSED_BODY_NODES:
            raise _InvalidCassette(
                f"{where}: has more than {MAX_PARSED_BODY_NODES} values "
                "(are YAML aliases repeating a subtree?)"
            )

        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _InvalidCassette(
                        f"{where} at '{pointer}': object key {key!r} must be a string. "
                        "Quote it in YAML."
                    )
                stack.append((item, f"{pointer}/{_escape_pointer(key)}"))
        elif isinstance(value, list):
            stack.extend((item, f"{pointer}/{index}") for index, item in enumerate(value))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _InvalidCassette(f"{where} at '{pointer}': {value!r} is not valid JSON")
        elif value is not None and not isinstance(value, str | int):
            raise _InvalidCassette(
                f"{where} at '{pointer}': {_describe(value)} is not a JSON value. "
                "Quote it in YAML if it is a string."
            )


def _escape_pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _require_mapping(value: object, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _InvalidCassette(f"{where}: must be a mapping, got {_describe(value)}")
    return value


def _require_string(value: object, where: str) -> str:
    if value is None:
        raise _InvalidCassette(f"{where}: missing")
    if not isinstance(value, str):
        raise _InvalidCassette(f"{where}: must be a string, got {_describe(value)}")
    return value


_DESCRIBE_MAX_CHARS = 60


def _describe(value: object) -> str:
    """Return a short repr and the type, for messages, e.g. ``'200' (str)``."""
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > _DESCRIBE_MAX_CHARS:
        text = text[: _DESCRIBE_MAX_CHARS - 3] + "..."
    return f"{text} ({type(value).__name__})"
