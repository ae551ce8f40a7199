"""Throughput of `tokenwire.sse.SSEParser` on an OpenAI-chat-shaped stream.

The stream has 500 events of about 270 bytes: one role chunk, content chunks, a finish chunk, a
usage chunk and `data: [DONE]`. It is fed three ways: one event per chunk (what a client reads when
the server flushes each event), in 7-byte chunks (heavy fragmentation), and one event per chunk with
CRLF line ends (the `splitlines()` path). Each scenario prints the best of several rounds as MB/s,
µs per event and µs per chunk.

Run: PYTHONPATH=src python benchmarks/sse_throughput.py. The runner (`python -m benchmarks`) times
the one-event-per-chunk case as its `sse-parser` scenario.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable

from tokenwire.sse import SSEParser

EVENT_COUNT = 500
SMALL_CHUNK_BYTES = 7
ROUNDS = 100

_WORDS = ("the", " quick", " brown", " fox", " jumps", " over", " lazy", " dogs", ".", " And")


def _chunk_payload(index: int, delta: dict[str, object], finish_reason: str | None) -> bytes:
    payload = {
        "id": "chatcmpl-BZx4kq2d9Qm7XyT1cR8vL0pNw3sE",
        "object": "chat.completion.chunk",
        "created": 1747000000 + index // 50,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_34a54ae93c",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def build_openai_chat_events(event_count: int = EVENT_COUNT) -> list[bytes]:
    """Return `event_count` complete SSE events shaped like an OpenAI chat completion stream."""
    events = [_chunk_payload(0, {"role": "assistant", "content": "", "refusal": None}, None)]
    for index in range(1, event_count - 3):
        events.append(_chunk_payload(index, {"content": _WORDS[index % len(_WORDS)]}, None))
    events.append(_chunk_payload(event_count - 3, {}, "stop"))

    usage = {
        "prompt_tokens": 1432,
        "completion_tokens": event_count - 4,
        "total_tokens": 1432 + event_count - 4,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    usage_chunk = json.loads(_chunk_payload(event_count - 2, {}, None))
    usage_chunk["choices"] = []
    usage_chunk["usage"] = usage
    events.append(json.dumps(usage_chunk, separators=(",", ":")).encode())
    events.append(b"[DONE]")
    return [b"data: " + payload + b"\n\n" for payload in events]


def split_every(body: bytes, chunk_bytes: int) -> list[bytes]:
    return [body[start : start + chunk_bytes] for start in range(0, len(body), chunk_bytes)]


def parse_all(chunks: list[bytes]) -> int:
    parser = SSEParser()
    event_count = 0
    for chunk in chunks:
        event_count += len(parser.feed(chunk))
    event_count += len(parser.close())
    return event_count


def best_seconds(run: Callable[[], int], expected_events: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        event_count = run()
        elapsed = time.perf_counter() - start
        if event_count != expected_events:
            raise AssertionError(f"parsed {event_count} events, expected {expected_events}")
        best = min(best, elapsed)
    return best


def report(name: str, chunks: list[bytes], event_count: int) -> None:
    body_bytes = sum(map(len, chunks))
    seconds = best_seconds(lambda: parse_all(chunks), event_count)
    print(
        f"{name:<34} {body_bytes / seconds / 1e6:8.1f} MB/s "
        f"{seconds / event_count * 1e6:7.2f} µs/event "
        f"{seconds / len(chunks) * 1e6:7.3f} µs/chunk ({len(chunks)} chunks)"
    )


def main() -> None:
    events = build_openai_chat_events()
    body = b"".join(events)
    crlf_events = [event.replace(b"\n", b"\r\n") for event in events]

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{len(events)} events, {len(body)} bytes, "
        f"mean {len(body) / len(events):.0f} bytes/event, best of {ROUNDS} rounds"
    )
    report("one event per chunk (LF)", events, len(events))
    report(
        f"{SMALL_CHUNK_BYTES}-byte chunks (LF)", split_every(body, SMALL_CHUNK_BYTES), len(events)
    )
    report("one event per chunk (CRLF)", crlf_events, len(events))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
