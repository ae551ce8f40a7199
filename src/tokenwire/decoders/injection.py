"""Guaranteed usage for OpenAI-style chat streams: the request flag and the hidden chunk.

OpenAI chat streams carry usage only when the request sets
`stream_options.include_usage`. `inject_usage_flag()` adds the flag to a
streaming chat request that lacks it, by splicing bytes into the JSON body
(no re-serialization), for hosts known to accept it. The provider then sends
one extra chunk at the end of the stream, with usage and empty `choices`. That
chunk exists only because tokenwire asked for it, so `UsageChunkFilter` removes
exactly that one event from the bytes the caller reads, and user code such as
`chunk.choices[0]` sees the stream it asked for.

When the user set `include_usage` themselves (true or false) nothing is
changed, and the chunk is theirs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from .encoding import ContentDecoder

__all__ = [
    "InjectionMode",
    "UsageChunkFilter",
    "azure_accepts_stream_options",
    "inject_usage_flag",
]

InjectionMode = Literal["auto", True, False]

# Hosts whose OpenAI-compatible chat API accepts `stream_options.include_usage`.
# Azure is gated on the api-version separately.
_ACCEPTING_HOSTS = frozenset({"api.openai.com", "api.deepseek.com", "api.x.ai"})

AZURE_FIRST_ACCEPTING_VERSION = "2024-08-01"
"""Azure OpenAI rejects `stream_options` with HTTP 400 on api-versions before
2024-08-01-preview (2024-06-01 GA included); 2024-10-21 GA and later accept it."""

_AZURE_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(-preview)?$")

_FLAG = b'"stream_options":{"include_usage":true}'


class _StreamFields(msgspec.Struct):
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None


_fields = msgspec.json.Decoder(_StreamFields)


def azure_accepts_stream_options(path: str, api_version: str | None) -> bool:
    """Return whether an Azure OpenAI request URL accepts `stream_options`."""
    if "/openai/v1/" in path:
        # The versionless v1 API follows OpenAI's current surface.
        return True
    if api_version is None:
        return False
    if api_version in ("preview", "latest", "v1"):
        return True
    match = _AZURE_VERSION.match(api_version)
    return match is not None and match.group(1) >= AZURE_FIRST_ACCEPTING_VERSION


def _host_accepts(provider: str, host: str, path: str, api_version: str | None) -> bool:
    if provider == "azure_openai":
        return azure_accepts_stream_options(path, api_version)
    return host.lower() in _ACCEPTING_HOSTS


def inject_usage_flag(
    body: bytes,
    *,
    mode: InjectionMode,
    provider: str,
    host: str,
    path: str,
    api_version: str | None,
) -> bytes | None:
    """Return the request body with `stream_options.include_usage` added, or None to leave it.

    Only a JSON object with `"stream": true` and no `include_usage` of its own is
    changed, and in `"auto"` mode only for hosts known to accept the flag.
    """
    if mode is False:
        return None
    if mode == "auto" and not _host_accepts(provider, host, path, api_version):
        return None
    try:
        fields = _fields.decode(body)
    except msgspec.DecodeError:
        return None
    if fields.stream is not True:
        return None

    options = fields.stream_options
    if options is not None:
        if "include_usage" in options:
            return None
        # Rare: other stream options present. Re-encode the object with the flag added.
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return None
        document["stream_options"] = {**options, "include_usage": True}
        return msgspec.json.encode(document)

    end = body.rstrip().rfind(b"}")
    if end <= 0:
        return None
    return body[:end] + b"," + _FLAG + body[end:]


# An SSE event ends at the first blank line: two line ends in a row, where a
# line end is CRLF, LF or CR.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n|\r\n\r|\n\r")


class _Chunk(msgspec.Struct):
    choices: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None


_chunk = msgspec.json.Decoder(_Chunk)


def _is_usage_only(event: bytes) -> bool:
    keys = event.count(b'"usage"')
    if keys == 0 or keys == event.count(b'"usage":null'):
        return False
    data = b"\n".join(
        line[5:].removeprefix(b" ")
        for line in re.split(rb"\r\n|\n|\r", event)
        if line.startswith(b"data:")
    )
    try:
        chunk = _chunk.decode(data)
    except msgspec.DecodeError:
        return False
    if chunk.usage is None or chunk.choices is None:
        return False
    # OpenAI sends `choices: []`; Azure has sent `[{"index": 0, "delta": {}}]`.
    return all(
        not choice.get("delta") and choice.get("finish_reason") is None for choice in chunk.choices
    )


class UsageChunkFilter:
    """Remove the one usage-only event that an injected flag caused from an SSE byte stream.

    `feed()` returns the bytes to pass on; an incomplete event is held back
    until its end arrives (so chunk boundaries move, the bytes do not).
    `flush()` returns what is held at end of stream. If the body is
    content-encoded, give a `ContentDecoder`: the output is then the decoded
    body, and the caller must drop the `Content-Encoding` header.
    """

    def __init__(self, content: ContentDecoder | None = None) -> None:
        self._content = content
        self._buffer = bytearray()
        self._search_from = 0
        self.removed = False

    def feed(self, data: bytes) -> bytes:
        if self._content is not None:
            data = self._content.decode(data)
        if self.removed:
            return data
        if (
            not self._buffer
            and data.endswith(b"\n\n")
            and data.find(b"\n\n") == len(data) - 2
            and 13 not in data  # no CR, so no other kind of event end inside
        ):
            # Fast path: the chunk is exactly one complete event, as OpenAI sends them.
            if _is_usage_only(data):
                self.removed = True
                return b""
            return data
        self._buffer += data
        return self._complete_events()

    def _complete_events(self) -> bytes:
        out = bytearray()
        buffer = self._buffer
        start = 0
        while not self.removed:
            match = _EVENT_END.search(buffer, max(start, self._search_from - 3))
            if match is None:
                break
            event = bytes(buffer[start : match.end()])
            if _is_usage_only(event):
                self.removed = True
            else:
                out += event
            start = match.end()
        if self.removed:
            out += buffer[start:]
            start = len(buffer)
        del buffer[:start]
        self._search_from = len(buffer)
        return bytes(out)

    def abandon(self) -> bytes:
        """Return the bytes held back, unfiltered, and stop filtering."""
        held = bytes(self._buffer)
        self._buffer.clear()
        self.removed = True
        return held

    def flush(self) -> bytes:
        tail = self._content.flush() if self._content is not None else b""
        if self.removed:
            return tail
        self._buffer += tail
        out = self._complete_events()
        rest = bytes(self._buffer)
        self._buffer.clear()
        return out + rest
