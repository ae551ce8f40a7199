"""Attribute every metered call made while serving a request, in ASGI and WSGI apps.

Both middlewares call a function of yours once per request with an
`IncomingRequest` (method, path, query string, headers) and expect
`(subscription, dimensions)` back, or None to leave the request unattributed.
The scope they set covers everything the application runs for that request.
For ASGI that is the whole `app(scope, receive, send)` call, including the
background tasks that Starlette runs after the response. For WSGI it is the
call and the iteration of the response body, so streamed bodies are covered.

    app.add_middleware(tokenwire.ASGIAttributionMiddleware, attribute_request=by_api_key)
    app.wsgi_app = tokenwire.WSGIAttributionMiddleware(app.wsgi_app, attribute_request=by_key)

Neither imports a web framework. ASGI callbacks may be coroutine functions
(for a database lookup); WSGI callbacks must be plain functions. A callback
that raises or returns something invalid is reported as a caught fault
(counted, logged rate-limited) and the request is served unattributed: the
unattributed policy then decides, and under `raise` the first metered call
raises `UnattributedError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from . import attribution
from .attribution import Attribution
from .meter import report_fault

__all__ = [
    "ASGIAttributionMiddleware",
    "IncomingRequest",
    "RequestAttribution",
    "WSGIAttributionMiddleware",
]

RequestAttribution = tuple[str | None, Mapping[str, str]] | None
"""The result of a request callback: (subscription, dimensions), or None."""


class IncomingRequest:
    """The parts of an incoming HTTP request that a callback usually needs.

    `headers` has lower-case names; repeated headers are joined with ", ".
    `raw` is the ASGI connection scope or the WSGI environ, for anything else.
    """

    __slots__ = ("headers", "method", "path", "query_string", "raw")

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query_string: str,
        headers: Mapping[str, str],
        raw: Mapping[str, Any],
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.raw = raw

    def __repr__(self) -> str:
        return f"IncomingRequest(method={self.method!r}, path={self.path!r})"


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    return headers


def _asgi_request(scope: Mapping[str, Any]) -> IncomingRequest:
    # ASGI gives header names lower-cased and both names and values as bytes;
    # HTTP header bytes are decoded as latin-1, which maps every byte.
    pairs = ((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])
    return IncomingRequest(
        method=scope.get("method", "GET"),
        path=scope.get("path", ""),
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=_joined(pairs),
        raw=scope,
    )


def _wsgi_request(environ: Mapping[str, Any]) -> IncomingRequest:
    pairs = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            pairs.append((key[5:].replace("_", "-").lower(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            pairs.append((key.replace("_", "-").lower(), value))
    return IncomingRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        query_string=environ.get("QUERY_STRING", ""),
        headers=_joined(pairs),
        raw=environ,
    )


def _attribution_from(result: object) -> Attribution | None:
    """Return the scope value for a callback's result; raise TypeError if it is invalid."""
    if result is None:
        return None
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(
            f"a request attribution callback must return (subscription, dimensions) or "
            f"None, got {type(result).__name__}"
        )
    subscription, dimensions = result
    if not isinstance(dimensions, Mapping):
        raise TypeError(
            f"a request attribution callback returned dimensions of type "
            f"{type(dimensions).__name__}; return a mapping of strings"
        )
    checked = attribution._validate(subscription, dimensions)
    return attribution.current().merged(subscription, checked)


class ASGIAttributionMiddleware:
    """ASGI middleware that attributes each HTTP and WebSocket connection's calls.

    `attribute_request(request)` returns `(subscription, dimensions)` or
    None, and may be a coroutine function. Lifespan and other scope types
    pass through untouched.
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        attribute_request: Callable[
            [IncomingRequest], RequestAttribution | Awaitable[RequestAttribution]
        ],
    ) -> None:
        self.app = app
        self.attribute_request = attribute_request

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        value = await self._attribution_for(scope)
        if value is None:
            await self.app(scope, receive, send)
            return
        token = attribution._scope.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            attribution._scope.reset(token)

    async def _attribution_for(self, scope: Mapping[str, Any]) -> Attribution | None:
        try:
            result = self.attribute_request(_asgi_request(scope))
            if inspect.isawaitable(result):
                result = await result
            return _attribution_from(result)
        except Exception as exc:  # the request is served unattributed
            report_fault("middleware", exc)
            return None


class WSGIAttributionMiddleware:
    """WSGI middleware that attributes the calls made while serving each request.

    `attribute_request(request)` returns `(subscription, dimensions)` or None.
    The application and the iteration of its response body run in a copy of
    the current context, with the request's scope set in that copy.
    """

    def __init__(
        self,
        app: Callable[[Any, Any], Iterable[bytes]],
        attribute_request: Callable[[IncomingRequest], RequestAttribution],
    ) -> None:
        self.app = app
        self.attribute_request = attribute_request

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        value = self._attribution_for(environ)
        if value is None:
            return self.app(environ, start_response)
        context = attribution._bind(value)
        body = context.run(self.app, environ, start_response)
        if isinstance(body, (list, tuple)):
            return body
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            # Reading a file runs no application code, and the server may send it
            # with a faster path that only works on its own wrapper type.
            return body
        return _BodyInContext(body, context)

    def _attribution_for(self, environ: Mapping[str, Any]) -> Attribution | None:
        try:
            result = self.attribute_request(_wsgi_request(environ))
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(
                    "a WSGI request attribution callback must be a plain function, "
                    "not a coroutine function"
                )
            return _attribution_from(result)
        except Exception as exc:  # the request is served unattributed
            report_fault("middleware", exc)
            return None


class _BodyInContext:
    """A WSGI response body whose iteration and `close()` run in a given context."""

    def __init__(self, body: Iterable[bytes], context: Any) -> None:
        self._body = body
        self._context = context
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self._context.run(iter, self._body)
        chunk: bytes = self._context.run(next, iterator)
        return chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)
