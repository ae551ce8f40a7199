"""Replay recorded Bedrock Runtime traffic through a real botocore client and tokenwire's hooks.

`replay_bedrock_interaction()` takes one recorded exchange with
`bedrock-runtime.<region>.amazonaws.com`, creates a botocore `bedrock-runtime`
client instrumented with `tokenwire.instrument_boto3`, and calls the recorded
operation (Converse, ConverseStream, InvokeModel or InvokeModelWithResponseStream)
with the model id from the recorded URL. A `before-send` handler returns the
recorded status, headers and body, whose bytes arrive in network-sized chunks,
so the replay runs botocore's parser and tokenwire's handlers and tees exactly
as a live call would. The caller's side reads the
response to its end (every event of a stream, the whole InvokeModel body) and
the function returns the record tokenwire made. Nothing leaves the process:
the client has fixed fake credentials and no retries.

Only the model id (and the body, for InvokeModel) of the recorded request is
sent again, because the metering hooks read nothing else from a request.

For tests of Bedrock metering, `encode_event_stream_message()` builds AWS
event-stream frames, `event_frame()`, `chunk_frame()` and `exception_frame()`
build the frames Bedrock streams are made of, and `BedrockLoopbackServer` sends
scripted responses (`Reply`) to HTTP requests on 127.0.0.1, so that real
botocore and aiobotocore clients can be pointed at it with `endpoint_url`.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from ..usage import UsageRecord
from .cassettes import Interaction
from .replay import NETWORK_CHUNK_BYTES, RecordingSink

__all__ = [
    "EVENTSTREAM_CONTENT_TYPE",
    "BedrockLoopbackServer",
    "RecordedRawResponse",
    "Reply",
    "chunk_frame",
    "encode_event_stream_message",
    "event_frame",
    "exception_frame",
    "is_bedrock_runtime_interaction",
    "replay_bedrock_interaction",
]

_OPERATIONS = {
    "converse": "converse",
    "converse-stream": "converse_stream",
    "invoke": "invoke_model",
    "invoke-with-response-stream": "invoke_model_with_response_stream",
}
"""Last segment of `/model/{modelId}/{operation}` and the client method that calls it."""

_STREAM_MEMBERS = {"converse_stream": "stream", "invoke_model_with_response_stream": "body"}
"""Client methods whose output has an event stream, and the output member that contains it."""

_DEFAULT_REGION = "us-east-1"
_FAKE_CREDENTIAL = "tokenwire-replay"

HeaderInput = str | bytes | bool | int

EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def encode_event_stream_message(headers: Mapping[str, HeaderInput], payload: bytes) -> bytes:
    """Encode one AWS event-stream frame.

    Header values are encoded by their Python type: `str` as a string, `bytes`
    as a byte array, `bool` as true or false, and `int` as a 32-bit integer.
    """
    encoded_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    total_length = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack(">II", total_length, len(encoded_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    frame = prelude + encoded_headers + payload
    return frame + struct.pack(">I", zlib.crc32(frame))


def _encode_header(name: str, value: HeaderInput) -> bytes:
    encoded_name = name.encode("utf-8")
    head = bytes([len(encoded_name)]) + encoded_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        return head + bytes([4]) + struct.pack(">i", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return head + bytes([7]) + struct.pack(">H", len(data)) + data
    return head + bytes([6]) + struct.pack(">H", len(value)) + value


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """Return an `event` frame of type `event_type` with `payload` as its JSON body."""
    return encode_event_stream_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(payload).encode(),
    )


def chunk_frame(inner: Mapping[str, Any]) -> bytes:
    """Return an InvokeModelWithResponseStream `chunk` frame carrying `inner` as base64 JSON."""
    encoded = base64.b64encode(json.dumps(inner).encode()).decode("ascii")
    return event_frame("chunk", {"bytes": encoded})


def exception_frame(exception_type: str, message: str) -> bytes:
    """Return an in-stream `exception` frame, such as Bedrock's `modelStreamErrorException`."""
    return encode_event_stream_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response: the body is written in `chunks`, one flush each."""

    status: int
    headers: Mapping[str, str]
    chunks: Sequence[bytes] = ()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class _LoopbackHandler(BaseHTTPRequestHandler):
    server: _LoopbackHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are recorded in `BedrockLoopbackServer.requests`, not logged."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.next_reply(self.path, body)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in reply.chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped reading early (a test of an early break).
            self.close_connection = True


class _LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LoopbackHandler)
        self.lock = threading.Lock()
        self.replies: collections.deque[Reply] = collections.deque()
        self.requests: list[tuple[str, bytes]] = []

    def next_reply(self, path: str, body: bytes) -> Reply:
        with self.lock:
            self.requests.append((path, body))
            if self.replies:
                return self.replies.popleft()
        message = json.dumps({"message": "no scripted reply left"}).encode()
        return Reply(500, {"content-type": "application/json"}, [message])


class BedrockLoopbackServer:
    """An HTTP server on 127.0.0.1 that sends the next scripted `Reply` for each request.

    Replies are chunk-encoded, one flush per chunk, so a client reads a stream
    the way it arrives from Bedrock. With no reply left the server sends a 500 error.

        with BedrockLoopbackServer() as server:
            server.enqueue(Reply(200, {...}, [frame, frame]))
            client = session.create_client("bedrock-runtime", endpoint_url=server.endpoint_url)
    """

    def __init__(self) -> None:
        self._server = _LoopbackHTTPServer()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tokenwire-bedrock-loopback", daemon=True
        )

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[tuple[str, bytes]]:
        """(path, body) of every request received so far."""
        with self._server.lock:
            return list(self._server.requests)

    def enqueue(self, *replies: Reply) -> None:
        """Send `replies`, in order, to the next requests."""
        with self._server.lock:
            self._server.replies.extend(replies)

    def __enter__(self) -> BedrockLoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class RecordedRawResponse:
    """A stand-in for the urllib3 response that botocore reads, serving recorded bytes.

    `stream()` yields the body in `chunk_bytes` pieces (the way a network
    delivers it), `read()` and `readinto()` serve the rest of the body, and
    `close()` marks it closed.
    """

    def __init__(self, body: bytes, *, chunk_bytes: int = NETWORK_CHUNK_BYTES) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
        self._body = body
        self._position = 0
        self._chunk_bytes = chunk_bytes
        self.closed = False

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        while True:
            chunk = self.read(min(amt or self._chunk_bytes, self._chunk_bytes))
            if not chunk:
                return
            yield chunk

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        end = len(self._body) if amt is None else min(len(self._body), self._position + amt)
        data = self._body[self._position : end]
        self._position = end
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        """Nothing to release: there is no connection."""


def is_bedrock_runtime_interaction(interaction: Interaction) -> bool:
    """Return whether `interaction` calls one of the four Bedrock Runtime model operations."""
    return _parse_uri(interaction.request.uri) is not None


def _parse_uri(uri: str) -> tuple[str, str, str] | None:
    """Return (host, model id, client method) of a Bedrock Runtime model call URI."""
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    if not host.startswith("bedrock-runtime"):
        return None
    path = parts.path.rstrip("/")
    if not path.startswith("/model/"):
        return None
    model, _, operation = path[len("/model/") :].rpartition("/")
    method = _OPERATIONS.get(operation)
    if not model or method is None:
        return None
    return host, unquote(model), method


def _region_of(host: str) -> str:
    labels = host.split(".")
    return labels[1] if len(labels) > 3 else _DEFAULT_REGION


def _headers(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


_session_lock = threading.Lock()
"""botocore sessions are not safe for creating clients from several threads at once."""


@functools.cache
def _replay_session() -> Any:
    """Return the botocore session replays create clients from (loading models once)."""
    import botocore.session  # type: ignore[import-untyped]

    return botocore.session.Session()


def replay_bedrock_interaction(
    interaction: Interaction,
    *,
    chunk_bytes: int = NETWORK_CHUNK_BYTES,
    **instrument_options: Any,
) -> UsageRecord | None:
    """Replay one recorded Bedrock Runtime exchange; return its record, if any.

    Returns None when the interaction is not one of the four metered operations.
    `instrument_options` go to `tokenwire.instrument_boto3` (`subscription=`,
    `dimensions=`). Raises ImportError when botocore is not installed.
    """
    import botocore.config  # type: ignore[import-untyped]
    import botocore.exceptions  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSResponse  # type: ignore[import-untyped]

    from ..transports.botocore import instrument_boto3

    parsed = _parse_uri(interaction.request.uri)
    if parsed is None:
        return None
    host, model_id, method = parsed

    with _session_lock:
        client = _replay_session().create_client(
            "bedrock-runtime",
            region_name=_region_of(host),
            endpoint_url=f"https://{host}",
            aws_access_key_id=_FAKE_CREDENTIAL,
            aws_secret_access_key=_FAKE_CREDENTIAL,
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
    sink = RecordingSink()
    instrument_boto3(client, meter=sink, **instrument_options)

    recorded = interaction.response

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        return AWSResponse(
            request.url,
            recorded.status,
            _headers(recorded.headers),
            RecordedRawResponse(recorded.body, chunk_bytes=chunk_bytes),
        )

    client.meta.events.register("before-send.bedrock-runtime", answer)

    params: dict[str, Any] = {"modelId": model_id}
    if method.startswith("invoke_model") and interaction.request.body is not None:
        params["body"] = interaction.request.body
    try:
        _call_and_read(client, method, params)
    except botocore.exceptions.ClientError:
        pass  # a recorded HTTP error or an in-stream exception: the record has it
    finally:
        client.close()

    records = sink.take()
    if len(records) > 1:
        raise AssertionError(f"one exchange produced {len(records)} records")
    return records[0] if records else None


def _call_and_read(client: Any, method: str, params: dict[str, Any]) -> None:
    """Call `method` and read its response to the end, as a caller would."""
    response = getattr(client, method)(**params)
    stream_member = _STREAM_MEMBERS.get(method)
    if stream_member is not None:
        stream = response[stream_member]
        try:
            for _ in stream:
                pass
        finally:
            stream.close()
    elif method == "invoke_model":
        body = response["body"]
        try:
            body.read()
        finally:
            body.close()
