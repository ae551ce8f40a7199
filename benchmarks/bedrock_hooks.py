"""Cost of tokenwire's Bedrock hooks per call, for all four metered operations.

Two botocore `bedrock-runtime` clients get the same scripted response to every
HTTP attempt from a `before-send` handler, so no network is involved. One of
them is instrumented with `instrument_boto3` and hands its records to an
in-memory sink: the ledger is left out, to isolate the hooks, the tee and the
decoding. Streams are served one frame per read, the way
Bedrock's chunked responses arrive. Each round calls every operation on both
clients, alternating which goes first; the table gives the median time per
call of each client, their ratio, and the time tokenwire added per call.

Run: `PYTHONPATH=src python benchmarks/bedrock_hooks.py [--rounds N] [--calls N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import botocore
import botocore.config
import botocore.session
from botocore.awsrequest import AWSResponse

import tokenwire
from tokenwire.testing.bedrock_replay import (
    EVENTSTREAM_CONTENT_TYPE,
    chunk_frame,
    event_frame,
)
from tokenwire.testing.replay import RecordingSink

MODEL_ID = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Summarize the attached report."}]}]
INVOKE_REQUEST = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Summarize it."}],
    }
)
WORDS = ["the", "model", "streams", "tokens", "back", "to", "caller", "one", "small", "delta"]


class FramedRaw:
    """The urllib3 response botocore reads: `stream()` yields one pre-built piece per read."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._pieces = pieces
        self._body = b"".join(pieces)
        self._position = 0

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        yield from self._pieces

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        end = len(self._body) if amt is None else self._position + amt
        data = self._body[self._position : end]
        self._position += len(data)
        return data

    def close(self) -> None:
        """Nothing to close: there is no connection."""

    def release_conn(self) -> None:
        """Nothing to release: there is no connection."""


def text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))


def converse_stream_frames(events: int, rng: random.Random) -> list[bytes]:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    frames += [
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text(rng)}})
        for _ in range(events)
    ]
    frames += [
        event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        event_frame("messageStop", {"stopReason": "end_turn"}),
        event_frame(
            "metadata",
            {
                "usage": {"inputTokens": 420, "outputTokens": events, "totalTokens": 420 + events},
                "metrics": {"latencyMs": 900},
            },
        ),
    ]
    return frames


def invoke_stream_frames(events: int, rng: random.Random) -> list[bytes]:
    inner: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_bdrk_01",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-haiku-20241022",
                "content": [],
                "usage": {"input_tokens": 420, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    inner += [
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text(rng)},
        }
        for _ in range(events)
    ]
    inner += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": events},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 420,
                "outputTokenCount": events,
                "invocationLatency": 900,
                "firstByteLatency": 200,
            },
        },
    ]
    return [chunk_frame(event) for event in inner]


def invoke_body(rng: random.Random, words: int) -> bytes:
    return json.dumps(
        {
            "id": "msg_bdrk_02",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [
                {"type": "text", "text": " ".join(rng.choice(WORDS) for _ in range(words))}
            ],
            "usage": {"input_tokens": 420, "output_tokens": words},
        }
    ).encode()


def converse_body(rng: random.Random, words: int) -> bytes:
    return json.dumps(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"text": " ".join(rng.choice(WORDS) for _ in range(words))}],
                }
            },
            "stopReason": "end_turn",
            "usage": {"inputTokens": 420, "outputTokens": words, "totalTokens": 420 + words},
            "metrics": {"latencyMs": 900},
        }
    ).encode()


class Workload:
    """One operation with its scripted response and how a caller reads the result."""

    def __init__(
        self, name: str, method: str, status_headers: dict[str, str], pieces: list[bytes]
    ) -> None:
        self.name = name
        self.method = method
        self.headers = status_headers
        self.pieces = pieces

    @property
    def size(self) -> int:
        return sum(len(piece) for piece in self.pieces)

    def call(self, client: Any) -> None:
        if self.method.startswith("invoke_model"):
            response = getattr(client, self.method)(modelId=MODEL_ID, body=INVOKE_REQUEST)
        else:
            response = getattr(client, self.method)(modelId=MODEL_ID, messages=MESSAGES)
        if self.method == "converse_stream":
            for _ in response["stream"]:
                pass
        elif self.method == "invoke_model_with_response_stream":
            for _ in response["body"]:
                pass
        elif self.method == "invoke_model":
            response["body"].read()


