"""Decoder throughput: the SSE parser, the whole stream decoder, event-stream frames, JSON usage.

These run tokenwire's sans-I/O decoders on bytes already in memory, so they
show the decoding cost alone. Where a baseline exists (botocore's
`EventStreamBuffer`, `json.loads`), the two run interleaved round by round and
the speedup is the median over rounds of baseline time / tokenwire time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..core import Scenario, Settings
from ..eventstream_throughput import build_stream, run_botocore, run_tokenwire
from ..measure import PairedTiming, interleave, percentile
from ..payloads import openai_chat_json, openai_stream_events, split_network
from ..sse_throughput import parse_all

__all__ = ["SCENARIOS"]

MB = 1_000_000
STREAM_EVENTS = 500


def _throughput(timing: PairedTiming, body_bytes: int) -> dict[str, Any]:
    """Summarize a paired timing whose raw side is the baseline and metered side tokenwire."""
    speedups = [raw / ours for raw, ours in zip(timing.raw_ns, timing.metered_ns, strict=True)]
    return {
        "rounds": len(speedups),
        "calls_per_round": timing.calls_per_round,
        "body_bytes": body_bytes,
        "tokenwire_mb_s": body_bytes / (percentile(timing.metered_ns, 0.5) / 1e9) / MB,
        "baseline_mb_s": body_bytes / (percentile(timing.raw_ns, 0.5) / 1e9) / MB,
        "tokenwire_us": percentile(timing.metered_ns, 0.5) / 1e3,
        "baseline_us": percentile(timing.raw_ns, 0.5) / 1e3,
        "speedup": percentile(speedups, 0.5),
        "speedup_p10": percentile(speedups, 0.1),
        "speedup_p90": percentile(speedups, 0.9),
    }


def _alone(run: Callable[[], object], settings: Settings, body_bytes: int) -> dict[str, Any]:
    """Time `run` in rounds with no baseline; report MB/s and its spread over rounds."""
    timing = interleave(
        run,
        run,
        rounds=settings.paired_rounds,
        calls=settings.scaled(20, 2),
        warmup_calls=settings.warmup_calls,
    )
    per_round = timing.raw_ns + timing.metered_ns
    return {
        "rounds": len(per_round),
        "calls_per_round": timing.calls_per_round,
        "body_bytes": body_bytes,
        "tokenwire_mb_s": body_bytes / (percentile(per_round, 0.5) / 1e9) / MB,
        "tokenwire_mb_s_p10": body_bytes / (percentile(per_round, 0.9) / 1e9) / MB,
        "tokenwire_mb_s_p90": body_bytes / (percentile(per_round, 0.1) / 1e9) / MB,
        "tokenwire_us": percentile(per_round, 0.5) / 1e3,
        "baseline_mb_s": None,
        "speedup": None,
    }


def run_sse_parser(settings: Settings) -> dict[str, Any]:
    events = openai_stream_events(STREAM_EVENTS)
    result = _alone(lambda: parse_all(events), settings, sum(map(len, events)))
    result["us_per_event"] = result["tokenwire_us"] / len(events)
    return result


def run_stream_decoder(settings: Settings) -> dict[str, Any]:
    """Feed a chat stream, one event per chunk, to the `ResponseDecoder` a transport builds."""
    from tokenwire.decoders.body import ResponseDecoder
    from tokenwire.decoders.routing import route_request

    events = openai_stream_events(STREAM_EVENTS)
    request = json.dumps({"model": "gpt-4o-mini", "stream": True}).encode()
    route = route_request("POST", "api.openai.com", "/v1/chat/completions", request)
    if route is None:
        raise RuntimeError("tokenwire does not route an OpenAI chat request")

    def decode() -> None:
        decoder = ResponseDecoder(route, 200, "text/event-stream", None)
        for event in events:
            decoder.feed(event)
        state = decoder.finish(eof=True)
        if state != "complete":
            raise RuntimeError(f"stream decoded as {state!r}, expected complete")

    result = _alone(decode, settings, sum(map(len, events)))
    result["us_per_event"] = result["tokenwire_us"] / len(events)
    return result


def run_eventstream(settings: Settings) -> dict[str, Any]:
    """Small Bedrock-like frames in 16 KiB reads: tokenwire against botocore's EventStreamBuffer."""
    body, frame_count, _ = build_stream(settings.scaled(1 * MB, 200_000))
    chunks = split_network(body, 16 * 1024)

    def tokenwire_side() -> None:
        if run_tokenwire(chunks) != frame_count:
            raise RuntimeError("tokenwire decoded the wrong number of frames")

    def botocore_side() -> None:
        if run_botocore(chunks) != frame_count:
            raise RuntimeError("botocore decoded the wrong number of frames")

    timing = interleave(
        botocore_side,
        tokenwire_side,
        rounds=settings.paired_rounds,
        calls=settings.scaled(3, 1),
        warmup_calls=1,
    )
    result = _throughput(timing, len(body))
    result["baseline"] = "botocore EventStreamBuffer"
    result["frames"] = frame_count
    result["mean_frame_bytes"] = len(body) / frame_count
    return result


def run_json_usage(settings: Settings) -> dict[str, Any]:
    """Usage from a 50 KB chat completion: tokenwire's msgspec Struct decoder against json.loads."""
    from tokenwire.decoders.base import Extraction
    from tokenwire.decoders.providers.openai import ChatCompletionsExtractor, chat_usage

    body = b"".join(split_network(openai_chat_json(50_000)))
    extractor = ChatCompletionsExtractor()

    def tokenwire_side() -> None:
        out = Extraction()
        extractor.on_json(body, out)
        if out.usage is None:
            raise RuntimeError("tokenwire found no usage in the body")

    def json_loads_side() -> None:
        # The same facts through the standard library: parse it all, then normalize.
        document = json.loads(body)
        chat_usage(document["usage"])
        _ = document.get("id"), document.get("model"), document.get("service_tier")

    timing = interleave(
        json_loads_side,
        tokenwire_side,
        rounds=settings.paired_rounds,
        calls=settings.scaled(200, 10),
    )
    result = _throughput(timing, len(body))
    result["baseline"] = "json.loads + the same normalization"
    return result


SCENARIOS = [
    Scenario(
        "sse-parser",
        "throughput",
        "SSEParser on a 500-event chat stream, one event per feed()",
        run_sse_parser,
        group="decoder",
    ),
    Scenario(
        "stream-decoder",
        "throughput",
        "ResponseDecoder (SSE + usage extractor) on the same stream, one event per feed()",
        run_stream_decoder,
        group="decoder",
    ),
    Scenario(
        "eventstream-decoder",
        "throughput",
        "EventStreamDecoder against botocore EventStreamBuffer, ~250-byte frames, 16 KiB reads",
        run_eventstream,
        group="decoder",
    ),
    Scenario(
        "json-usage-50k",
        "throughput",
        "usage from a 50 KB chat completion: msgspec Struct against json.loads",
        run_json_usage,
        group="decoder",
    ),
]
