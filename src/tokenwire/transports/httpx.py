"""Metering transports for the httpx client family (`httpx2`, and legacy `httpx`).

`MeteredTransport` and `AsyncMeteredTransport` wrap any inner transport of
either family. For each request routed to an LLM API they capture the
attribution in force when the request is sent, call the inner transport, and
hand back the inner response with its stream replaced by a tee: every chunk
reaches the caller unchanged and is also fed to a `ResponseDecoder`. The
record is emitted exactly once, when the body ends, when the caller closes
it, or when an abandoned stream is garbage-collected.

The code is written once for both families and both sync and async: the
byte-stream classes the clients insist on (`isinstance` checks against the
family's `SyncByteStream`/`AsyncByteStream`) are made per family on first use.
Nothing raised inside tokenwire reaches the caller: every call into the
metering path is guarded, logged (rate-limited) and counted.
"""

from __future__ import annotations

import functools
import logging
import sys
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType
from typing import Any

import httpx2

from .. import attribution
from ..attribution import Attribution
from ..decoders.body import ResponseDecoder
from ..decoders.routing import route_request
from ..meter import RecordSink, get_meter, report_fault

__all__ = [
    "AsyncMeteredClient",
    "AsyncMeteredTransport",
    "MeteredClient",
    "MeteredTransport",
]

logger = logging.getLogger("tokenwire.transports")

DEFAULT_TIMEOUT = httpx2.Timeout(timeout=600.0, connect=5.0)
"""The openai and anthropic SDKs' own default: 10 minutes, 5 s to connect."""
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_KEEPALIVE_CONNECTIONS = 100


class _Exchange:
    """Metering state of one HTTP exchange; emits its record once."""

    __slots__ = ("__weakref__", "_attribution", "_decoder", "_done", "_sink")

    def __init__(
        self, decoder: ResponseDecoder, attribution: Attribution, sink: RecordSink | None
    ) -> None:
        self._decoder = decoder
        self._attribution = attribution
        self._sink = sink
        self._done = False

    def feed(self, chunk: bytes) -> None:
        if not self._done:
            self._decoder.feed(chunk)

    def end(self, eof: bool) -> None:
        if self._done:
            return
        self._done = True
        try:
            record = self._decoder.build_record(
                eof=eof,
                subscription=self._attribution.subscription,
                dimensions=dict(self._attribution.dimensions),
            )
            (self._sink or get_meter()).emit(record)
        except Exception as exc:  # never reaches the caller
            report_fault("emit", exc)


def _start_exchange(
    request: Any, default: Attribution | None, sink: RecordSink | None
) -> tuple[Any, Any] | None:
    """Return (route, attribution) when this request is an LLM call to meter."""
    url = request.url
    content_type = request.headers.get("content-type", "")
    body: bytes | None = None
    if "json" in content_type:
        try:
            body = request.content
        except Exception:  # a streaming request body is never read
            body = None
    route = route_request(request.method, url.host, url.path, body)
    if route is None or route.free:
        return None
    return route, attribution.resolve(default)


def _make_decoder(route: Any, response: Any, *, decoded: bool) -> ResponseDecoder:
    headers = response.headers
    return ResponseDecoder(
        route,
        response.status_code,
        headers.get("content-type"),
        None if decoded else headers.get("content-encoding"),
    )


@functools.cache
def _stream_classes(family: ModuleType) -> tuple[type[Any], type[Any]]:
    """Return the (sync, async) tee stream classes for an httpx-family module."""

    class MeteredByteStream(family.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, exchange: _Exchange) -> None:
            self._inner = inner
            self._exchange = exchange
            self._finalizer = weakref.finalize(self, exchange.end, False)

        def __iter__(self) -> Iterator[bytes]:
            exchange = self._exchange
            eof = False
            try:
                for chunk in self._inner:
                    exchange.feed(chunk)
                    yield chunk
                eof = True
            finally:
                if eof:
                    exchange.end(True)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._finalizer()

    class AsyncMeteredByteStream(family.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, exchange: _Exchange) -> None:
            self._inner = inner
            self._exchange = exchange
            self._finalizer = weakref.finalize(self, exchange.end, False)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            exchange = self._exchange
            eof = False
            try:
                async for chunk in self._inner:
                    exchange.feed(chunk)
                    yield chunk
                eof = True
            finally:
                if eof:
                    exchange.end(True)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._finalizer()

    return MeteredByteStream, AsyncMeteredByteStream


