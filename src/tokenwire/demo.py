"""`tokenwire demo`: the whole pipeline on a loopback server, with the real SDKs.

It starts `ProviderServer`, calls it with the real `openai` and `anthropic`
SDKs (sync and async, streamed and not) through `MeteredClient` under two
subscriptions, flushes the meter into a ledger, and compares each
subscription's token total in the ledger with the totals computed directly
from the fixtures' usage objects. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import attribute, configure
from .delivery.ledger import Ledger
from .testing.provider_server import FIXTURES, ProviderServer, fixture_bytes
from .transports.httpx import AsyncMeteredClient, MeteredClient

__all__ = ["DemoResult", "expected_total_tokens", "run_demo"]

OPENAI_SUBSCRIPTION = "sub_acme"
ANTHROPIC_SUBSCRIPTION = "sub_globex"

_MESSAGES: Any = [{"role": "user", "content": "Say something short."}]


@dataclass(frozen=True)
class DemoResult:
    ledger_path: Path
    summary: list[dict[str, Any]]
    expected_totals: dict[str, int]
    actual_totals: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.expected_totals == self.actual_totals


def _fixture_usages(family: str, stream: bool) -> list[dict[str, Any]]:
    text = fixture_bytes(FIXTURES[family, stream]).decode()
    if not stream:
        return [json.loads(text)["usage"]]
    usages = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[len("data: ") :])
            usage = event.get("usage") or (event.get("message") or {}).get("usage")
            if usage:
                usages.append(usage)
    return usages


def expected_total_tokens(family: str, stream: bool) -> int:
    """Total input plus output tokens of one fixture, read straight from its usage objects."""
    usages = _fixture_usages(family, stream)
    if family == "openai":
        final = usages[-1]
        return int(final["prompt_tokens"]) + int(final["completion_tokens"])
    # Anthropic streams: the last event's values overwrite the first's, key by key.
    merged: dict[str, Any] = {}
    for usage in usages:
        merged.update({key: value for key, value in usage.items() if value is not None})
    return sum(
        int(merged.get(key) or 0)
        for key in (
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens",
        )
    )


def _run_sync(server: ProviderServer) -> None:
    import anthropic
    import openai

    with attribute(subscription=OPENAI_SUBSCRIPTION, feature="chat"):
        client = openai.OpenAI(
            base_url=server.openai_base_url,
            api_key="demo-key",
            http_client=MeteredClient(trust_env=False),
        )
        client.chat.completions.create(model="gpt-4o-mini", messages=_MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=_MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass

    claude = anthropic.Anthropic(
        base_url=server.base_url,
        api_key="demo-key",
        http_client=MeteredClient(subscription=ANTHROPIC_SUBSCRIPTION, trust_env=False),
    )
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=_MESSAGES)
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=_MESSAGES,
    ) as events:
        events.until_done()


async def _run_async(server: ProviderServer) -> None:
    import anthropic
    import openai

    async with attribute(subscription=OPENAI_SUBSCRIPTION, feature="chat"):
        client = openai.AsyncOpenAI(
            base_url=server.openai_base_url,
            api_key="demo-key",
            http_client=AsyncMeteredClient(trust_env=False),
        )
        await client.chat.completions.create(model="gpt-4o-mini", messages=_MESSAGES)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=_MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for _ in stream:
            pass

    claude = anthropic.AsyncAnthropic(
        base_url=server.base_url,
        api_key="demo-key",
        http_client=AsyncMeteredClient(subscription=ANTHROPIC_SUBSCRIPTION, trust_env=False),
    )
    await claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=_MESSAGES)
    async with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=_MESSAGES,
    ) as events:
        await events.until_done()


def run_demo(ledger_path: Path) -> DemoResult:
    """Run every demo call, flush into `ledger_path`, and compare totals."""
    meter = configure(ledger=ledger_path)
    with ProviderServer() as server:
        _run_sync(server)
        asyncio.run(_run_async(server))
    meter.shutdown()

    # Two modes (sync, async) per fixture, each fixture once per mode.
    expected = {
        OPENAI_SUBSCRIPTION: 2 * sum(expected_total_tokens("openai", s) for s in (False, True)),
        ANTHROPIC_SUBSCRIPTION: 2
        * sum(expected_total_tokens("anthropic", s) for s in (False, True)),
    }
    ledger = Ledger(ledger_path)
    try:
        summary = ledger.summary("subscription")
    finally:
        ledger.close()
    actual = {
        row["key"]: row["input_tokens"]
        + row["cached_input_tokens"]
        + row["cache_creation_tokens"]
        + row["output_tokens"]
        for row in summary
    }
    return DemoResult(ledger_path, summary, expected, actual)
