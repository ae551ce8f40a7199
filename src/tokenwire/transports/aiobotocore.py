"""Meter Amazon Bedrock Runtime calls made with aiobotocore clients.

`instrument_aiobotocore(target)` registers the same handlers as
`tokenwire.instrument_boto3` (see `tokenwire.transports.botocore` for what they
do) on an aiobotocore `AioSession` or an existing aiobotocore `bedrock-runtime`
client. They stay plain functions, because aiobotocore calls plain handlers as
well as awaiting coroutine ones. Only the body tee differs: aiobotocore reads a
streamed body through the aiohttp response's `content` (an
`aiohttp.StreamReader`), so the tee wraps that reader's read methods and async
iterators.

NOTE: aiobotocore's optional httpx backend hands out an `httpx.Response`,
which this tee does not wrap. With that backend InvokeModel is still metered
from its headers (without the returned model name), but ConverseStream and
InvokeModelWithResponseStream records carry no counts.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiobotocore.response import AioStreamingBody  # type: ignore[import-untyped]

from ..errors import ConfigurationError
from ..meter import RecordSink
from .botocore import (
    BedrockExchange,
    BedrockHooks,
    BodyTees,
    event_emitter_of,
    uninstrument_boto3,
)

__all__ = ["instrument_aiobotocore", "uninstrument_aiobotocore"]


class _StreamReaderTee:
    """Stands in for an `aiohttp.StreamReader`, feeding a copy of what is read to the exchange.

    A read that returns no bytes, or reads to the end (`read()` with no size),
    marks the end of the body. Attributes other than the read methods are the
    reader's own.
    """

    def __init__(self, reader: Any, exchange: BedrockExchange) -> None:
        self._reader = reader
        self._exchange = exchange

    def _take(self, data: bytes, *, at_end: bool) -> bytes:
        self._exchange.feed(data)
        if at_end:
            self._exchange.end(eof=True)
        return data

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self._reader.read(n)
        return self._take(data, at_end=n < 0 or (not data and n != 0))

    async def readany(self) -> bytes:
        data: bytes = await self._reader.readany()
        return self._take(data, at_end=not data)

    async def readexactly(self, n: int) -> bytes:
        data: bytes = await self._reader.readexactly(n)
        return self._take(data, at_end=False)

    async def readline(self) -> bytes:
        data: bytes = await self._reader.readline()
        return self._take(data, at_end=not data)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        data: bytes = await self._reader.readuntil(separator)
        return self._take(data, at_end=not data)

    async def readchunk(self) -> tuple[bytes, bool]:
        data, end_of_http_chunk = await self._reader.readchunk()
        self._take(data, at_end=not data and not end_of_http_chunk)
        return data, end_of_http_chunk

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        eof = False
        try:
            async for data, end_of_http_chunk in self._reader.iter_chunks():
                self._exchange.feed(data)
                yield data, end_of_http_chunk
            eof = True
        finally:
            if eof:
                self._exchange.end(eof=True)

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        async for data in self._iterate(self._reader.iter_chunked(n)):
            yield data

    async def iter_any(self) -> AsyncIterator[bytes]:
        async for data in self._iterate(self._reader.iter_any()):
            yield data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate(self._reader)

    async def _iterate(self, source: Any) -> AsyncIterator[bytes]:
        eof = False
        try:
            async for data in source:
                self._exchange.feed(data)
                yield data
            eof = True
        finally:
            if eof:
                self._exchange.end(eof=True)

    def __getattr__(self, name: str) -> Any:
        try:
            reader = self.__dict__["_reader"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(reader, name)


class _ResponseTee:
    """Stands in for the `aiohttp.ClientResponse` aiobotocore reads a body from.

    Its `content` is a `_StreamReaderTee`; every other attribute is the
    response's own. The record is emitted when a read reaches the end of the
    body, on `close()` or `release()`, or when the tee is garbage-collected.
    """

    def __init__(self, raw: Any, content: Any, exchange: BedrockExchange) -> None:
        self._raw = raw
        self.content = _StreamReaderTee(content, exchange)
        self._finalizer = weakref.finalize(self, exchange.end, False)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._finalizer()

    def release(self) -> Any:
        try:
            return self._raw.release()
        finally:
            self._finalizer()

    def __getattr__(self, name: str) -> Any:
        try:
            raw = self.__dict__["_raw"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(raw, name)


def _stream_reader_of(raw: Any) -> Any:
    """Return the aiohttp `StreamReader` of `raw`, or None when `raw` has none."""
    try:
        content = raw.content
    except Exception:  # an unread httpx.Response raises here
        return None
    return content if callable(getattr(content, "iter_chunks", None)) else None


class _AioTees(BodyTees):
    def raw_of_streaming_body(self, body: Any) -> Any:
        if type(body) is not AioStreamingBody:
            return None
        return body.raw_stream

    def tee_event_stream(self, raw: Any, exchange: BedrockExchange) -> Any:
        content = _stream_reader_of(raw)
        if content is None:
            return None
        return _ResponseTee(raw, content, exchange)

    def tee_streaming_body(
        self, body: Any, raw: Any, exchange: BedrockExchange, content_length: Any
    ) -> Any:
        content = _stream_reader_of(raw)
        if content is None:
            return None
        return AioStreamingBody(_ResponseTee(raw, content, exchange), content_length)


def _require_aio(target: Any, function: str) -> None:
    if type(target).__module__.partition(".")[0] != "aiobotocore":
        raise ConfigurationError(
            f"{function}() takes an aiobotocore session or client, got "
            f"{type(target).__module__}.{type(target).__name__}; use "
            f"tokenwire.instrument_boto3() for boto3 and botocore"
        )


def instrument_aiobotocore(
    target: Any,
    *,
    meter: RecordSink | None = None,
    subscription: str | None = None,
    dimensions: Mapping[str, str] | None = None,
) -> None:
    """Meter the Bedrock Runtime calls made through an aiobotocore session or client.

    `target` is an `aiobotocore.session.AioSession` (clients it creates from now
    on are metered) or an existing aiobotocore `bedrock-runtime` client. The
    options are those of `tokenwire.instrument_boto3`; calling it again on the
    same target changes nothing.
    """
    _require_aio(target, "instrument_aiobotocore")
    emitter = event_emitter_of(target, function="instrument_aiobotocore")
    BedrockHooks(
        _AioTees(), meter=meter, subscription=subscription, dimensions=dimensions
    ).register(emitter)


def uninstrument_aiobotocore(target: Any) -> None:
    """Remove tokenwire's handlers from an aiobotocore session or client."""
    _require_aio(target, "uninstrument_aiobotocore")
    uninstrument_boto3(target)
