"""Replay recorded provider traffic through the real metering transport.

`ReplayTransport` is an inner transport of the httpx2 family that answers one
request with a recorded response whose body arrives as a stream of chunks,
the way a network delivers it: one chunk per server-sent event for event
streams, network-sized pieces otherwise. `replay_interaction()` sends a
recorded request through `MeteredTransport` over it, reads the body to the end
without decoding it, and returns the record tokenwire made, so a replay
exercises exactly the production path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx2

from ..transports.httpx import MeteredTransport
from ..usage import UsageRecord
from .cassettes import Interaction, RecordedResponse

__all__ = ["RecordingSink", "ReplayTransport", "chunk_body", "replay_interaction"]

NETWORK_CHUNK_BYTES = 4096
"""Piece size for bodies that are not event streams, about one TLS record's payload."""


class RecordingSink:
    """A record sink that keeps records in memory, for tests and replay."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self._lock = threading.Lock()

    @property
    def disabled(self) -> bool:
        return False

    def emit(self, record: UsageRecord) -> None:
        with self._lock:
            self.records.append(record)

    def take(self) -> list[UsageRecord]:
        """Return the records collected so far and forget them."""
        with self._lock:
            records, self.records = self.records, []
        return records


def chunk_body(body: bytes, *, event_stream: bool, size: int = NETWORK_CHUNK_BYTES) -> list[bytes]:
    """Split a body the way it would arrive: per SSE event (plain text) or in `size` pieces."""
    if event_stream:
        pieces: list[bytes] = []
        start = 0
        while True:
            end = body.find(b"\n\n", start)
            if end < 0:
                break
            pieces.append(body[start : end + 2])
            start = end + 2
        if start < len(body):
            pieces.append(body[start:])
        return pieces
    return [body[offset : offset + size] for offset in range(0, len(body), size)]


class _ChunkStream(httpx2.SyncByteStream):
    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        self.closed = True


class ReplayTransport(httpx2.BaseTransport):
    """Answer every request with one recorded response, streamed in chunks."""

    def __init__(self, response: RecordedResponse, *, chunk_bytes: int = NETWORK_CHUNK_BYTES):
        self._response = response
        self._chunk_bytes = chunk_bytes
        self.requests: list[httpx2.Request] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        headers = httpx2.Headers(list(self._response.headers))
        plain = "content-encoding" not in headers
        event_stream = plain and "event-stream" in headers.get("content-type", "")
        chunks = chunk_body(self._response.body, event_stream=event_stream, size=self._chunk_bytes)
        return httpx2.Response(
            self._response.status,
            headers=headers,
            stream=_ChunkStream(chunks),
            request=request,
        )


def _request_headers(interaction: Interaction) -> list[tuple[str, str]]:
    headers = [
        (name, value)
        for name, value in interaction.request.headers
        if name.lower() not in ("content-length", "transfer-encoding", "host")
    ]
    body = interaction.request.body or b""
    has_type = any(name.lower() == "content-type" for name, _ in headers)
    if not has_type and body.lstrip()[:1] in (b"{", b"["):
        headers.append(("content-type", "application/json"))
    return headers


def replay_interaction(interaction: Interaction, **transport_options: Any) -> UsageRecord | None:
    """Send one recorded exchange through `MeteredTransport`; return its record, if any."""
    sink = RecordingSink()
    transport = MeteredTransport(
        ReplayTransport(interaction.response), meter=sink, **transport_options
    )
    request = httpx2.Request(
        interaction.request.method,
        interaction.request.uri,
        headers=_request_headers(interaction),
        content=interaction.request.body or b"",
    )
    response = transport.handle_request(request)
    try:
        for _ in response.iter_raw():
            pass
    finally:
        response.close()
    records = sink.take()
    if len(records) > 1:
        raise RuntimeError(f"one exchange produced {len(records)} records, expected at most one")
    return records[0] if records else None
