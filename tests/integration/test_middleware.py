"""ASGI and WSGI middleware attribute each request's metered calls from a request header.

The server tests run real servers on 127.0.0.1: uvicorn for ASGI, wsgiref for
WSGI. The applications call the OpenAI and Anthropic SDKs through metered
clients over `httpx2.MockTransport`. Every request names its customer in an
`X-Customer` header, which the callback maps to a subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import FileWrapper

import anthropic
import httpx2
import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import tokenwire
from tokenwire.meter import _faults
from tokenwire.testing.replay import RecordingSink

from .test_sdk_mock import MESSAGES, make_handler, openai_client

ASGI_REQUESTS = 40
WSGI_THREADS = 16
WSGI_REQUESTS_PER_THREAD = 3


def by_customer(request: tokenwire.IncomingRequest) -> tuple[str | None, dict[str, str]]:
    return request.headers.get("x-customer"), {"path": request.path}


async def by_customer_async(
    request: tokenwire.IncomingRequest,
) -> tuple[str | None, dict[str, str]]:
    await asyncio.sleep(0)
    return by_customer(request)


# --- ASGI -----------------------------------------------------------------------------


def _async_openai(sink: RecordingSink) -> openai.AsyncOpenAI:
    transport = httpx2.MockTransport(make_handler(is_async=True))
    http_client = tokenwire.AsyncMeteredClient(transport=transport, meter=sink)
    return openai.AsyncOpenAI(api_key="test", http_client=http_client, max_retries=0)


def _async_anthropic(sink: RecordingSink) -> anthropic.AsyncAnthropic:
    transport = httpx2.MockTransport(make_handler(is_async=True))
    http_client = tokenwire.AsyncMeteredClient(transport=transport, meter=sink)
    return anthropic.AsyncAnthropic(api_key="test", http_client=http_client, max_retries=0)


async def _stream_openai(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        pass


def raw_asgi_app(sink: RecordingSink) -> Any:
    """A framework-free ASGI app: one streamed OpenAI call per request."""
    client = _async_openai(sink)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        await _stream_openai(client)
        body = (tokenwire.current().subscription or "").encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def starlette_app(sink: RecordingSink) -> Any:
    """A Starlette app: an OpenAI call while the body streams, an Anthropic call after it."""
    openai_client = _async_openai(sink)
    anthropic_client = _async_anthropic(sink)

    async def after_response() -> None:
        await anthropic_client.messages.create(model="c", max_tokens=8, messages=MESSAGES)

    async def chat(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            await _stream_openai(openai_client)
            yield (tokenwire.current().subscription or "").encode()

        return StreamingResponse(body(), background=BackgroundTask(after_response))

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    app.add_middleware(tokenwire.ASGIAttributionMiddleware, attribute_request=by_customer_async)
    return app


@contextlib.asynccontextmanager
async def uvicorn_on_loopback(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1; shutting down waits for background tasks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _post_as_customers(base_url: str, path: str, count: int) -> list[tuple[str, str]]:
    async with httpx2.AsyncClient(base_url=base_url, timeout=30) as client:

        async def post(index: int) -> tuple[str, str]:
            customer = f"cust_{index}"
            response = await client.post(path, headers={"x-customer": customer}, content=b"{}")
            assert response.status_code == 200
            return customer, response.text

        return list(await asyncio.gather(*(post(index) for index in range(count))))


@pytest.mark.anyio
async def test_raw_asgi_app_under_uvicorn(sink: RecordingSink) -> None:
    app = tokenwire.ASGIAttributionMiddleware(raw_asgi_app(sink), attribute_request=by_customer)

    async with uvicorn_on_loopback(app) as base_url:
        answers = await _post_as_customers(base_url, "/v1/ask", ASGI_REQUESTS)

    assert all(customer == seen for customer, seen in answers)
    assert Counter(record.subscription for record in sink.records) == Counter(
        f"cust_{index}" for index in range(ASGI_REQUESTS)
    )
    assert {tuple(record.dimensions.items()) for record in sink.records} == {(("path", "/v1/ask"),)}
    assert {record.state for record in sink.records} == {"complete"}


@pytest.mark.anyio
async def test_starlette_app_under_uvicorn(sink: RecordingSink) -> None:
    async with uvicorn_on_loopback(starlette_app(sink)) as base_url:
        answers = await _post_as_customers(base_url, "/chat", ASGI_REQUESTS)

    assert all(customer == seen for customer, seen in answers)
    records = sink.records
    assert Counter((record.subscription, record.provider) for record in records) == Counter(
        {
            (f"cust_{index}", provider): 1
            for index in range(ASGI_REQUESTS)
            for provider in ("openai", "anthropic")
        }
    )
    assert {tuple(record.dimensions.items()) for record in records} == {(("path", "/chat"),)}


def _http_scope(headers: list[tuple[bytes, bytes]], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "method": "POST",
        "path": "/v1/ask",
        "query_string": b"q=1",
        "headers": headers,
    }


async def _call_asgi(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_asgi_request_fields_reach_callback(sink: RecordingSink) -> None:
    seen: list[tokenwire.IncomingRequest] = []

    def remember(request: tokenwire.IncomingRequest) -> None:
        seen.append(request)

    app = tokenwire.ASGIAttributionMiddleware(raw_asgi_app(sink), attribute_request=remember)
    headers = [(b"x-customer", b"cust_a"), (b"accept", b"text/plain"), (b"accept", b"*/*")]

    await _call_asgi(app, _http_scope(headers))

    [request] = seen
    assert (request.method, request.path, request.query_string) == ("POST", "/v1/ask", "q=1")
    assert request.headers == {"x-customer": "cust_a", "accept": "text/plain, */*"}
    assert request.raw["type"] == "http"
    assert [record.subscription for record in sink.records] == [None]


def _raises(request: tokenwire.IncomingRequest) -> Any:
    raise LookupError("no such API key")


BAD_CALLBACKS = [
    pytest.param(_raises, id="raises"),
    pytest.param(lambda request: "cust_a", id="returns-string"),
    pytest.param(lambda request: ("cust_a", ["tier"]), id="dimensions-not-mapping"),
    pytest.param(lambda request: ("cust_a", {"tier": 3}), id="dimension-not-string"),
    pytest.param(lambda request: ("", {}), id="empty-subscription"),
]


@pytest.mark.parametrize("callback", BAD_CALLBACKS)
@pytest.mark.anyio
async def test_asgi_bad_callback_serves_unattributed(
    sink: RecordingSink, callback: Callable[..., Any]
) -> None:
    app = tokenwire.ASGIAttributionMiddleware(raw_asgi_app(sink), attribute_request=callback)
    faults_before = _faults.by_stage.get("middleware", 0)

    sent = await _call_asgi(app, _http_scope([(b"x-customer", b"cust_a")]))

    assert sent[0]["status"] == 200
    assert [record.subscription for record in sink.records] == [None]
    assert _faults.by_stage.get("middleware", 0) == faults_before + 1


@pytest.mark.anyio
async def test_asgi_lifespan_passes_through() -> None:
    called: list[object] = []
    seen_scopes: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen_scopes.append(scope["type"])

    middleware = tokenwire.ASGIAttributionMiddleware(app, attribute_request=called.append)
    await middleware({"type": "lifespan"}, None, None)

    assert seen_scopes == ["lifespan"]
    assert called == []


@pytest.mark.anyio
async def test_asgi_websocket_attributed_and_scope_restored(sink: RecordingSink) -> None:
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tokenwire.current().subscription)

    middleware = tokenwire.ASGIAttributionMiddleware(app, attribute_request=by_customer)
    with tokenwire.attribute(feature="outer"):
        await middleware(_http_scope([(b"x-customer", b"cust_ws")], kind="websocket"), None, None)
        after = tokenwire.current()

    assert seen == ["cust_ws"]
    assert after == tokenwire.Attribution(dimensions={"feature": "outer"})


# --- WSGI -----------------------------------------------------------------------------


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are asserted on, not logged."""


