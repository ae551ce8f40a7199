"""Throughput of tokenwire's event-stream decoder against botocore's `EventStreamBuffer`.

The stream imitates Bedrock InvokeModelWithResponseStream: small frames with the
three usual headers (`:event-type`, `:content-type`, `:message-type`) and a JSON
payload of about 150 bytes carrying a base64 `bytes` field. It is fed in the
chunk sizes an HTTP client yields (1, 16 and 64 KiB), plus one byte at a time.
Both decoders run in the same process, interleaved round by round, and the table
reports the median MB/s (10**6 bytes per second) of each and their ratio.

Run: `PYTHONPATH=src python benchmarks/eventstream_throughput.py [--rounds N]`. The runner
(`python -m benchmarks`) times the 1 MB stream in 16 KiB chunks as its `eventstream-decoder`
scenario.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable, Sequence

import botocore
from botocore.eventstream import EventStreamBuffer

from tokenwire.decoders.eventstream import EventStreamDecoder

MB = 1_000_000
KIB = 1024

WORDS = ["the", "model", "streams", "tokens", "back", "to", "caller", "one", "small", "delta"]


def encode_string_header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    return (
        bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    )


HEADERS = (
    encode_string_header(":event-type", "chunk")
    + encode_string_header(":content-type", "application/json")
    + encode_string_header(":message-type", "event")
)


def encode_frame(headers: bytes, payload: bytes) -> bytes:
    lengths = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    body = lengths + struct.pack(">I", zlib.crc32(lengths)) + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def make_payload(rng: random.Random) -> bytes:
    """Build a chunk payload: base64 of an Anthropic text delta, plus Bedrock's padding."""
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    inner = json.dumps(delta, separators=(",", ":")).encode()
    padding = "abcdefghijklmnopqrstuvwxyz"[: rng.randint(1, 20)]
    outer = {"bytes": base64.b64encode(inner).decode(), "p": padding}
    return json.dumps(outer, separators=(",", ":")).encode()


def build_stream(
    size_bytes: int, *, distinct_headers: bool = False, seed: int = 0
) -> tuple[bytes, int, float]:
    """Return a stream of at least `size_bytes`, its frame count and mean payload size.

    With `distinct_headers`, every frame's `:event-type` differs, so no decoder can
    reuse a parsed header block: the worst case for tokenwire's header-block cache.
    """
    rng = random.Random(seed)
    frames = []
    total = 0
    payload_total = 0
    while total < size_bytes:
        payload = make_payload(rng)
        headers = HEADERS
        if distinct_headers:
            headers = (
                encode_string_header(":event-type", f"chunk-{len(frames):07d}")
                + encode_string_header(":content-type", "application/json")
                + encode_string_header(":message-type", "event")
            )
        frame = encode_frame(headers, payload)
        frames.append(frame)
        total += len(frame)
        payload_total += len(payload)
    return b"".join(frames), len(frames), payload_total / len(frames)


def run_tokenwire(chunks: Sequence[bytes]) -> int:
    decoder = EventStreamDecoder()
    count = 0
    for chunk in chunks:
        count += len(decoder.feed(chunk))
    decoder.close()
    return count


def run_botocore(chunks: Sequence[bytes]) -> int:
    buffer = EventStreamBuffer()
    count = 0
    for chunk in chunks:
        buffer.add_data(chunk)
        for _ in buffer:
            count += 1
    return count


DECODERS: dict[str, Callable[[Sequence[bytes]], int]] = {
    "tokenwire": run_tokenwire,
    "botocore": run_botocore,
}


def time_run(run: Callable[[Sequence[bytes]], int], chunks: Sequence[bytes], frames: int) -> float:
    start = time.perf_counter()
    count = run(chunks)
    elapsed = time.perf_counter() - start
    if count != frames:
        raise RuntimeError(f"decoded {count} messages, expected {frames}")
    return elapsed


def format_size(size_bytes: int) -> str:
    if size_bytes < 0:
        return format_size(-size_bytes) + "*"
    if size_bytes >= MB:
        return f"{size_bytes // MB} MB"
    if size_bytes >= 1000:
        return f"{size_bytes // 1000} kB"
    return f"{size_bytes} B"


def format_chunk(chunk_bytes: int) -> str:
    return f"{chunk_bytes // KIB} KiB" if chunk_bytes >= KIB else f"{chunk_bytes} B"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    # Each workload is (stream size in bytes, chunk size in bytes). A negative
    # size selects the stream whose header blocks are all distinct.
    workloads = [(size, chunk) for chunk in (KIB, 16 * KIB, 64 * KIB) for size in (1 * MB, 10 * MB)]
    workloads += [(100_000, 1), (1 * MB, 1), (-10 * MB, 16 * KIB)]

    streams = {
        size: build_stream(abs(size), distinct_headers=size < 0)
        for size in {size for size, _ in workloads}
    }
    chunked = {
        (size, chunk): [
            streams[size][0][start : start + chunk]
            for start in range(0, len(streams[size][0]), chunk)
        ]
        for size, chunk in workloads
    }

    timings: dict[tuple[int, int, str], list[float]] = {}
    for round_index in range(args.rounds):
        order = list(DECODERS) if round_index % 2 == 0 else list(reversed(DECODERS))
        for workload in workloads:
            frames = streams[workload[0]][1]
            for name in order:
                elapsed = time_run(DECODERS[name], chunked[workload], frames)
                timings.setdefault((*workload, name), []).append(elapsed)

    mean_payload = streams[10 * MB][2]
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"botocore {botocore.__version__}"
    )
    print(
        f"frames: 3 string headers + JSON payload of {mean_payload:.0f} bytes on average "
        f"({len(streams[10 * MB][0]) / streams[10 * MB][1]:.0f}-byte frames); "
        f"median of {args.rounds} interleaved rounds"
    )
    print()
    header = f"{'stream':>7} {'chunk':>7} {'frames':>7} {'tokenwire MB/s':>15} "
    header += f"{'botocore MB/s':>14} {'ratio':>6}"
    print(header)
    print("-" * len(header))

    throughput: dict[tuple[int, int, str], float] = {}
    for size, chunk in workloads:
        stream, frames, _ = streams[size]
        for name in DECODERS:
            median_s = statistics.median(timings[(size, chunk, name)])
            throughput[(size, chunk, name)] = len(stream) / median_s / MB
        tokenwire_mbps = throughput[(size, chunk, "tokenwire")]
        botocore_mbps = throughput[(size, chunk, "botocore")]
        print(
            f"{format_size(size):>7} {format_chunk(chunk):>7} {frames:>7} {tokenwire_mbps:>15.1f} "
            f"{botocore_mbps:>14.1f} {tokenwire_mbps / botocore_mbps:>5.2f}x"
        )

    print("* every frame has a distinct header block (no header-block cache hits)")
    print()
    print("linearity: MB/s on the larger stream divided by MB/s on the smaller (1.00 = linear)")
    pairs = [(1 * MB, 10 * MB, chunk) for chunk in (KIB, 16 * KIB, 64 * KIB)]
    pairs.append((100_000, 1 * MB, 1))
    for small, large, chunk in pairs:
        cells = []
        for name in DECODERS:
            ratio = throughput[(large, chunk, name)] / throughput[(small, chunk, name)]
            cells.append(f"{name} {ratio:.2f}")
        print(
            f"  {format_size(small)} -> {format_size(large)}, {format_chunk(chunk)} chunks: "
            + ", ".join(cells)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
