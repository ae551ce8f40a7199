"""Peak memory while streaming a large response: it must not grow with the response's size.

A chat stream of `size` bytes (a role event, then content events of the usual
~300 bytes, then the finish, usage and `[DONE]` events) is read to the end
through `httpx2.Client.stream()`, raw and through `MeteredClient`. The mock
yields the same pre-built event objects again and again, so the body itself
allocates nothing; `tracemalloc` then sees only what the client and tokenwire
allocate. Peaks are taken at two sizes ten times apart.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx2

from ..core import NullSink, Scenario, Settings
from ..mock import Reply, client_options, mock_transport
from ..payloads import REQUEST_MESSAGES, openai_stream_event, openai_stream_tail

__all__ = ["SCENARIOS"]

MB = 1_000_000


def _stream_events(size_bytes: int) -> Iterator[bytes]:
    first = openai_stream_event(0, {"role": "assistant", "content": ""}, None)
    content = openai_stream_event(1, {"content": " tokens"}, None)
    tail = openai_stream_tail(1)
    repeats = max(1, (size_bytes - len(first) - sum(map(len, tail))) // len(content))
    yield first
    for _ in range(repeats):
        yield content
    yield from tail


def _peak_bytes(client: httpx2.Client, size_bytes: int) -> tuple[int, int]:
    """Return (peak bytes above the starting point, body bytes read) for one streamed call."""
    request = {
        "model": "gpt-4o-mini",
        "messages": REQUEST_MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        received = 0
        with client.stream(
            "POST", "https://api.openai.com/v1/chat/completions", json=request
        ) as response:
            for chunk in response.iter_raw():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, received


def run_memory(settings: Settings) -> dict[str, Any]:
    import tokenwire

    small, large = settings.scaled(10 * MB, MB // 5), settings.scaled(100 * MB, 2 * MB)
    sizes = {"small": small, "large": large}
    result: dict[str, Any] = {"small_bytes": small, "large_bytes": large}
    for label, size in sizes.items():
        transport = mock_transport(
            Reply(lambda size=size: _stream_events(size), "text/event-stream")  # type: ignore[misc]
        )
        sink = NullSink()
        raw = httpx2.Client(transport=transport, **client_options())
        metered = tokenwire.MeteredClient(transport=transport, meter=sink)
        # The first call through a client allocates caches that later calls reuse.
        _peak_bytes(raw, size // 10)
        _peak_bytes(metered, size // 10)
        sink.emitted = 0
        result[f"raw_{label}_peak_kib"], received = _peak_bytes(raw, size)
        result[f"metered_{label}_peak_kib"], _ = _peak_bytes(metered, size)
        result[f"raw_{label}_peak_kib"] /= 1024
        result[f"metered_{label}_peak_kib"] /= 1024
        result[f"{label}_received_bytes"] = received
        if sink.emitted != 1:
            raise RuntimeError(f"the metered stream emitted {sink.emitted} records, expected 1")
        raw.close()
        metered.close()
    result["metered_growth"] = result["metered_large_peak_kib"] / result["metered_small_peak_kib"]
    result["raw_growth"] = result["raw_large_peak_kib"] / result["raw_small_peak_kib"]
    return result


SCENARIOS = [
    Scenario(
        "memory-stream",
        "memory",
        "tracemalloc peak reading a chat stream to the end, two sizes 10x apart",
        run_memory,
        group="memory",
    ),
]
