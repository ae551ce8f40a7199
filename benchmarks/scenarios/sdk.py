"""Real SDK calls over a chunked mock transport, metered against unmetered.

Both sides share one `httpx2.MockTransport`: the raw side reads it through a
plain `httpx2.Client`, the metered side through `tokenwire.MeteredClient` with
a real `Meter` on a temporary ledger, so the flusher thread and its SQLite
writes run as they do in production. Before timing, one call through a
recording sink checks that the metered side produces a `complete` record with
counts, so a benchmark never times a path that meters nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2

from ..core import NullSink, Scenario, ScenarioSkipped, Settings, temporary_meter
from ..measure import interleave, summarize_pairs
from ..mock import Reply, client_options, mock_transport
from ..payloads import (
    REQUEST_MESSAGES,
    anthropic_message_json,
    anthropic_stream_events,
    gemini_stream_events,
    openai_chat_json,
    openai_stream_events,
    split_network,
)

__all__ = ["SCENARIOS", "SdkCase", "check_one_record", "run_sdk_case"]

GEMINI_MODEL = "gemini-2.5-flash"


class SdkCase:
    """An SDK, the call it makes, and the response the mock streams back."""

    def __init__(
        self,
        *,
        make_client: Callable[[Any], Any],
        call: Callable[[Any], object],
        chunks: list[bytes],
        content_type: str,
        provider: str,
        calls: tuple[int, int],
    ) -> None:
        self.make_client = make_client
        self.call = call
        self.chunks = chunks
        self.content_type = content_type
        self.provider = provider
        self.calls = calls
        """Calls per round, (full, quick)."""


def check_one_record(case: SdkCase, transport: Any) -> None:
    """Make one metered call through a recording sink; raise unless it made one complete record."""
    import tokenwire
    from tokenwire.testing import RecordingSink

    sink = RecordingSink()
    with tokenwire.MeteredClient(transport=transport, meter=sink) as http_client:
        case.call(case.make_client(http_client))
    records = sink.take()
    if len(records) != 1:
        raise RuntimeError(f"one metered call produced {len(records)} records, expected 1")
    record = records[0]
    if record.state != "complete" or not record.usage.has_counts():
        raise RuntimeError(
            f"metered call produced a {record.state!r} record ({record.problem}), expected complete"
        )
    if record.provider != case.provider:
        raise RuntimeError(f"record provider is {record.provider!r}, expected {case.provider!r}")


def run_sdk_case(case: SdkCase, settings: Settings) -> dict[str, Any]:
    """Time `case.call` through a raw client and a metered one, interleaved."""
    import tokenwire

    transport = mock_transport(Reply(case.chunks, case.content_type))
    check_one_record(case, transport)

    calls = settings.scaled(*case.calls)
    rounds = settings.paired_rounds
    with temporary_meter() as meter:
        raw_http = httpx2.Client(transport=transport, **client_options())
        metered_http = tokenwire.MeteredClient(transport=transport, meter=meter)
        raw_client = case.make_client(raw_http)
        metered_client = case.make_client(metered_http)
        timing = interleave(
            lambda: case.call(raw_client),
            lambda: case.call(metered_client),
            rounds=rounds,
            calls=calls,
            warmup_calls=settings.warmup_calls,
        )
        raw_http.close()
        metered_http.close()
        meter.flush(deliver=False)
        produced = meter.statistics().written

    result = summarize_pairs(timing, chunks_per_call=len(case.chunks))
    result["records"] = produced
    result["body_bytes"] = sum(map(len, case.chunks))
    return result


def _openai(http_client: Any) -> Any:
    import openai

    return openai.OpenAI(api_key="bench", http_client=http_client, max_retries=0)


def _anthropic(http_client: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(api_key="bench", http_client=http_client, max_retries=0)


def _gemini(http_client: Any) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="bench", http_options=types.HttpOptions(httpx_client=http_client))


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


_ANTHROPIC_SYSTEM = REQUEST_MESSAGES[0]["content"]
_ANTHROPIC_MESSAGES = REQUEST_MESSAGES[1:]


def anthropic_chat(client: Any) -> None:
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        system=_ANTHROPIC_SYSTEM,
        messages=_ANTHROPIC_MESSAGES,
    )


def anthropic_stream(client: Any) -> None:
    stream = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        system=_ANTHROPIC_SYSTEM,
        messages=_ANTHROPIC_MESSAGES,
        stream=True,
    )
    for _ in stream:
        pass


def gemini_stream(client: Any) -> None:
    for _ in client.models.generate_content_stream(
        model=GEMINI_MODEL, contents=REQUEST_MESSAGES[1]["content"]
    ):
        pass


def gemini_supported() -> bool:
    """Return whether tokenwire routes Gemini `streamGenerateContent` requests."""
    from tokenwire.decoders.routing import route_request

    route = route_request(
        "POST",
        "generativelanguage.googleapis.com",
        f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent",
        b"{}",
    )
    return route is not None


def _case(name: str, settings: Settings) -> SdkCase:
    json_type = "application/json"
    sse_type = "text/event-stream; charset=utf-8"
    if name == "openai-chat-2k":
        return SdkCase(
            make_client=_openai,
            call=openai_chat,
            provider="openai",
            chunks=split_network(openai_chat_json(2_000)),
            content_type=json_type,
            calls=(40, 5),
        )
    if name == "openai-chat-50k":
        return SdkCase(
            make_client=_openai,
            call=openai_chat,
            provider="openai",
            chunks=split_network(openai_chat_json(50_000)),
            content_type=json_type,
            calls=(20, 3),
        )
    if name == "anthropic-messages-2k":
        return SdkCase(
            make_client=_anthropic,
            call=anthropic_chat,
            provider="anthropic",
            chunks=split_network(anthropic_message_json(2_000)),
            content_type=json_type,
            calls=(40, 5),
        )
    if name == "anthropic-messages-50k":
        return SdkCase(
            make_client=_anthropic,
            call=anthropic_chat,
            provider="anthropic",
            chunks=split_network(anthropic_message_json(50_000)),
            content_type=json_type,
            calls=(20, 3),
        )
    if name == "openai-stream-500":
        return SdkCase(
            make_client=_openai,
            call=openai_stream,
            provider="openai",
            chunks=openai_stream_events(settings.stream_events),
            content_type=sse_type,
            calls=(4, 1),
        )
    if name == "anthropic-stream-500":
        return SdkCase(
            make_client=_anthropic,
            call=anthropic_stream,
            provider="anthropic",
            chunks=anthropic_stream_events(settings.stream_events),
            content_type=sse_type,
            calls=(4, 1),
        )
    if name == "gemini-stream-500":
        return SdkCase(
            make_client=_gemini,
            call=gemini_stream,
            provider="gemini",
            chunks=gemini_stream_events(settings.stream_events),
            content_type=sse_type,
            calls=(4, 1),
        )
    raise KeyError(name)


def _sdk_runner(name: str) -> Callable[[Settings], dict[str, Any]]:
    def run(settings: Settings) -> dict[str, Any]:
        if name.startswith("gemini") and not gemini_supported():
            raise ScenarioSkipped(
                "tokenwire routes no Gemini request yet (tokenwire.decoders.routing has no "
                "Gemini shape)"
            )
        return run_sdk_case(_case(name, settings), settings)

    return run


def _transport_runner(
    make_chunks: Callable[[Settings], list[bytes]],
    content_type: str,
    request: dict[str, Any],
    calls: tuple[int, int],
) -> Callable[[Settings], dict[str, Any]]:
    """Read one response through `MeteredTransport` with a sink that drops records, no SDK."""

    def run(settings: Settings) -> dict[str, Any]:
        import tokenwire

        chunks = make_chunks(settings)
        transport = mock_transport(Reply(chunks, content_type))
        sink = NullSink()
        raw_http = httpx2.Client(transport=transport, **client_options())
        metered_http = tokenwire.MeteredClient(transport=transport, meter=sink)
        url = "https://api.openai.com/v1/chat/completions"

        def read(client: httpx2.Client) -> None:
            with client.stream("POST", url, json=request) as response:
                for _ in response.iter_raw():
                    pass

        timing = interleave(
            lambda: read(raw_http),
            lambda: read(metered_http),
            rounds=settings.paired_rounds,
            calls=settings.scaled(*calls),
            warmup_calls=settings.warmup_calls,
        )
        if sink.emitted == 0:
            raise RuntimeError("the metered transport emitted no record")
        raw_http.close()
        metered_http.close()
        result = summarize_pairs(timing, chunks_per_call=len(chunks))
        result["records"] = sink.emitted
        result["body_bytes"] = sum(map(len, chunks))
        return result

    return run


_CHAT_REQUEST = {"model": "gpt-4o-mini", "messages": REQUEST_MESSAGES}
_STREAM_REQUEST = {**_CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}

SCENARIOS = [
    Scenario(
        "openai-chat-2k",
        "overhead",
        "openai SDK, chat completion, 2 KB JSON body",
        _sdk_runner("openai-chat-2k"),
    ),
    Scenario(
        "openai-chat-50k",
        "overhead",
        "openai SDK, chat completion, 50 KB JSON body",
        _sdk_runner("openai-chat-50k"),
    ),
    Scenario(
        "anthropic-messages-2k",
        "overhead",
        "anthropic SDK, message, 2 KB JSON body",
        _sdk_runner("anthropic-messages-2k"),
    ),
    Scenario(
        "anthropic-messages-50k",
        "overhead",
        "anthropic SDK, message, 50 KB JSON body",
        _sdk_runner("anthropic-messages-50k"),
    ),
    Scenario(
        "openai-stream-500",
        "overhead",
        "openai SDK, chat stream of 500 events with usage, read to the end",
        _sdk_runner("openai-stream-500"),
    ),
    Scenario(
        "anthropic-stream-500",
        "overhead",
        "anthropic SDK, message stream of 500 events, read to the end",
        _sdk_runner("anthropic-stream-500"),
    ),
    Scenario(
        "gemini-stream-500",
        "overhead",
        "google-genai SDK, generate_content_stream of 500 chunks, read to the end",
        _sdk_runner("gemini-stream-500"),
    ),
    Scenario(
        "transport-chat-50k",
        "overhead",
        "httpx2 only, 50 KB chat JSON read raw; records dropped (transport + decoder cost)",
        _transport_runner(
            lambda settings: split_network(openai_chat_json(50_000)),
            "application/json",
            _CHAT_REQUEST,
            (100, 10),
        ),
        group="transport",
    ),
    Scenario(
        "transport-stream-500",
        "overhead",
        "httpx2 only, 500-event chat stream read raw; records dropped (transport + decoder cost)",
        _transport_runner(
            lambda settings: openai_stream_events(settings.stream_events),
            "text/event-stream; charset=utf-8",
            _STREAM_REQUEST,
            (10, 2),
        ),
        group="transport",
    ),
]
