"""Meter Amazon Bedrock Runtime calls made with boto3 and botocore clients.

`instrument_boto3(target)` registers two event handlers on a `boto3.Session`,
a `botocore.session.Session` or an existing `bedrock-runtime` client. A session
hands copies of its handlers to the clients it creates afterwards, so clients
that already exist must be instrumented themselves. Registration uses fixed
`unique_id`s, which makes it idempotent: a second call (even with other
options) changes nothing. `uninstrument_boto3(target)` removes the handlers.

For the four metered operations (Converse, ConverseStream, InvokeModel,
InvokeModelWithResponseStream) the handlers do this:

- `before-parameter-build`: capture the call's model id exactly as the caller
  passed it (an ARN or an inference profile such as `us.`/`eu.`/`global.` stays
  whole) and the attribution in force when the request is sent.
- `before-parse`, once per HTTP attempt: build the response decoder from the
  status and headers. Converse bodies and error bodies are bytes botocore has
  already read, so they are decoded at once and the record is emitted. A
  ConverseStream or InvokeModelWithResponseStream body is swapped for a tee
  that passes every byte to botocore's event-stream parser unchanged and feeds a
  copy to the decoder. An InvokeModel body gets the same tee under its
  `StreamingBody`: the usage comes from the `X-Amzn-Bedrock-*-Token-Count`
  headers, and the body the caller reads only adds the model name the provider
  returned.

Each attempt is its own exchange: a throttled (429) or failed (5xx) attempt
that botocore retries gets an `error` record, which bills nothing, and the
successful attempt gets its own record. The response id is the attempt's
`x-amzn-requestid`. A streamed record is emitted as soon as the terminal usage
(or an in-stream exception, which makes it `partial`) is decoded, else when the
body ends, is closed, or is garbage-collected. An InvokeModel record is emitted
when its body is read to the end, closed, or garbage-collected.

botocore does not catch exceptions raised by event handlers, so every handler,
and every call from a tee into the decoder, catches its own faults, reports
them through `tokenwire.meter.report_fault`, and lets the caller's bytes flow
on. Errors of the underlying HTTP response still reach the caller unchanged.

The same handlers serve aiobotocore (see `tokenwire.transports.aiobotocore`):
only the body tee differs, because aiobotocore reads an aiohttp response.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.response import StreamingBody  # type: ignore[import-untyped]

from .. import attribution
from ..attribution import Attribution
from ..decoders.body import ResponseDecoder
from ..decoders.providers.bedrock import (
    API_CONVERSE,
    API_CONVERSE_STREAM,
    API_INVOKE_MODEL,
    API_INVOKE_MODEL_STREAM,
)
from ..decoders.routing import Route, Shape
from ..errors import ConfigurationError
from ..meter import RecordSink, get_meter, report_fault

__all__ = ["instrument_boto3", "uninstrument_boto3"]

SERVICE_NAME = "bedrock-runtime"

_OPERATIONS: dict[str, tuple[Shape, str]] = {
    "Converse": ("bedrock_converse", API_CONVERSE),
    "ConverseStream": ("bedrock_converse", API_CONVERSE_STREAM),
    "InvokeModel": ("bedrock_invoke", API_INVOKE_MODEL),
    "InvokeModelWithResponseStream": ("bedrock_invoke", API_INVOKE_MODEL_STREAM),
}
"""Metered operations: their decoder shape and the record's `api`."""

_EVENT_STREAM_OPERATIONS = frozenset({"ConverseStream", "InvokeModelWithResponseStream"})
_TEED_OPERATIONS = _EVENT_STREAM_OPERATIONS | {"InvokeModel"}

_EVENTS = ("before-parameter-build", "before-parse")
_UNIQUE_ID_PREFIX = "tokenwire-bedrock-"


class _Call:
    """The model id and attribution of one API call, captured when its request is sent."""

    __slots__ = ("attribution", "operation", "request_model")

    def __init__(self, operation: str, request_model: str | None, scope: Attribution) -> None:
        self.operation = operation
        self.request_model = request_model
        self.attribution = scope


# The call being made in this thread or task. botocore emits `before-parameter-build`
# and then, for each HTTP attempt, `before-parse` in the same thread (aiobotocore:
# in the same task). Every call sets this before its first attempt, so a value left
# by an earlier call is replaced before it could be read.
_current_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "tokenwire_bedrock_call", default=None
)


class BedrockExchange:
    """Metering state of one HTTP attempt; emits its record exactly once."""

    __slots__ = ("__weakref__", "_attribution", "_decoder", "_done", "_sink")

    def __init__(
        self, decoder: ResponseDecoder, scope: Attribution, sink: RecordSink | None
    ) -> None:
        self._decoder = decoder
        self._attribution = scope
        self._sink = sink
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, chunk: bytes) -> None:
        """Decode the next body bytes; emit once a stream's terminal usage or exception is seen."""
        if self._done or not chunk:
            return
        try:
            decoder = self._decoder
            decoder.feed(chunk)
            if decoder.is_stream and decoder.out.finished:
                self.end(eof=False)
        except Exception as exc:  # never reaches the caller
            report_fault("bedrock-feed", exc)

    def abandon(self, problem: str) -> None:
        """Emit the record of a body that cannot be read, with `problem` as the reason."""
        if self._decoder.problem is None:
            self._decoder.problem = problem
        self.end(eof=False)

    def end(self, eof: bool) -> None:
        """Emit the record: `eof` is true when the body was read to its end."""
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
            report_fault("bedrock-emit", exc)


