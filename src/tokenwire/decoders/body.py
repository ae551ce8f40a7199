"""Decode one response body, chunk by chunk, into the facts a usage record needs.

`ResponseDecoder` is sans-I/O: a transport calls `feed()` with each chunk as
the caller reads it (still content-encoded) and `finish()` once, at end of
stream or when the caller stops early. Neither raises: the first decoding
failure is kept as `problem`, decoding stops, and the record is flagged,
while the caller's bytes flow on untouched.

The body is read as server-sent events when the response says
`text/event-stream` (or the request asked for a stream and the response has no
content type), as AWS event-stream frames when it says
`application/vnd.amazon.eventstream` (or a Bedrock stream was requested and
the response has no content type), and as one JSON document otherwise.
Two more framings are split into JSON values read one by one: JSON Lines
(an NDJSON media type, or any batch result file) and the one JSON array that
Gemini streams without `alt=sse`. Audio, image and other file bodies are not
buffered at all, because they carry no usage.
Extractors that read response headers (Bedrock's token-count headers) get
them through `headers=`.

Streamed bodies are decoded in batches of `STREAM_BATCH_BYTES` and at
`finish()`, so `out` may lag the bytes fed so far. Pass `batch_streams=False`
to decode every chunk as it arrives (the Bedrock hooks emit on the final event).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import DecodeError
from ..sse import ServerSentEvent, SSEEventTooLargeError, SSEParser
from ..usage import RecordState, Usage, UsageRecord
from .base import Extraction, Extractor
from .encoding import ContentDecoder, content_decoder
from .eventstream import EventStreamDecoder
from .jsonstream import JSONArraySplitter, LineSplitter
from .providers.anthropic import MessagesExtractor
from .providers.batch import BatchResultsExtractor
from .providers.bedrock import ConverseExtractor, InvokeModelExtractor
from .providers.cohere import CohereExtractor
from .providers.gemini import GeminiExtractor
from .providers.openai import ChatCompletionsExtractor
from .providers.openai_media import MediaExtractor
from .providers.openai_responses import ResponsesExtractor
from .routing import Route, Shape

__all__ = ["MAX_JSON_BODY_BYTES", "ResponseDecoder"]

logger = logging.getLogger("tokenwire.decoders")

MAX_JSON_BODY_BYTES = 64 * 1024 * 1024
"""JSON bodies are buffered whole to be decoded at the end. Past this size
(larger than any documented LLM response, image payloads included) tokenwire
stops buffering and records the response as `missing` rather than hold memory."""

STREAM_BATCH_BYTES = 64 * 1024
"""Raw stream bytes held before they are decoded in one batch; the rest is
decoded when the body ends or is closed. It bounds the memory a stream holds."""

_EXTRACTORS: dict[Shape, Extractor] = {
    "openai_chat": ChatCompletionsExtractor(),
    "openai_responses": ResponsesExtractor(),
    "anthropic_messages": MessagesExtractor(),
    "bedrock_converse": ConverseExtractor(),
    "bedrock_invoke": InvokeModelExtractor(),
    "gemini": GeminiExtractor(),
    "cohere": CohereExtractor(),
    "openai_media": MediaExtractor(),
    "batch_results": BatchResultsExtractor(),
}

# Newline-delimited JSON streams: Cohere v1 chat (`application/stream+json`) and JSON Lines files.
_NDJSON_MEDIA_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/stream+json",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
# Bodies that never carry usage and are not buffered: audio, images, files.
_OPAQUE_MEDIA_PREFIXES = ("audio/", "image/", "video/", "application/octet-stream")

EVENTSTREAM_MEDIA_TYPE = "application/vnd.amazon.eventstream"
_EVENTSTREAM_SHAPES: frozenset[Shape] = frozenset({"bedrock_converse", "bedrock_invoke"})


class ResponseDecoder:
    """Decoder state for one HTTP response."""

    __slots__ = (
        "_batched",
        "_buffer",
        "_buffered",
        "_content",
        "_eventstream",
        "_extractor",
        "_finished",
        "_frames",
        "_on_message",
        "_opaque",
        "_pending",
        "_pending_bytes",
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
        *,
        headers: Mapping[str, str] | None = None,
        batch_streams: bool = True,
    ) -> None:
        self.route = route
        self.status = status
        self.out = Extraction()
        self.problem: str | None = None
        self._extractor = _EXTRACTORS[route.shape]
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._finished = False
        self._content: ContentDecoder | None = None
        self._sse: SSEParser | None = None
        self._eventstream: EventStreamDecoder | None = None
        self._frames: JSONArraySplitter | LineSplitter | None = None
        self._opaque = False
        self._on_message: Callable[[Any, Extraction], None] | None = getattr(
            self._extractor, "on_message", None
        )

        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type == EVENTSTREAM_MEDIA_TYPE or (
            not media_type and route.stream and route.shape in _EVENTSTREAM_SHAPES
        ):
            self._eventstream = EventStreamDecoder()
        elif media_type == "text/event-stream" or (not media_type and route.stream):
            self._sse = SSEParser()
        self._frames = None if self.is_stream else _frame_splitter(route, media_type)
        self._opaque = self._frames is None and not self.is_stream and _is_opaque(route, media_type)
        self._batched = batch_streams and self.is_stream
        on_headers = getattr(self._extractor, "on_headers", None)
        if headers is not None and on_headers is not None:
            try:
                on_headers(headers, self.out)
            except DecodeError as exc:
                self._fail(exc)
            except Exception as exc:  # a fault here must never reach the caller
                self._fail(exc, unexpected=True)
        try:
            self._content = content_decoder(content_encoding)
        except DecodeError as exc:
            self._fail(exc)

    @property
    def is_stream(self) -> bool:
        if self._frames is not None:
            # A batch result file arrives in lines but is not a streamed response.
            return not self.route.batch
        return self._sse is not None or self._eventstream is not None

    @property
    def discard(self) -> bool:
        """Whether the body showed this is not an LLM response, so no record should be made."""
        return self.out.discard

    def feed(self, chunk: bytes) -> None:
        """Read the next raw (still content-encoded) chunk of the body."""
        if self._content is None or self.problem is not None or self._opaque or self.out.discard:
            return
        if self._batched and not self._finished:
            # Streams are decoded in batches: per-chunk decoding costs several
            # times more inside an SDK's loop than the same work done in bulk.
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
            if self._pending_bytes >= STREAM_BATCH_BYTES:
                self._decode_pending()
            return
        self._decode(chunk)

    def _decode_pending(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if self._content is not None and self.problem is None:
            self._decode(data)

    def _decode(self, chunk: bytes) -> None:
        assert self._content is not None
        try:
            data = self._content.decode(chunk)
            if data:
                self._consume(data)
        except DecodeError as exc:
            self._fail(exc)
        except Exception as exc:  # a fault here must never reach the caller
            self._fail(exc, unexpected=True)

    def _consume(self, data: bytes) -> None:
        if self._frames is not None:
            self._read_frames(self._frames.feed(data))
            return
        if self._eventstream is not None:
            self._read_messages(self._eventstream.feed(data))
            return
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
            raise _BodyTooLarge(f"JSON body exceeds {MAX_JSON_BODY_BYTES} bytes; usage not read")
        self._buffer.append(data)

    def _read_messages(self, messages: list[Any]) -> None:
        if not messages:
            return
        if self._on_message is None:
            raise _NotAnEventStreamAPI(
                f"{self.route.provider} {self.route.api} responses are not AWS event streams"
            )
        for message in messages:
            self._on_message(message, self.out)

    def _read_frames(self, frames: list[bytes]) -> None:
        # Each JSON array element or JSON line is one payload, read like an SSE event's data.
        out = self.out
        extractor = self._extractor
        for frame in frames:
            extractor.on_event(ServerSentEvent(data=frame), out)

    def _fail(self, exc: BaseException, *, unexpected: bool = False) -> None:
        self.problem = f"{type(exc).__name__}: {exc}"
        self._buffer.clear()
        if unexpected:
            logger.warning(
                "tokenwire decoder fault on %s %s: %r", self.route.provider, self.route.api, exc
            )

    def finish(self, *, eof: bool) -> RecordState:
        """End decoding and return the record state.

        `eof` is true when the body was read to its end; false when the caller
        closed it early or the connection failed. Only the first call decodes.
        """
        if not self._finished:
            self._decode_pending()
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
            elif self._eventstream is not None:
                self._eventstream.close()
            elif self._frames is not None:
                self._read_frames(self._frames.close())
                if self.route.batch and self.out.usage is not None:
                    # A batch result file has no end marker: read to its end, it is complete.
                    self.out.terminal = True
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
        if (
            self._eventstream is not None
            and out.error is not None
            and self.status < 400
            and not out.terminal
        ):
            # An exception frame cut a stream that had started: its counts may be billable.
            return "partial"
        if not has_usage and (out.error is not None or self.status >= 400):
            return "error"
        if out.terminal and out.usage is not None:
            # The terminal usage was seen, even when it holds no billable class
            # (a Gemini cache's size, a transcription billed by the second).
            return "complete"
        if not (eof or out.finished):
            return "partial"
        if self.is_stream and self._extractor.end_marker and not out.finished:
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
        if problem is None and state == "partial" and out.error is not None:
            problem = f"provider error in stream: {out.error}"
        elif problem is None and state == "partial":
            problem = (
                "stream ended before its terminal usage" if eof else "closed before end of body"
            )
        return UsageRecord(
            provider=self.route.provider,
            api=self.route.api,
            state=state,
            usage=out.usage if out.usage is not None else Usage(),
            response_id=out.response_id or self.route.response_id,
            request_model=self.route.request_model,
            response_model=out.response_model,
            http_status=self.status,
            stream=self.is_stream,
            batch=self.route.batch,
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


class _NotAnEventStreamAPI(DecodeError):
    pass


def _frame_splitter(route: Route, media_type: str) -> JSONArraySplitter | LineSplitter | None:
    """Return the splitter for a body of JSON values that arrive one by one, if it is one."""
    if route.shape == "batch_results" or media_type in _NDJSON_MEDIA_TYPES:
        return LineSplitter()
    if route.shape == "gemini" and route.stream:
        # `streamGenerateContent` without `alt=sse` sends one JSON array of chunks.
        return JSONArraySplitter()
    return None


def _is_opaque(route: Route, media_type: str) -> bool:
    """Return whether the body is audio, an image or a file that carries no usage."""
    if media_type.startswith(_OPAQUE_MEDIA_PREFIXES):
        return True
    # Transcripts in text, SRT or VTT format carry no usage either.
    return route.shape == "openai_media" and bool(media_type) and "json" not in media_type
