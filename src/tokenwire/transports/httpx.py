"""Metering transports for the httpx client family (`httpx2`, and legacy `httpx`).

`MeteredTransport` and `AsyncMeteredTransport` wrap any inner transport of
either family. For each request routed to an LLM API they capture the
attribution in force when the request is sent, and call the inner transport.
They hand back the inner response with its stream replaced by a tee, so every
chunk reaches the caller unchanged and is also fed to a `ResponseDecoder`. The
record is emitted exactly once, when the body ends, when the caller closes
it, or when an abandoned stream is garbage-collected. The per-request
attribution headers (`X-Tokenwire-Subscription`, `X-Tokenwire-Dimensions`) are
read and removed from every request, metered or not, before it is sent.

The code is written once for both families and both sync and async: the
byte-stream classes the clients insist on (`isinstance` checks against the
family's `SyncByteStream`/`AsyncByteStream`) are made per family on first use.
Nothing raised inside tokenwire reaches the caller: every call into the
metering path is guarded, logged (rate-limited) and counted. The one
deliberate exception is `UnattributedError` under the `raise` unattributed
policy, meant for test suites.
"""

from __future__ import annotations

import functools
import logging
import socket
import sys
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType
from typing import Any, NamedTuple

import httpx2

from .. import attribution
from ..attribution import Attribution
from ..decoders.body import ResponseDecoder
from ..decoders.encoding import content_decoder
from ..decoders.injection import InjectionMode, UsageChunkFilter, inject_usage_flag
from ..decoders.routing import Route, route_request
from ..errors import ConfigurationError
from ..meter import RecordSink, get_meter, report_fault

__all__ = [
    "AsyncMeteredClient",
    "AsyncMeteredTransport",
    "MeteredClient",
    "MeteredClientMixin",
    "MeteredTransport",
]

logger = logging.getLogger("tokenwire.transports")

DEFAULT_TIMEOUT = httpx2.Timeout(timeout=600.0, connect=5.0)
"""The openai and anthropic SDKs' own default: 10 minutes, 5 s to connect."""
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_KEEPALIVE_CONNECTIONS = 100


class _Exchange:
    """Metering state of one HTTP exchange, which emits its record once."""

    __slots__ = ("__weakref__", "_attribution", "_decoder", "_done", "_filter", "_sink")

    def __init__(
        self,
        decoder: ResponseDecoder | None,
        attribution: Attribution,
        sink: RecordSink | None,
        usage_filter: UsageChunkFilter | None = None,
    ) -> None:
        self._decoder = decoder
        self._attribution = attribution
        self._sink = sink
        # Without a decoder (it failed to build) there is nothing to record.
        self._done = decoder is None
        self._filter = usage_filter

    def feed(self, chunk: bytes) -> bytes:
        """Meter a chunk; return the bytes to hand to the caller."""
        decoder = self._decoder
        if not self._done and decoder is not None:
            decoder.feed(chunk)
        usage_filter = self._filter
        if usage_filter is None:
            return chunk
        try:
            return usage_filter.feed(chunk)
        except Exception as exc:  # never reaches the caller
            # Hand over what the filter held back and stop filtering.
            self._filter = None
            report_fault("usage-filter", exc)
            return usage_filter.abandon() + chunk

    def tail(self) -> bytes:
        """Return bytes held back by the usage filter at end of stream."""
        usage_filter, self._filter = self._filter, None
        if usage_filter is None:
            return b""
        try:
            return usage_filter.flush()
        except Exception as exc:  # never reaches the caller
            report_fault("usage-filter", exc)
            return usage_filter.abandon()

    def end(self, eof: bool) -> None:
        decoder = self._decoder
        if self._done or decoder is None:
            return
        self._done = True
        try:
            record = decoder.build_record(
                eof=eof,
                subscription=self._attribution.subscription,
                dimensions=dict(self._attribution.dimensions),
            )
            if decoder.discard:
                # A download that turned out not to hold usage (a training file, a PDF).
                return
            (self._sink or get_meter()).emit(record)
        except Exception as exc:  # never reaches the caller
            report_fault("emit", exc)


