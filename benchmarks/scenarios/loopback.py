"""The main SDK scenarios over real HTTP to a loopback server in another process.

Both sides share one `httpx2.HTTPTransport`, so they use the same connection
pool and the same kept-alive connection. The metered side adds
`MeteredClient`'s wrapper and a real `Meter`. Here the raw call includes
sockets, HTTP parsing and the server's time, so the ratio is closer to what a
deployment sees than the mock scenarios, whose raw calls are faster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2

from ..core import Scenario, Settings, temporary_meter
from ..loopback import LoopbackServer
from ..measure import interleave, summarize_pairs
from ..mock import client_options
from .sdk import anthropic_chat, anthropic_stream, openai_chat, openai_stream

__all__ = ["SCENARIOS"]


def _openai(http_client: Any, base_url: str, size: str) -> Any:
    import openai

    return openai.OpenAI(
        api_key="bench", base_url=f"{base_url}/{size}/v1", http_client=http_client, max_retries=0
    )


def _anthropic(http_client: Any, base_url: str, size: str) -> Any:
    import anthropic

    return anthropic.Anthropic(
        api_key="bench", base_url=f"{base_url}/{size}", http_client=http_client, max_retries=0
    )


def _runner(
    make_client: Callable[[Any, str, str], Any],
    call: Callable[[Any], object],
    size: str,
    streamed: bool,
    calls: tuple[int, int],
) -> Callable[[Settings], dict[str, Any]]:
    def run(settings: Settings) -> dict[str, Any]:
        import tokenwire

        with LoopbackServer(settings.stream_events) as server, temporary_meter() as meter:
            transport = httpx2.HTTPTransport()
            raw_http = httpx2.Client(transport=transport, trust_env=False, **client_options())
            metered_http = tokenwire.MeteredClient(
                transport=transport, meter=meter, trust_env=False
            )
            raw_client = make_client(raw_http, server.base_url, size)
            metered_client = make_client(metered_http, server.base_url, size)
            timing = interleave(
                lambda: call(raw_client),
                lambda: call(metered_client),
                rounds=settings.paired_rounds,
                calls=settings.scaled(*calls),
                warmup_calls=settings.warmup_calls,
            )
            metered_http.close()
            raw_http.close()
            meter.flush(deliver=False)
            written = meter.statistics().written
        if written == 0:
            raise RuntimeError("the metered client wrote no record to the ledger")
        chunks = settings.stream_events if streamed else None
        result = summarize_pairs(timing, chunks_per_call=chunks)
        result["records"] = written
        return result

    return run


SCENARIOS = [
    Scenario(
        "loopback-openai-chat-2k",
        "overhead",
        "openai SDK over loopback HTTP, chat completion, 2 KB JSON",
        _runner(_openai, openai_chat, "2k", False, (40, 5)),
        group="loopback",
    ),
    Scenario(
        "loopback-openai-chat-50k",
        "overhead",
        "openai SDK over loopback HTTP, chat completion, 50 KB JSON",
        _runner(_openai, openai_chat, "50k", False, (20, 3)),
        group="loopback",
    ),
    Scenario(
        "loopback-anthropic-messages-2k",
        "overhead",
        "anthropic SDK over loopback HTTP, message, 2 KB JSON",
        _runner(_anthropic, anthropic_chat, "2k", False, (40, 5)),
        group="loopback",
    ),
    Scenario(
        "loopback-openai-stream-500",
        "overhead",
        "openai SDK over loopback HTTP, chat stream of 500 events, one event per write",
        _runner(_openai, openai_stream, "2k", True, (4, 1)),
        group="loopback",
    ),
    Scenario(
        "loopback-anthropic-stream-500",
        "overhead",
        "anthropic SDK over loopback HTTP, message stream of 500 events",
        _runner(_anthropic, anthropic_stream, "2k", True, (4, 1)),
        group="loopback",
    ),
]