def workloads(rng: random.Random) -> list[Workload]:
    stream_headers = {"content-type": EVENTSTREAM_CONTENT_TYPE, "x-amzn-requestid": "req"}
    invoke_headers = {
        "content-type": "application/json",
        "x-amzn-requestid": "req",
        "x-amzn-bedrock-input-token-count": "420",
        "x-amzn-bedrock-output-token-count": "300",
    }
    json_headers = {"content-type": "application/json", "x-amzn-requestid": "req"}
    body = invoke_body(rng, 300)
    return [
        Workload("Converse", "converse", json_headers, [converse_body(rng, 300)]),
        Workload(
            "InvokeModel",
            "invoke_model",
            invoke_headers,
            [body[start : start + 1024] for start in range(0, len(body), 1024)],
        ),
        Workload(
            "ConverseStream 300",
            "converse_stream",
            stream_headers,
            converse_stream_frames(300, rng),
        ),
        Workload(
            "InvokeModelWithResponseStream 300",
            "invoke_model_with_response_stream",
            stream_headers,
            invoke_stream_frames(300, rng),
        ),
        Workload(
            "InvokeModelWithResponseStream 3000",
            "invoke_model_with_response_stream",
            stream_headers,
            invoke_stream_frames(3000, rng),
        ),
    ]


class Answer:
    """A `before-send` handler serving the scripted response of the current workload."""

    def __init__(self) -> None:
        self.workload: Workload | None = None

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse:
        assert self.workload is not None
        return AWSResponse(
            request.url, 200, dict(self.workload.headers), FramedRaw(self.workload.pieces)
        )


def make_client(session: Any) -> tuple[Any, Answer]:
    client = session.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="tokenwire-bench",
        aws_secret_access_key="tokenwire-bench",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    answer = Answer()
    client.meta.events.register("before-send.bedrock-runtime", answer)
    return client, answer


def time_calls(client: Any, answer: Answer, workload: Workload, calls: int) -> float:
    answer.workload = workload
    start = time.perf_counter()
    for _ in range(calls):
        workload.call(client)
    return (time.perf_counter() - start) / calls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--calls", type=int, default=20, help="calls per round (default 20)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")

    loads = workloads(random.Random(0))
    session = botocore.session.Session()
    sink = RecordingSink()
    clients = {"botocore": make_client(session), "with tokenwire": make_client(session)}
    tokenwire.instrument_boto3(clients["with tokenwire"][0], meter=sink)

    # One untimed call per workload and client, so first-call imports and caches are not timed.
    for load in loads:
        for client, answer in clients.values():
            time_calls(client, answer, load, 1)
    if len(sink.take()) != len(loads):
        raise RuntimeError("the metered client did not make one record per call")

    timings: dict[tuple[str, str], list[float]] = {}
    for round_index in range(args.rounds):
        order = list(clients) if round_index % 2 == 0 else list(reversed(clients))
        for load in loads:
            for name in order:
                client, answer = clients[name]
                timings.setdefault((load.name, name), []).append(
                    time_calls(client, answer, load, args.calls)
                )
            records = sink.take()
            if len(records) != args.calls or any(r.state != "complete" for r in records):
                raise RuntimeError(f"{load.name}: expected {args.calls} complete records")

    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"botocore {botocore.__version__}"
    )
    print(f"median of {args.rounds} interleaved rounds of {args.calls} calls per client")
    print()
    header = (
        f"{'operation':<36} {'body':>8} {'botocore ms':>12} {'tokenwire ms':>13} "
        f"{'ratio':>6} {'added us':>9}"
    )
    print(header)
    print("-" * len(header))
    for load in loads:
        plain_s = statistics.median(timings[(load.name, "botocore")])
        metered_s = statistics.median(timings[(load.name, "with tokenwire")])
        print(
            f"{load.name:<36} {load.size / 1000:>6.0f}kB {plain_s * 1e3:>12.3f} "
            f"{metered_s * 1e3:>13.3f} {metered_s / plain_s:>5.2f}x "
            f"{(metered_s - plain_s) * 1e6:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