class _Started(NamedTuple):
    """The route, the payer and the request actually sent, fixed before sending."""

    route: Route
    attribution: Attribution
    request: Any
    injected: bool


def _start_exchange(
    request: Any, default: Attribution | None, inject: InjectionMode
) -> _Started | None:
    """Return what to meter for this request, or None when it is not an LLM call."""
    url = request.url
    content_type, subscription_header, dimensions_header = _request_headers(request.headers)
    body: bytes | None = None
    if "json" in content_type:
        try:
            body = request.content
        except Exception:  # a streaming request body is never read
            body = None
    route = route_request(request.method, url.host, url.path, body)
    if route is None or route.free:
        return None
    subscription, dimensions = attribution.parse_override_headers(
        subscription_header, dimensions_header
    )
    # Under the `raise` unattributed policy this raises UnattributedError, a
    # BaseException that the fail-open guard in `_begin` deliberately lets through.
    scope = attribution.resolve(default, subscription=subscription, dimensions=dimensions)
    if subscription_header is not None or dimensions_header is not None:
        request = _without_override_headers(request)

    injected_body = None
    if body is not None and route.stream and route.api == "chat_completions":
        injected_body = inject_usage_flag(
            body,
            mode=inject,
            provider=route.provider,
            host=url.host,
            path=url.path,
            api_version=url.params.get("api-version"),
        )
    if injected_body is None:
        return _Started(route, scope, request, injected=False)
    return _Started(route, scope, _rewritten(request, injected_body), injected=True)


_SUBSCRIPTION_KEY = attribution.SUBSCRIPTION_HEADER.encode("ascii")
_DIMENSIONS_KEY = attribution.DIMENSIONS_HEADER.encode("ascii")


def _request_headers(headers: Any) -> tuple[str, str | None, str | None]:
    """Return the content type and the two override headers, read in one pass.

    Each `Headers.get()` lower-cases and scans every header (and `encoding`
    decodes them all), while an SDK request has a dozen or more. Both httpx
    families keep `(raw, lowered, value)` tuples in `Headers._list`, which is
    read when present. Values are decoded as UTF-8, which ASCII values are too.
    """
    items = getattr(headers, "_list", None)
    lowered = (
        ((name, value) for _, name, value in items)
        if items is not None
        else ((key.lower(), value) for key, value in headers.raw)
    )
    content_type = ""
    subscription = dimensions = None
    for name, value in lowered:
        if name == b"content-type":
            content_type = value.decode("utf-8", "replace")
        elif name == _SUBSCRIPTION_KEY:
            subscription = value.decode("utf-8", "replace")
        elif name == _DIMENSIONS_KEY:
            dimensions = value.decode("utf-8", "replace")
    return content_type, subscription, dimensions


def _without_override_headers(request: Any) -> Any:
    """Return `request` without tokenwire's per-request attribution headers.

    The original is left untouched (a copy is made only when a header is
    present), so the caller's request object still shows what it sent.
    """
    headers = request.headers
    if attribution.SUBSCRIPTION_HEADER not in headers and (
        attribution.DIMENSIONS_HEADER not in headers
    ):
        return request
    headers = headers.copy()
    for name in (attribution.SUBSCRIPTION_HEADER, attribution.DIMENSIONS_HEADER):
        if name in headers:
            del headers[name]
    copy = type(request)(
        request.method,
        request.url,
        headers=headers,
        stream=request.stream,
        extensions=request.extensions,
    )
    if hasattr(request, "_content"):
        # A read body is held in an in-memory stream, so reading it again is free.
        copy.read()
    return copy


def _stripped(request: Any) -> Any:
    """Return `request` without the override headers, or unchanged if that fails."""
    try:
        return _without_override_headers(request)
    except Exception as exc:  # never reaches the caller
        report_fault("strip-headers", exc)
        return request