class BodyTees:
    """The body tees of one client family (botocore or aiobotocore), one subclass each."""

    def raw_of_streaming_body(self, body: Any) -> Any:
        """Return the raw HTTP response under InvokeModel's `StreamingBody`, or None."""
        raise NotImplementedError

    def tee_event_stream(self, raw: Any, exchange: BedrockExchange) -> Any:
        """Return a stand-in for `raw` that feeds `exchange`, or None when `raw` is unknown."""
        raise NotImplementedError

    def tee_streaming_body(
        self, body: Any, raw: Any, exchange: BedrockExchange, content_length: Any
    ) -> Any:
        """Return a `StreamingBody` like `body` reading through a tee of `raw`, or None."""
        raise NotImplementedError


class BedrockHooks:
    """The botocore event handlers; one instance serves every client it is registered on."""

    def __init__(
        self,
        tees: BodyTees,
        *,
        meter: RecordSink | None = None,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        self._tees = tees
        self._sink = meter
        self._default = (
            Attribution(subscription=subscription, dimensions=dict(dimensions or {}))
            if subscription is not None or dimensions
            else None
        )

    def register(self, emitter: Any) -> None:
        """Register the handlers on a botocore event emitter (idempotent)."""
        emitter.register(
            f"before-parameter-build.{SERVICE_NAME}",
            self.on_before_parameter_build,
            unique_id=f"{_UNIQUE_ID_PREFIX}before-parameter-build",
        )
        emitter.register(
            f"before-parse.{SERVICE_NAME}",
            self.on_before_parse,
            unique_id=f"{_UNIQUE_ID_PREFIX}before-parse",
        )

    def on_before_parameter_build(
        self, params: Mapping[str, Any], model: Any, **kwargs: Any
    ) -> None:
        try:
            operation = model.name
            if operation not in _OPERATIONS or (self._sink or get_meter()).disabled:
                _current_call.set(None)
                return
            model_id = params.get("modelId")
            _current_call.set(
                _Call(
                    operation,
                    model_id if isinstance(model_id, str) else None,
                    attribution.resolve(self._default),
                )
            )
        except Exception as exc:  # botocore does not catch handler exceptions
            report_fault("bedrock-request", exc)

    def on_before_parse(
        self, operation_model: Any, response_dict: dict[str, Any], **kwargs: Any
    ) -> None:
        try:
            call = _current_call.get()
            if call is None or call.operation != operation_model.name:
                return
            self._meter_attempt(call, response_dict)
        except Exception as exc:  # botocore does not catch handler exceptions
            report_fault("bedrock-response", exc)

    def _meter_attempt(self, call: _Call, response_dict: dict[str, Any]) -> None:
        status: int = response_dict["status_code"]
        headers = _plain_headers(response_dict.get("headers") or {})
        body = response_dict.get("body")
        exchange = BedrockExchange(
            _decoder_for(call, status, headers), call.attribution, self._sink
        )

        if status >= 300 or call.operation not in _TEED_OPERATIONS:
            # Error bodies and Converse bodies are bytes botocore has read already.
            if isinstance(body, bytes | bytearray):
                exchange.feed(bytes(body))
            exchange.end(eof=True)
            return

        if call.operation in _EVENT_STREAM_OPERATIONS:
            tee = self._tees.tee_event_stream(body, exchange)
            if tee is None:
                exchange.abandon(f"a body of type {type(body).__name__} cannot be metered")
                return
            response_dict["body"] = tee
            return

        raw = self._tees.raw_of_streaming_body(body)
        new_body = None
        if raw is not None:
            new_body = self._tees.tee_streaming_body(
                body, raw, exchange, headers.get("content-length")
            )
        if new_body is None:
            # The usage is in the headers; only the returned model name is lost.
            exchange.end(eof=False)
            return
        response_dict["body"] = new_body


def _plain_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Return response headers as a dict with lower-case names (botocore's may be any case)."""
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _decoder_for(call: _Call, status: int, headers: dict[str, str]) -> ResponseDecoder:
    shape, api = _OPERATIONS[call.operation]
    route = Route(
        provider="bedrock",
        api=api,
        shape=shape,
        request_model=call.request_model,
        stream=call.operation in _EVENT_STREAM_OPERATIONS,
    )
    return ResponseDecoder(
        route,
        status,
        headers.get("content-type"),
        headers.get("content-encoding"),
        headers=headers,
        # The hooks emit a stream's record as soon as its final usage or an
        # exception frame is decoded, so frames are decoded as they arrive.
        batch_streams=False,
    )


# --- The sync tee -----------------------------------------------------------------


class _RawTee:
    """Stands in for the urllib3 response botocore reads a body from.

    `stream()`, `read()`, `readinto()` and line iteration pass every byte on
    unchanged and feed a copy to the exchange; every other attribute is the
    wrapped response's own. The record is emitted when a read reaches the end of
    the body, on `close()`, or when the tee is garbage-collected.
    """

    def __init__(self, raw: Any, exchange: BedrockExchange) -> None:
        self._raw = raw
        self._exchange = exchange
        self._finalizer = weakref.finalize(self, exchange.end, False)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        exchange = self._exchange
        eof = False
        try:
            for chunk in self._raw.stream(*args, **kwargs):
                exchange.feed(chunk)
                yield chunk
            eof = True
        finally:
            if eof:
                exchange.end(eof=True)

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        data: bytes = self._raw.read(amt, *args, **kwargs)
        self._exchange.feed(data)
        if amt is None or (not data and amt != 0):
            self._exchange.end(eof=True)
        return data

    def readinto(self, buffer: Any) -> int:
        count: int = self._raw.readinto(buffer)
        self._exchange.feed(bytes(memoryview(buffer)[:count]))
        if count == 0 and len(buffer) > 0:
            self._exchange.end(eof=True)
        return count

    def __iter__(self) -> Iterator[bytes]:
        exchange = self._exchange
        eof = False
        try:
            for line in self._raw:
                exchange.feed(line)
                yield line
            eof = True
        finally:
            if eof:
                exchange.end(eof=True)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._finalizer()

    def __enter__(self) -> _RawTee:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        try:
            raw = self.__dict__["_raw"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(raw, name)


class _SyncTees(BodyTees):
    def raw_of_streaming_body(self, body: Any) -> Any:
        if type(body) is not StreamingBody:
            return None
        # botocore keeps the raw response only in this attribute (stable since 2015).
        return getattr(body, "_raw_stream", None)

    def tee_event_stream(self, raw: Any, exchange: BedrockExchange) -> Any:
        if not callable(getattr(raw, "stream", None)):
            return None
        return _RawTee(raw, exchange)

    def tee_streaming_body(
        self, body: Any, raw: Any, exchange: BedrockExchange, content_length: Any
    ) -> Any:
        return StreamingBody(_RawTee(raw, exchange), content_length)


# --- Public API ---------------------------------------------------------------------


def _is_aio(target: Any) -> bool:
    return type(target).__module__.partition(".")[0] == "aiobotocore"


def event_emitter_of(target: Any, *, function: str) -> Any:
    """Return the event emitter of a boto3 or botocore session or client.

    Raises `ConfigurationError` naming `function` for a client of another
    service, and `TypeError` for anything that is not a session or client.
    """
    meta = getattr(target, "meta", None)
    if meta is not None and hasattr(meta, "events") and hasattr(meta, "service_model"):
        service = meta.service_model.service_name
        if service != SERVICE_NAME:
            raise ConfigurationError(
                f"{function}() needs a {SERVICE_NAME!r} client or a session, "
                f"got a {service!r} client"
            )
        return meta.events
    get_component = getattr(target, "get_component", None)
    if callable(get_component):  # botocore.session.Session and aiobotocore's AioSession
        return get_component("event_emitter")
    events = getattr(target, "events", None)
    if events is not None and hasattr(events, "register"):  # boto3.Session
        return events
    raise TypeError(
        f"{function}() takes a boto3.Session, a botocore session or a {SERVICE_NAME} client, "
        f"got {type(target).__name__}"
    )


def instrument_boto3(
    target: Any,
    *,
    meter: RecordSink | None = None,
    subscription: str | None = None,
    dimensions: Mapping[str, str] | None = None,
) -> None:
    """Meter the Bedrock Runtime calls made through `target`.

    `target` is a `boto3.Session`, a `botocore.session.Session` (clients it
    creates from now on are metered) or an existing `bedrock-runtime` client.
    `subscription` and `dimensions` are the default attribution, which an active
    `tokenwire.attribute()` scope overrides; `meter` replaces the process-wide
    meter. Calling it again on the same target changes nothing. For aiobotocore
    use `tokenwire.instrument_aiobotocore`.
    """
    if _is_aio(target):
        raise ConfigurationError(
            "instrument_boto3() got an aiobotocore object; use "
            "tokenwire.instrument_aiobotocore() for aiobotocore sessions and clients"
        )
    emitter = event_emitter_of(target, function="instrument_boto3")
    BedrockHooks(
        _SyncTees(), meter=meter, subscription=subscription, dimensions=dimensions
    ).register(emitter)


def uninstrument_boto3(target: Any) -> None:
    """Remove tokenwire's handlers from `target` (boto3, botocore or aiobotocore).

    Clients already created from an instrumented session keep their handlers.
    """
    emitter = event_emitter_of(target, function="uninstrument_boto3")
    for event in _EVENTS:
        emitter.unregister(f"{event}.{SERVICE_NAME}", unique_id=f"{_UNIQUE_ID_PREFIX}{event}")
