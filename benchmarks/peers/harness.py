"""The calls every peer is measured on, and the command line each peer module shares.

A peer module runs in its own virtualenv (the peer's package, openai and
httpx2, no tokenwire) and process, because some peers patch the openai classes
globally. It times the same openai SDK calls over the same chunked mock as the
main process's `openai-*` scenarios, interleaved with its own raw baseline,
and prints one JSON document: `{"peer": ..., "versions": ..., "results": [...]}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx2

from ..measure import interleave, summarize_pairs
from ..mock import Reply, client_options, mock_transport
from ..payloads import REQUEST_MESSAGES, openai_chat_json, openai_stream_events, split_network

__all__ = ["Peer", "PeerCase", "main", "openai_client", "peer_cases"]

STREAM_EVENTS = 500
QUICK_STREAM_EVENTS = 50


class PeerCase:
    """One openai call on a canned response; `calls` per round as (full, quick)."""

    def __init__(
        self,
        name: str,
        chunks: list[bytes],
        content_type: str,
        call: Callable[[Any], object],
        calls: tuple[int, int],
    ) -> None:
        self.name = name
        self.chunks = chunks
        self.content_type = content_type
        self.call = call
        self.calls = calls


def openai_chat(client: Any) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=REQUEST_MESSAGES)


def openai_stream(client: Any) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=REQUEST_MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass


def peer_cases(stream_events: int) -> list[PeerCase]:
    """Return the cases, named as the main process's scenarios on the same calls."""
    return [
        PeerCase(
            "openai-chat-2k",
            split_network(openai_chat_json(2_000)),
            "application/json",
            openai_chat,
            (40, 5),
        ),
        PeerCase(
            "openai-chat-50k",
            split_network(openai_chat_json(50_000)),
            "application/json",
            openai_chat,
            (20, 3),
        ),
        PeerCase(
            "openai-stream-500",
            openai_stream_events(stream_events),
            "text/event-stream; charset=utf-8",
            openai_stream,
            (4, 1),
        ),
    ]


def openai_client(case: PeerCase) -> Any:
    """Return a fresh openai client over a fresh chunked mock of `case`'s response."""
    import openai

    transport = mock_transport(Reply(case.chunks, case.content_type))
    http_client = httpx2.Client(transport=transport, **client_options())
    return openai.OpenAI(api_key="bench", http_client=http_client, max_retries=0)


class Peer:
    """The hooks a peer module implements: its two clients, its setup and its check."""

    name = ""

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def start(self) -> None:
        """Set up what lives for the whole run (servers, providers, global patches)."""

    def stop(self) -> None:
        """Tear down what `start()` set up."""

    def raw_client(self, case: PeerCase) -> Any:
        """Return the uninstrumented client: by default a fresh one."""
        return openai_client(case)

    def instrumented_client(self, case: PeerCase) -> Any:
        raise NotImplementedError

    def check(self, case: PeerCase, instrumented_calls: int) -> None:
        """Raise unless the instrumented side recorded the usage of its calls for `case`."""


def run_peer(peer: Peer, *, quick: bool, rounds: int, only: set[str] | None) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    peer.start()
    try:
        for case in peer_cases(QUICK_STREAM_EVENTS if quick else STREAM_EVENTS):
            if only and case.name not in only:
                continue
            raw_client = peer.raw_client(case)
            instrumented = peer.instrumented_client(case)
            case_rounds = 3 if quick else rounds
            calls = case.calls[1] if quick else case.calls[0]
            warmup_calls = 1 if quick else 3
            timing = interleave(
                lambda raw_client=raw_client, case=case: case.call(raw_client),  # type: ignore[misc]
                lambda client=instrumented, case=case: case.call(client),  # type: ignore[misc]
                rounds=case_rounds,
                calls=calls,
                warmup_calls=warmup_calls,
            )
            peer.check(case, warmup_calls + case_rounds * calls)
            summary = summarize_pairs(timing, chunks_per_call=len(case.chunks))
            summary["scenario"] = case.name
            results.append(summary)
    finally:
        peer.stop()
    return {"peer": peer.name, "versions": peer.versions(), "results": results}


def main(peer: Peer, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Measure {peer.name} against raw openai calls.")
    parser.add_argument("--quick", action="store_true", help="few rounds: checks that it works")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    args = parser.parse_args(argv)
    document = run_peer(
        peer, quick=args.quick, rounds=args.rounds, only=set(args.only) if args.only else None
    )
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return 0