def _family_of(response: Any) -> ModuleType:
    return sys.modules[type(response).__module__.partition(".")[0]]


class _MeteredBase:
    """What the sync and async transports share: request routing and response teeing."""

    def __init__(
        self,
        inner: Any,
        *,
        meter: RecordSink | None = None,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        self._inner = inner
        self._sink = meter
        self._default = (
            Attribution(subscription=subscription, dimensions=dict(dimensions or {}))
            if subscription is not None or dimensions
            else None
        )

    @property
    def inner(self) -> Any:
        """The wrapped transport."""
        return self._inner

    def _begin(self, request: Any) -> tuple[Any, Attribution] | None:
        try:
            if (self._sink or get_meter()).disabled:
                return None
            return _start_exchange(request, self._default, self._sink)
        except Exception as exc:  # never reaches the caller
            report_fault("route", exc)
            return None

    def _tee(self, response: Any, started: tuple[Any, Attribution], sync: bool) -> Any:
        try:
            route, scope = started
            if hasattr(response, "_content"):
                # The inner transport returned a body that is already read and
                # decoded (`Response(content=...)`): the client never iterates it.
                decoder = _make_decoder(route, response, decoded=True)
                exchange = _Exchange(decoder, scope, self._sink)
                exchange.feed(response._content)
                exchange.end(True)
                return response
            exchange = _Exchange(_make_decoder(route, response, decoded=False), scope, self._sink)
            sync_cls, async_cls = _stream_classes(_family_of(response))
            stream_cls = sync_cls if sync else async_cls
            response.stream = stream_cls(response.stream, exchange)
        except Exception as exc:  # never reaches the caller
            report_fault("tee", exc)
        return response


class MeteredTransport(_MeteredBase):
    """A sync transport that meters LLM responses passing through `inner`."""

    def handle_request(self, request: Any) -> Any:
        started = self._begin(request)
        response = self._inner.handle_request(request)
        if started is None:
            return response
        return self._tee(response, started, sync=True)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> MeteredTransport:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._inner.__exit__(*exc_info)


class AsyncMeteredTransport(_MeteredBase):
    """An async transport that meters LLM responses passing through `inner`."""

    async def handle_async_request(self, request: Any) -> Any:
        started = self._begin(request)
        response = await self._inner.handle_async_request(request)
        if started is None:
            return response
        return self._tee(response, started, sync=False)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> AsyncMeteredTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._inner.__aexit__(*exc_info)


def client_defaults(family: ModuleType, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fill in the defaults the openai and anthropic SDKs give their own clients."""
    kwargs.setdefault(
        "timeout", family.Timeout(timeout=DEFAULT_TIMEOUT.read, connect=DEFAULT_TIMEOUT.connect)
    )
    kwargs.setdefault(
        "limits",
        family.Limits(
            max_connections=DEFAULT_MAX_CONNECTIONS,
            max_keepalive_connections=DEFAULT_MAX_KEEPALIVE_CONNECTIONS,
        ),
    )
    kwargs.setdefault("follow_redirects", True)
    return kwargs


def meter_client_transports(client: Any, wrapper: type[_MeteredBase], **options: Any) -> None:
    """Wrap a built client's transport and every mounted (proxy) transport.

    Wrapping after the client is built keeps what the client made from its
    arguments and environment, proxies from `HTTPS_PROXY` and friends included.
    """
    client._transport = wrapper(client._transport, **options)
    client._mounts = {
        pattern: None if transport is None else wrapper(transport, **options)
        for pattern, transport in client._mounts.items()
    }


class MeteredClient(httpx2.Client):
    """An `httpx2.Client` that meters every LLM response it receives.

    Pass it to the SDK: `OpenAI(http_client=tokenwire.MeteredClient())`.
    Every `httpx2.Client` argument is accepted; `subscription` and
    `dimensions` set the client-level attribution that an active
    `tokenwire.attribute()` scope overrides.
    """

    def __init__(
        self,
        *,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        meter: RecordSink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**client_defaults(httpx2, kwargs))
        meter_client_transports(
            self, MeteredTransport, meter=meter, subscription=subscription, dimensions=dimensions
        )


class AsyncMeteredClient(httpx2.AsyncClient):
    """An `httpx2.AsyncClient` that meters every LLM response it receives."""

    def __init__(
        self,
        *,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        meter: RecordSink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**client_defaults(httpx2, kwargs))
        meter_client_transports(
            self,
            AsyncMeteredTransport,
            meter=meter,
            subscription=subscription,
            dimensions=dimensions,
        )