def wsgi_app(sink: RecordingSink) -> Any:
    """A WSGI app with an eager route (`/eager`) and a streamed one (`/streamed`).

    The streamed route makes its metered call while the server iterates the
    response body, after the application callable has returned.
    """
    client = openai_client(sink)

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        if environ["PATH_INFO"] == "/eager":
            client.chat.completions.create(model="m", messages=MESSAGES)
            return [(tokenwire.current().subscription or "").encode()]

        def body() -> Iterator[bytes]:
            stream = client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            for _ in stream:
                pass
            yield (tokenwire.current().subscription or "").encode()

        return body()

    return app


@contextlib.contextmanager
def wsgiref_on_loopback(app: Any) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("path", ["/eager", "/streamed"])
def test_wsgi_app_under_wsgiref(sink: RecordingSink, path: str) -> None:
    app = tokenwire.WSGIAttributionMiddleware(wsgi_app(sink), attribute_request=by_customer)
    start = threading.Barrier(WSGI_THREADS)
    mismatches: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def customer_thread(base_url: str, index: int) -> None:
        customer = f"cust_{index}"
        try:
            with httpx2.Client(base_url=base_url, timeout=30) as client:
                start.wait()
                for _ in range(WSGI_REQUESTS_PER_THREAD):
                    response = client.post(path, headers={"x-customer": customer})
                    if response.text != customer:
                        mismatches.append((customer, response.text))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    with wsgiref_on_loopback(app) as base_url:
        threads = [
            threading.Thread(target=customer_thread, args=(base_url, index))
            for index in range(WSGI_THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert failures == []
    assert mismatches == []
    assert Counter(record.subscription for record in sink.records) == Counter(
        {f"cust_{index}": WSGI_REQUESTS_PER_THREAD for index in range(WSGI_THREADS)}
    )
    assert {tuple(record.dimensions.items()) for record in sink.records} == {(("path", path),)}


def _environ(**extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/ask",
        "QUERY_STRING": "q=1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "HTTP_X_CUSTOMER": "cust_a",
    }
    environ.update(extra)
    return environ


def _start_response(status: str, headers: list[tuple[str, str]]) -> None:
    assert status == "200 OK"


def test_wsgi_request_fields_reach_callback() -> None:
    seen: list[tokenwire.IncomingRequest] = []

    def remember(request: tokenwire.IncomingRequest) -> None:
        seen.append(request)

    def app(environ: Any, start_response: Any) -> list[bytes]:
        return [b""]

    tokenwire.WSGIAttributionMiddleware(app, attribute_request=remember)(
        _environ(), _start_response
    )

    [request] = seen
    assert (request.method, request.path, request.query_string) == ("GET", "/api/ask", "q=1")
    assert request.headers == {"x-customer": "cust_a", "content-type": "application/json"}


def test_wsgi_body_close_runs_in_scope() -> None:
    closed_under: list[str | None] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield (tokenwire.current().subscription or "").encode()

        def close(self) -> None:
            closed_under.append(tokenwire.current().subscription)

    middleware = tokenwire.WSGIAttributionMiddleware(
        lambda environ, start_response: Body(), attribute_request=by_customer
    )
    body = middleware(_environ(), _start_response)

    assert list(body) == [b"cust_a"]
    assert tokenwire.current() == tokenwire.Attribution()
    body.close()  # type: ignore[attr-defined]
    assert closed_under == ["cust_a"]


def test_wsgi_file_wrapper_passed_through() -> None:
    wrapped = FileWrapper(io.BytesIO(b"file body"))
    middleware = tokenwire.WSGIAttributionMiddleware(
        lambda environ, start_response: wrapped, attribute_request=by_customer
    )

    body = middleware(_environ(**{"wsgi.file_wrapper": FileWrapper}), _start_response)

    assert body is wrapped


def test_wsgi_coroutine_callback_rejected(sink: RecordingSink) -> None:
    faults_before = _faults.by_stage.get("middleware", 0)
    served_under: list[str | None] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        served_under.append(tokenwire.current().subscription)
        return [b""]

    tokenwire.WSGIAttributionMiddleware(app, attribute_request=by_customer_async)(  # type: ignore[arg-type]
        _environ(), _start_response
    )

    assert served_under == [None]
    assert _faults.by_stage.get("middleware", 0) == faults_before + 1
