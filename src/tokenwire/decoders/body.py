"""Decode one response body, chunk by chunk, into the facts a usage record needs.

`ResponseDecoder` is sans-I/O: a transport calls `feed()` with each chunk as
the caller reads it (still content-encoded) and `finish()` once, at end of
stream or when the caller stops early. Neither raises: the first decoding
failure is kept as `problem`, decoding stops, and the record is flagged,
while the caller's bytes flow on untouched.

The body is read as server-sent events when the response says
`text/event-stream` (or the request asked for a stream and the response has no
content type), and as one JSON document otherwise.
"""

from __future__ import annotations

import logging

from ..errors import DecodeError
from ..sse import SSEEventTooLargeError, SSEParser
from ..usage import RecordState, Usage, UsageRecord
from .base import Extraction, Extractor
from .encoding import ContentDecoder, content_decoder
from .providers.anthropic import MessagesExtractor
from .providers.openai import ChatCompletionsExtractor
from .providers.openai_responses import ResponsesExtractor
from .routing import Route, Shape

__all__ = ["MAX_JSON_BODY_BYTES", "ResponseDecoder"]

logger = logging.getLogger("tokenwire.decoders")

MAX_JSON_BODY_BYTES = 64 * 1024 * 1024
"""JSON bodies are buffered whole to be decoded at the end. Past this size
(larger than any documented LLM response, image payloads included) tokenwire
stops buffering and records the response as `missing` rather than hold memory."""

_EXTRACTORS: dict[Shape, Extractor] = {
    "openai_chat": ChatCompletionsExtractor(),
    "openai_responses": ResponsesExtractor(),
    "anthropic_messages": MessagesExtractor(),
}


class ResponseDecoder:
    """Decoder state for one HTTP response."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_content",
        "_extractor",
        "_finished",
        "_sse",
        "out",
        "problem",
        "route",
        "status",
    )

    def __init__(
        self,
        route: Route,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
    ) -> None:
        self.route = route
        self.status = status
        self.out = Extraction()
        self.problem: str | None = None
        self._extractor = _EXTRACTORS[route.shape]
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._finished = False
        self._content: ContentDecoder | None = None
        self._sse: SSEParser | None = None

        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type == "text/event-stream" or (not media_type and route.stream):
            self._sse = SSEParser()
        try:
            self._content = content_decoder(content_encoding)
        except DecodeError as exc:
            self._fail(exc)

    @property
    def is_stream(self) -> bool:
        return self._sse is not None

    def feed(self, chunk: bytes) -> None:
        """Read the next raw (still content-encoded) chunk of the body."""
        if self._content is None or self.problem is not None:
            return
        try:
            data = self._content.decode(chunk)
            if data:
                self._consume(data)
        except DecodeError as exc:
            self._fail(exc)
        except Exception as exc:  # a fault here must never reach the caller
            self._fail(exc, unexpected=True)

    def _consume(self, data: bytes) -> None:
        if self._sse is not None:
            out = self.out
            extractor = self._extractor
            try:
                events = self._sse.feed(data)
            except SSEEventTooLargeError as exc:
                # Events completed before the oversized one still count.
                for event in exc.events:
                    extractor.on_event(event, out)
                raise
            for event in events:
                extractor.on_event(event, out)
            return
        self._buffered += len(data)
        if self._buffered > MAX_JSON_BODY_BYTES:
            self._buffer.clear()
            raise _BodyTooLarge(
                f"JSON body exceeds {MAX_JSON_BODY_BYTES} bytes; usage not read"
            )
        self._buffer.append(data)

    def _fail(self, exc: BaseException, *, unexpected: bool = False) -> None:
        self.problem = f"{type(exc).__name__}: {exc}"
        self._buffer.clear()
        if unexpected:
            logger.warning("tokenwire decoder fault on %s %s: %r",
                           self.route.provider, self.route.api, exc)

    def finish(self, *, eof: bool) -> RecordState:
        """End decoding and return the record state.

        `eof` is true when the body was read to its end; false when the caller
        closed it early or the connection failed. Only the first call decodes.
        """
        if not self._finished:
            self._finished = True
            if eof and self.problem is None and self._content is not None:
                self._drain()
        return self._state(eof)

    def _drain(self) -> None:
        assert self._content is not None
        try:
            rest = self._content.flush()
            if rest:
                self._consume(rest)
            if self._sse is not None:
                for event in self._sse.close():
                    self._extractor.on_event(event, self.out)
            elif self._buffer:
                body = b"".join(self._buffer)
                self._buffer.clear()
                self._extractor.on_json(body, self.out)
        except DecodeError as exc:
            self._fail(exc)
        except Exception as exc:  # a fault here must never reach the caller
            self._fail(exc, unexpected=True)

    def _state(self, eof: bool) -> RecordState:
        out = self.out
        has_usage = out.usage is not None and out.usage.has_counts()
        if not has_usage and (out.error is not None or self.status >= 400):
            return "error"
        if out.terminal and has_usage:
            return "complete"
        if not (eof or out.finished):
            return "partial"
        if self._sse is not None and self._extractor.end_marker and not out.finished:
            # The body ended without the provider's end-of-stream marker: cut short.
            return "partial"
        if has_usage:
            return "partial"
        return "missing"

    def build_record(
        self,
        *,
        eof: bool,
        subscription: str | None,
        dimensions: dict[str, str],
    ) -> UsageRecord:
        """Finish decoding and return the record of this exchange."""
        state = self.finish(eof=eof)
        out = self.out
        problem = self.problem
        if problem is None and state == "partial":
            problem = (
                "stream ended before its terminal usage" if eof else "closed before end of body"
            )
        return UsageRecord(
            provider=self.route.provider,
            api=self.route.api,
            state=state,
            usage=out.usage if out.usage is not None else Usage(),
            response_id=out.response_id,
            request_model=self.route.request_model,
            response_model=out.response_model,
            http_status=self.status,
            stream=self.is_stream,
            service_tier=out.service_tier,
            subscription=subscription,
            dimensions=dimensions,
            problem=problem if problem is not None else _error_problem(out, self.status),
        )


def _error_problem(out: Extraction, status: int) -> str | None:
    if out.error is not None:
        return f"provider error: {out.error}"
    if status >= 400:
        return f"HTTP {status}"
    return None


class _BodyTooLarge(DecodeError):
    pass