def _rewritten(request: Any, body: bytes) -> Any:
    """Return a copy of `request` with a new JSON body, asking for an unencoded response."""
    headers = request.headers.copy()
    headers["content-length"] = str(len(body))
    # The usage-only chunk is removed from plain bytes; compressed SSE gains nothing.
    headers["accept-encoding"] = "identity"
    return type(request)(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


def _make_decoder(route: Route, response: Any, *, decoded: bool) -> ResponseDecoder:
    headers = response.headers
    return ResponseDecoder(
        route,
        response.status_code,
        headers.get("content-type"),
        None if decoded else headers.get("content-encoding"),
        headers=headers,
    )


def _usage_filter(response: Any, *, decoded: bool) -> UsageChunkFilter | None:
    """Return a filter for the hidden usage chunk, fixing headers if it must decode."""
    headers = response.headers
    if response.status_code != 200 or "event-stream" not in headers.get("content-type", ""):
        return None
    encoding = None if decoded else headers.get("content-encoding")
    if not encoding or encoding.strip().lower() == "identity":
        return UsageChunkFilter()
    # The server compressed despite `identity`: pass on decoded bytes instead.
    content = content_decoder(encoding)
    del headers["content-encoding"]
    if "content-length" in headers:
        del headers["content-length"]
    return UsageChunkFilter(content)


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
                    chunk = exchange.feed(chunk)
                    if chunk:
                        yield chunk
                eof = True
                tail = exchange.tail()
                if tail:
                    yield tail
            finally:
                # Also when the caller stops iterating early: the body is done with.
                exchange.end(eof)

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
                    chunk = exchange.feed(chunk)
                    if chunk:
                        yield chunk
                eof = True
                tail = exchange.tail()
                if tail:
                    yield tail
            finally:
                # Also when the caller stops iterating early: the body is done with.
                exchange.end(eof)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._finalizer()

    return MeteredByteStream, AsyncMeteredByteStream


def _family_of(response: Any) -> ModuleType:
    return sys.modules[type(response).__module__.partition(".")[0]]


class _MeteredBase:
    """The base of both transports: request routing and response teeing."""

    def __init__(
        self,
        inner: Any,
        *,
        meter: RecordSink | None = None,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        inject_stream_usage: InjectionMode = "auto",
    ) -> None:
        if inject_stream_usage not in ("auto", True, False):
            raise ConfigurationError(
                f"inject_stream_usage must be 'auto', True or False, got {inject_stream_usage!r}"
            )
        self._inner = inner
        self._sink = meter
        self._inject: InjectionMode = inject_stream_usage
        self._default = (
            Attribution(subscription=subscription, dimensions=dict(dimensions or {}))
            if subscription is not None or dimensions
            else None
        )

    @property
    def inner(self) -> Any:
        """The wrapped transport."""
        return self._inner

    def _begin(self, request: Any) -> _Started | None:
        try:
            if (self._sink or get_meter()).disabled:
                return None
            return _start_exchange(request, self._default, self._inject)
        except Exception as exc:  # never reaches the caller
            report_fault("route", exc)
            return None

    def _tee(self, response: Any, started: _Started, sync: bool) -> Any:
        decoded = hasattr(response, "_content")
        usage_filter = None
        decoder = None
        try:
            if started.injected:
                # Built first: once the flag went out, the chunk it causes must
                # be removed even if metering this response fails.
                usage_filter = _usage_filter(response, decoded=decoded)
            decoder = _make_decoder(started.route, response, decoded=decoded)
        except Exception as exc:  # never reaches the caller
            report_fault("tee", exc)
        if decoder is None and usage_filter is None:
            return response

        try:
            exchange = _Exchange(decoder, started.attribution, self._sink, usage_filter)
            if decoded:
                # The inner transport returned a body that is already read and
                # decoded (`Response(content=...)`): the client never iterates it.
                self._tee_read_body(response, exchange)
                return response
            sync_cls, async_cls = _stream_classes(_family_of(response))
            stream_cls = sync_cls if sync else async_cls
            response.stream = stream_cls(response.stream, exchange)
        except Exception as exc:  # never reaches the caller
            report_fault("tee", exc)
        return response

    @staticmethod
    def _tee_read_body(response: Any, exchange: _Exchange) -> None:
        body = response._content
        kept = exchange.feed(body) + exchange.tail()
        exchange.end(True)
        if kept != body:
            response._content = kept
            response.stream = _family_of(response).ByteStream(kept)
            if "content-length" in response.headers:
                response.headers["content-length"] = str(len(kept))


class MeteredTransport(_MeteredBase):
    """A sync transport that meters LLM responses passing through `inner`."""

    def handle_request(self, request: Any) -> Any:
        started = self._begin(request)
        if started is None:
            return self._inner.handle_request(_stripped(request))
        response = self._inner.handle_request(started.request)
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
        if started is None:
            return await self._inner.handle_async_request(_stripped(request))
        response = await self._inner.handle_async_request(started.request)
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


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """Return the TCP keep-alive options the anthropic SDK sets on its default client.

    Probes every 60 s after 60 s idle, 5 probes, so that load balancers do not
    drop long, quiet streams. Options a platform lacks are left out.
    """
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    interval = getattr(socket, "TCP_KEEPINTVL", None)
    if interval is not None:
        options.append((socket.IPPROTO_TCP, interval, 60))
    elif sys.platform == "darwin":
        options.append((socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPALIVE", 0x10), 60))
    count = getattr(socket, "TCP_KEEPCNT", None)
    if count is not None:
        options.append((socket.IPPROTO_TCP, count, 5))
    idle = getattr(socket, "TCP_KEEPIDLE", None)
    if idle is not None:
        options.append((socket.IPPROTO_TCP, idle, 60))
    return options


_TRANSPORT_ARGUMENTS = ("verify", "cert", "trust_env", "http1", "http2", "limits")


def use_keepalive_transport(client: Any, transport_class: Any, kwargs: dict[str, Any]) -> None:
    """Replace the client's default transport by one with TCP keep-alive socket options.

    Only call this when the caller passed no `transport=`. Proxy transports
    mounted from the environment are kept as the client built them.
    """
    # NOTE: connections through an environment proxy do not get the keep-alive options.
    # The replaced transport has opened no connection yet, so it needs no closing.
    options = {name: kwargs[name] for name in _TRANSPORT_ARGUMENTS if name in kwargs}
    client._transport = transport_class(socket_options=keepalive_socket_options(), **options)


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


class MeteredClientMixin:
    """The metering part of every metered client class, whatever its family.

    A subclass names its client family module (`httpx2` or `httpx`) and whether
    it is async. `__init__` fills in the SDKs' defaults and builds the client.
    Unless the caller passed `transport=`, it gives the client a keep-alive
    transport. Then it wraps every transport the client routes through.
    """

    family: ModuleType
    is_async: bool = False

    def __init__(
        self,
        *,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        meter: RecordSink | None = None,
        inject_stream_usage: InjectionMode = "auto",
        **kwargs: Any,
    ) -> None:
        family = self.family
        kwargs = client_defaults(family, kwargs)
        super().__init__(**kwargs)
        if "transport" not in kwargs:
            default = family.AsyncHTTPTransport if self.is_async else family.HTTPTransport
            use_keepalive_transport(self, default, kwargs)
        meter_client_transports(
            self,
            AsyncMeteredTransport if self.is_async else MeteredTransport,
            meter=meter,
            subscription=subscription,
            dimensions=dimensions,
            inject_stream_usage=inject_stream_usage,
        )


class MeteredClient(MeteredClientMixin, httpx2.Client):
    """An `httpx2.Client` that meters every LLM response it receives.

    Pass it to the SDK: `OpenAI(http_client=tokenwire.MeteredClient())`.
    Every `httpx2.Client` argument is accepted. `subscription` and
    `dimensions` set the client-level attribution, which an active
    `tokenwire.attribute()` scope overrides. `meter` replaces the process-wide
    meter. `inject_stream_usage` ("auto", True or False) controls whether
    OpenAI chat streams are asked for their usage.
    """

    family = httpx2


class AsyncMeteredClient(MeteredClientMixin, httpx2.AsyncClient):
    """An `httpx2.AsyncClient` that meters every LLM response it receives."""

    family = httpx2
    is_async = True
