"""A loopback HTTP server in a child process that serves the benchmark payloads (stdlib only).

`python -m benchmarks.loopback` binds 127.0.0.1 on an ephemeral port, prints
the port on its first output line and serves until its standard input closes,
so it never outlives the benchmark that started it. Running it in its own
process keeps the server's work off the measured process's GIL.

Routes (POST only):

- `/{size}/v1/chat/completions`: an OpenAI chat completion of `size` bytes
  (`2k` or `50k`) as JSON, or, when the request has `"stream": true`, a
  chat stream with usage (500 events, or the count given as first argument);
- `/{size}/v1/messages`: the same for Anthropic Messages;
- `/api/v1/events/batch`: a Lago-compatible sink that returns 200 and counts
  the events, for peers that always send. `GET /_stats` returns the count.

JSON bodies go out with `content-length` in one write; event streams use
chunked transfer encoding with one event per write and flush, as an LLM API
serves them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .payloads import (
    anthropic_message_json,
    anthropic_stream_events,
    openai_chat_json,
    openai_stream_events,
)

__all__ = ["LoopbackServer", "serve"]

SIZES = {"2k": 2_000, "50k": 50_000}
DEFAULT_STREAM_EVENTS = 500
STATS_PATH = "/_stats"
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def _build_routes(stream_events: int) -> dict[tuple[str, str, bool], bytes | list[bytes]]:
    routes: dict[tuple[str, str, bool], bytes | list[bytes]] = {}
    for label, size in SIZES.items():
        routes[label, "chat/completions", False] = openai_chat_json(size)
        routes[label, "chat/completions", True] = openai_stream_events(stream_events)
        routes[label, "messages", False] = anthropic_message_json(size)
        routes[label, "messages", True] = anthropic_stream_events(stream_events)
    return routes


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: with Nagle's algorithm on, the body
    # would wait for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the benchmark output stays clean."""

    def do_GET(self) -> None:
        if self.path.rstrip("/") != STATS_PATH:
            self._send(404, b'{"error":{"type":"not_found_error"}}')
            return
        with self.server.lock:
            events = self.server.lago_events
        self._send(200, json.dumps({"lago_events": events}).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path.rstrip("/") == "/api/v1/events/batch":
            self._lago_batch(raw)
            return

        label, _, rest = path.lstrip("/").partition("/")
        api = rest.removeprefix("v1/").rstrip("/")
        try:
            stream = bool(json.loads(raw or b"{}").get("stream"))
        except ValueError:
            stream = False
        body = self.server.routes.get((label, api, stream))
        if body is None:
            self._send(404, b'{"error":{"type":"not_found_error"}}')
        elif isinstance(body, list):
            self._send_events(body)
        else:
            self._send(200, body)

    def _lago_batch(self, raw: bytes) -> None:
        try:
            count = len(json.loads(raw).get("events", []))
        except ValueError:
            self._send(422, b'{"status":422,"error":"Unprocessable Entity"}')
            return
        with self.server.lock:
            self.server.lago_events += count
        self._send(200, b'{"events":[]}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_events(self, events: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stream_events: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = _build_routes(stream_events)
        self.lock = threading.Lock()
        self.lago_events = 0


def serve(stream_events: int = DEFAULT_STREAM_EVENTS) -> None:
    """Serve until standard input closes; print the port first."""
    server = _Server(stream_events)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


class LoopbackServer:
    """Start `serve()` in a child process with the current interpreter; stop it on exit."""

    def __init__(self, stream_events: int = DEFAULT_STREAM_EVENTS) -> None:
        self._stream_events = stream_events
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPOSITORY_ROOT), environment.get("PYTHONPATH")])
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loopback", str(self._stream_events)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPOSITORY_ROOT,
            env=environment,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            process.kill()
            raise RuntimeError(f"loopback server did not start: first output line {line!r}")
        self.port = int(line)
        return self

    def lago_events(self) -> int:
        """Return how many events the Lago sink has received so far."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.base_url + STATS_PATH, timeout=10) as response:
            count: int = json.loads(response.read())["lago_events"]
        return count

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_STREAM_EVENTS)
