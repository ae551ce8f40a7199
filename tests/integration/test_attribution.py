"""Attribution is captured when the request is sent, across tasks and threads."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest

import tokenwire
from tokenwire.testing.replay import RecordingSink
from tokenwire.usage import UsageRecord

from .test_sdk_mock import MESSAGES, make_handler, openai_client


def _by_response_order(records: list[UsageRecord]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for record in records:
        counts[record.subscription] = counts.get(record.subscription, 0) + 1
    return counts


def test_scope_wins_over_client_default(sink: RecordingSink) -> None:
    http_client = tokenwire.MeteredClient(
        transport=httpx2.MockTransport(make_handler()),
        meter=sink,
        subscription="sub_default",
        dimensions={"team": "core"},
    )
    client = openai.OpenAI(api_key="test", http_client=http_client)

    client.chat.completions.create(model="m", messages=MESSAGES)
    with tokenwire.attribute(subscription="sub_scope", feature="search"):
        client.chat.completions.create(model="m", messages=MESSAGES)

    first, second = sink.records
    assert first.subscription == "sub_default"
    assert first.dimensions == {"team": "core"}
    assert second.subscription == "sub_scope"
    assert second.dimensions == {"team": "core", "feature": "search"}


def test_nested_scopes_merge_dimensions(sink: RecordingSink) -> None:
    client = openai_client(sink)

    with tokenwire.attribute(subscription="sub_outer", feature="a", region="eu"):
        with tokenwire.attribute(feature="b"):
            client.chat.completions.create(model="m", messages=MESSAGES)
        client.chat.completions.create(model="m", messages=MESSAGES)
    client.chat.completions.create(model="m", messages=MESSAGES)

    inner, outer, outside = sink.records
    assert (inner.subscription, inner.dimensions) == ("sub_outer", {"feature": "b", "region": "eu"})
    assert (outer.subscription, outer.dimensions) == ("sub_outer", {"feature": "a", "region": "eu"})
    assert (outside.subscription, outside.dimensions) == (None, {})


def test_stream_read_after_scope_exit_keeps_subscription(sink: RecordingSink) -> None:
    client = openai_client(sink)

    with tokenwire.attribute(subscription="sub_sender"):
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    with tokenwire.attribute(subscription="sub_reader"):
        for _ in stream:
            pass

    [record] = sink.records
    assert record.subscription == "sub_sender"


def test_decorator_attributes_calls(sink: RecordingSink) -> None:
    client = openai_client(sink)

    @tokenwire.attribute(subscription="sub_decorated", feature="summary")
    def summarize() -> None:
        client.chat.completions.create(model="m", messages=MESSAGES)

    summarize()

    [record] = sink.records
    assert record.subscription == "sub_decorated"
    assert record.dimensions == {"feature": "summary"}


def test_threads_each_keep_their_subscription(sink: RecordingSink) -> None:
    client = openai_client(sink)

    def call(index: int) -> None:
        with tokenwire.attribute(subscription=f"sub_{index % 4}"):
            client.chat.completions.create(model="m", messages=MESSAGES)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, range(32)))

    assert _by_response_order(sink.records) == {f"sub_{n}": 8 for n in range(4)}


def test_copied_context_carries_scope_into_thread(sink: RecordingSink) -> None:
    client = openai_client(sink)

    with tokenwire.attribute(subscription="sub_parent"):
        context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(
            context.run, client.chat.completions.create, model="m", messages=MESSAGES
        ).result()

    [record] = sink.records
    assert record.subscription == "sub_parent"


@pytest.mark.anyio
async def test_gather_tasks_each_keep_their_subscription(sink: RecordingSink) -> None:
    transport = httpx2.MockTransport(make_handler(is_async=True))
    client = openai.AsyncOpenAI(
        api_key="test", http_client=tokenwire.AsyncMeteredClient(transport=transport, meter=sink)
    )

    async def call(index: int) -> None:
        async with tokenwire.attribute(subscription=f"sub_{index % 5}"):
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        await asyncio.sleep(0)
        async for _ in stream:
            pass

    await asyncio.gather(*(call(index) for index in range(50)))

    assert _by_response_order(sink.records) == {f"sub_{n}": 10 for n in range(5)}
    assert {record.state for record in sink.records} == {"complete"}


def test_invalid_attribution_raises_at_configuration() -> None:
    with pytest.raises(tokenwire.ConfigurationError, match="subscription"):
        tokenwire.attribute(subscription="")
    with pytest.raises(tokenwire.ConfigurationError, match="'tier'"):
        tokenwire.attribute(subscription="sub_x", tier=3)  # type: ignore[arg-type]
