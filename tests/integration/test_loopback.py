"""The real SDKs through MeteredClient over a real loopback HTTP server, and the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import respx

import tokenwire
import tokenwire.httpx
from tokenwire.delivery.ledger import Ledger
from tokenwire.testing.provider_server import FIXTURES, ProviderServer, fixture_bytes
from tokenwire.testing.replay import RecordingSink

MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as running:
        yield running


def test_openai_over_loopback_gzip_and_sse(server: ProviderServer, sink: RecordingSink) -> None:
    client = openai.OpenAI(
        base_url=server.openai_base_url,
        api_key="test",
        http_client=tokenwire.MeteredClient(meter=sink, trust_env=False),
    )

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    json_record, sse_record = sink.records
    assert completion.usage is not None
    assert json_record.state == "complete"
    assert json_record.usage.output_tokens == completion.usage.completion_tokens
    assert chunks[-1].usage is not None
    assert sse_record.state == "complete"
    assert sse_record.usage.output_tokens == chunks[-1].usage.completion_tokens


@pytest.mark.anyio
async def test_async_anthropic_over_loopback(server: ProviderServer, sink: RecordingSink) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=server.base_url,
        api_key="test",
        http_client=tokenwire.AsyncMeteredClient(meter=sink, trust_env=False),
    )

    async with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES
    ) as stream:
        final = await stream.get_final_message()

    [record] = sink.records
    assert record.state == "complete"
    assert record.usage.output_tokens == final.usage.output_tokens


def test_meter_writes_records_to_ledger(server: ProviderServer, tmp_path: Path) -> None:
    meter = tokenwire.Meter(ledger=tmp_path / "ledger.sqlite3")
    client = anthropic.Anthropic(
        base_url=server.base_url,
        api_key="test",
        http_client=tokenwire.MeteredClient(meter=meter, subscription="sub_a", trust_env=False),
    )

    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES)
    result = meter.shutdown(timeout_s=5)

    assert result.written == 1
    assert result.pending == 0
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    [stored] = list(ledger.records())
    assert stored.subscription == "sub_a"
    assert stored.response_id == message.id
    assert stored.usage.output_tokens == message.usage.output_tokens
    ledger.close()


def test_client_keeps_sdk_defaults() -> None:
    client = tokenwire.MeteredClient()

    assert client.timeout.read == 600
    assert client.timeout.connect == 5
    assert client.follow_redirects is True
    assert isinstance(client._transport, tokenwire.MeteredTransport)


def test_client_keeps_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")

    client = tokenwire.MeteredClient()

    mounted = [transport for transport in client._mounts.values() if transport is not None]
    assert mounted, "the https proxy from the environment was not mounted"
    assert all(isinstance(transport, tokenwire.MeteredTransport) for transport in mounted)


@respx.mock
def test_legacy_httpx_client_with_respx(sink: RecordingSink) -> None:
    body = fixture_bytes(FIXTURES["openai", True])
    respx.post("https://api.openai.com/v1/chat/completions").mock(
        return_value=httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=httpx.ByteStream(body)
        )
    )
    client = tokenwire.httpx.MeteredClient(meter=sink)

    request = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    with client.stream(
        "POST", "https://api.openai.com/v1/chat/completions", json=request
    ) as response:
        received = b"".join(response.iter_raw())

    assert received == body
    [record] = sink.records
    assert record.state == "complete"
    assert record.stream is True
