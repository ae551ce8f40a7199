"""A loopback HTTP server that responds like the OpenAI and Anthropic APIs.

It serves fixed responses that ship with tokenwire (`tokenwire/demo_data`):
`POST .../chat/completions` and `POST .../v1/messages`, as JSON or, when the
request body has `"stream": true`, as server-sent events written one event
per socket write. Each response gets its own id, as from a real provider.
JSON bodies are gzip-compressed when the request accepts gzip. It binds to
127.0.0.1 only and counts the requests it served.

    with ProviderServer() as server:
        client = OpenAI(base_url=server.openai_base_url, api_key="test", ...)
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

__all__ = ["FIXTURES", "ProviderServer", "fixture_bytes"]

FIXTURES = {
    ("openai", False): "openai_chat.json",
    ("openai", True): "openai_chat_stream.sse",
    ("anthropic", False): "anthropic_messages.json",
    ("anthropic", True): "anthropic_messages_stream.sse",
}
"""Fixture file per (API family, streamed)."""


def fixture_bytes(name: str) -> bytes:
    """Return the bytes of a fixture file shipped in `tokenwire/demo_data`."""
    return resources.files("tokenwire.demo_data").joinpath(name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the demo's output clean: requests are counted, not logged."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, "application/json", b'{"error":{"type":"invalid_request_error"}}')
            return

        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/chat/completions"):
            family = "openai"
        elif path.endswith("/v1/messages"):
            family = "anthropic"
        else:
            self._send(404, "application/json", b'{"error":{"type":"not_found"}}')
            return

        stream = bool(body.get("stream"))
        with self.server.lock:
            self.server.served[family, stream] = self.server.served.get((family, stream), 0) + 1
            serial = sum(self.server.served.values())
        # Like a real provider, give every response its own id (`chatcmpl-demo…`, `msg_demo…`).
        payload = (
            fixture_bytes(FIXTURES[family, stream])
            .replace(b"_demo", b"_r%04d_demo" % serial)
            .replace(b"-demo", b"-r%04d-demo" % serial)
        )
        if stream:
            self._send_events(payload)
        elif "gzip" in self.headers.get("accept-encoding", ""):
            self._send(200, "application/json", gzip.compress(payload), encoding="gzip")
        else:
            self._send(200, "application/json", payload)

    def _send(self, status: int, content_type: str, data: bytes, encoding: str = "") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        if encoding:
            self.send_header("content-encoding", encoding)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in payload.split(b"\n\n"):
            if event:
                chunk = event + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.served: dict[tuple[str, bool], int] = {}


class ProviderServer:
    """Run the fixture server on an ephemeral loopback port in a background thread."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tokenwire-provider-server", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def served(self) -> dict[tuple[str, bool], int]:
        """Requests served so far per (API family, streamed)."""
        with self._server.lock:
            return dict(self._server.served)

    def __enter__(self) -> ProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
