"""Mock transports whose response bodies arrive as a stream of chunks, as from a network.

A body handed to `httpx2.Response(content=...)` is already read, so the client
skips its body-reading loop, and a metering wrapper would be charged for that
loop. Here every response body is a `SyncByteStream` (or `AsyncByteStream`)
that yields pre-built chunks: one per server-sent event, or network-sized
pieces of a JSON body. Only the standard library and `httpx2` are needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import httpx2

__all__ = [
    "AsyncChunkStream",
    "ChunkStream",
    "Reply",
    "client_options",
    "mock_transport",
]


class ChunkStream(httpx2.SyncByteStream):
    """A response body that yields the given chunks, in order, once per read."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


class AsyncChunkStream(httpx2.AsyncByteStream):
    """The async twin of `ChunkStream`."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class Reply:
    """A canned response: status, headers and the chunks its body arrives in."""

    __slots__ = ("chunks", "headers", "status")

    def __init__(
        self, chunks: Sequence[bytes] | Callable[[], Iterable[bytes]], content_type: str
    ) -> None:
        self.chunks = chunks
        self.headers = [("content-type", content_type)]
        self.status = 200

    def body_chunks(self) -> Iterable[bytes]:
        """Return the chunks of one body; a callable makes a fresh (possibly lazy) iterable."""
        chunks = self.chunks
        return chunks() if callable(chunks) else chunks


def mock_transport(
    reply: Reply | Callable[[httpx2.Request], Reply], *, is_async: bool = False
) -> httpx2.MockTransport:
    """Return an `httpx2.MockTransport` that answers every request with a streamed `reply`."""

    def respond(request: httpx2.Request) -> httpx2.Response:
        chosen = reply(request) if callable(reply) else reply
        chunks = chosen.body_chunks()
        stream: Any = AsyncChunkStream(chunks) if is_async else ChunkStream(chunks)
        return httpx2.Response(chosen.status, headers=chosen.headers, stream=stream)

    if not is_async:
        return httpx2.MockTransport(respond)

    async def respond_async(request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return respond(request)

    return httpx2.MockTransport(respond_async)


def client_options() -> dict[str, Any]:
    """Return the `httpx2.Client` options both sides of a comparison get.

    They match what `tokenwire.MeteredClient` fills in (the openai and
    anthropic SDKs' own defaults), so the raw client differs from the metered
    one only by the metering transport.
    """
    return {
        "timeout": httpx2.Timeout(timeout=600.0, connect=5.0),
        "limits": httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
        "follow_redirects": True,
    }
