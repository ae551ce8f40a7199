"""Attribution under real concurrency: asyncio, anyio, trio, threads, pools and generators.

Every stream here is created inside its own scope and read after that scope
has closed, inside another scope ("sub_reader"), so a record attributed at
read time instead of request time shows up as a wrong subscription.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import Counter
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import anyio
import anyio.to_thread
import httpx2
import openai
import pytest

import tokenwire
from tokenwire.testing.replay import RecordingSink
from tokenwire.usage import UsageRecord

from .test_sdk_mock import MESSAGES, anthropic_client, make_handler, openai_client

ASYNC_TASKS = 200
THREADS = 16
CALLS_PER_THREAD = 4


def _async_clients(sink: RecordingSink) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]:
    def http_client() -> tokenwire.AsyncMeteredClient:
        transport = httpx2.MockTransport(make_handler(is_async=True))
        return tokenwire.AsyncMeteredClient(transport=transport, meter=sink)

    return (
        openai.AsyncOpenAI(api_key="test", http_client=http_client(), max_retries=0),
        anthropic.AsyncAnthropic(api_key="test", http_client=http_client(), max_retries=0),
    )


async def _open_stream(
    index: int, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> Any:
    """Start a stream: OpenAI for odd indexes, Anthropic for even ones."""
    if index % 2:
        return await openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    return await anthropic_client.messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=MESSAGES, stream=True
    )


def _assert_one_record_per_task(records: list[UsageRecord], tasks: int) -> None:
    assert len(records) == tasks
    subscriptions = Counter(record.subscription for record in records)
    assert subscriptions == Counter(f"sub_{index}" for index in range(tasks))
    for record in records:
        assert record.subscription is not None
        index = int(record.subscription.removeprefix("sub_"))
        assert record.dimensions == {"task": str(index)}
        assert record.provider == ("openai" if index % 2 else "anthropic")
        assert record.state == "complete"


@pytest.mark.anyio
async def test_asyncio_tasks_read_streams_after_scope(sink: RecordingSink) -> None:
    openai_client, anthropic_client = _async_clients(sink)
    all_opened = asyncio.Barrier(ASYNC_TASKS)

    async def call(index: int) -> None:
        async with tokenwire.attribute(subscription=f"sub_{index}", task=str(index)):
            stream = await _open_stream(index, openai_client, anthropic_client)
        # Every task has sent its request and left its scope before any stream is read.
        await all_opened.wait()
        async with tokenwire.attribute(subscription="sub_reader", task="reader"):
            async for _ in stream:
                pass

    await asyncio.gather(*(call(index) for index in range(ASYNC_TASKS)))

    _assert_one_record_per_task(sink.records, ASYNC_TASKS)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_task_group_children_keep_subscription(sink: RecordingSink) -> None:
    openai_client, anthropic_client = _async_clients(sink)
    tasks = 40
    streams: dict[int, Any] = {}
    opened = anyio.Event()

    async def call(index: int) -> None:
        async with tokenwire.attribute(subscription=f"sub_{index}", task=str(index)):
            streams[index] = await _open_stream(index, openai_client, anthropic_client)
        if len(streams) == tasks:
            opened.set()
        await opened.wait()
        async with tokenwire.attribute(subscription="sub_reader"):
            async for _ in streams[index]:
                pass

    async with anyio.create_task_group() as group:
        for index in range(tasks):
            group.start_soon(call, index)

    _assert_one_record_per_task(sink.records, tasks)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_task_group_inherits_parent_scope(sink: RecordingSink) -> None:
    openai_client, anthropic_client = _async_clients(sink)

    async with (
        tokenwire.attribute(subscription="sub_parent", feature="batch"),
        anyio.create_task_group() as group,
    ):
        for index in range(6):
            group.start_soon(_drain_stream, index, openai_client, anthropic_client)

    assert len(sink.records) == 6
    assert {(r.subscription, tuple(r.dimensions.items())) for r in sink.records} == {
        ("sub_parent", (("feature", "batch"),))
    }


async def _drain_stream(
    index: int, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    async for _ in await _open_stream(index, openai_client, anthropic_client):
        pass


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_to_thread_carries_scope(sink: RecordingSink) -> None:
    client = openai_client(sink)

    async with tokenwire.attribute(subscription="sub_to_thread"):
        await anyio.to_thread.run_sync(
            lambda: client.chat.completions.create(model="m", messages=MESSAGES)
        )

    [record] = sink.records
    assert record.subscription == "sub_to_thread"


def test_threads_read_streams_after_scope(sink: RecordingSink) -> None:
    openai_sync = openai_client(sink)
    anthropic_sync = anthropic_client(sink)
    all_opened = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            streams = []
            for call in range(CALLS_PER_THREAD):
                with tokenwire.attribute(subscription=f"sub_{index}", thread=str(index)):
                    if call % 2:
                        stream: Any = openai_sync.chat.completions.create(
                            model="m",
                            messages=MESSAGES,
                            stream=True,
                            stream_options={"include_usage": True},
                        )
                    else:
                        stream = anthropic_sync.messages.create(
                            model="c", max_tokens=16, messages=MESSAGES, stream=True
                        )
                streams.append(stream)
            all_opened.wait()
            with tokenwire.attribute(subscription="sub_reader"):
                for stream in streams:
                    for _ in stream:
                        pass
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    records = sink.records
    assert len(records) == THREADS * CALLS_PER_THREAD
    assert Counter(record.subscription for record in records) == Counter(
        {f"sub_{index}": CALLS_PER_THREAD for index in range(THREADS)}
    )
    for record in records:
        assert record.subscription is not None
        assert record.dimensions == {"thread": record.subscription.removeprefix("sub_")}
        assert record.state == "complete"
    assert Counter(record.provider for record in records) == {
        "openai": THREADS * CALLS_PER_THREAD // 2,
        "anthropic": THREADS * CALLS_PER_THREAD // 2,
    }


def test_shared_scope_object_across_threads(sink: RecordingSink) -> None:
    client = openai_client(sink)
    shared = tokenwire.attribute(subscription="sub_shared")
    inside = threading.Barrier(THREADS)
    after_exit: list[tokenwire.Attribution] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with shared:
                # All threads are inside the same scope object at once.
                inside.wait()
                client.chat.completions.create(model="m", messages=MESSAGES)
            after_exit.append(tokenwire.current())
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert [record.subscription for record in sink.records] == ["sub_shared"] * THREADS
    assert after_exit == [tokenwire.Attribution()] * THREADS


def test_wrap_carries_scope_into_pool(sink: RecordingSink) -> None:
    client = openai_client(sink)

    def call(_: int) -> None:
        client.chat.completions.create(model="m", messages=MESSAGES)

    with ThreadPoolExecutor(max_workers=4) as pool:
        with tokenwire.attribute(subscription="sub_wrapped"):
            wrapped = tokenwire.wrap(call)
            unwrapped_futures = [pool.submit(call, index) for index in range(4)]
        # The wrapped function runs in several pool threads at once, after the scope closed.
        list(pool.map(wrapped, range(8)))
        for future in unwrapped_futures:
            future.result()

    subscriptions = Counter(record.subscription for record in sink.records)
    assert subscriptions == {"sub_wrapped": 8, None: 4}


@pytest.mark.anyio
async def test_asyncio_to_thread_carries_scope(sink: RecordingSink) -> None:
    client = openai_client(sink)

    async with tokenwire.attribute(subscription="sub_asyncio_thread"):
        await asyncio.to_thread(client.chat.completions.create, model="m", messages=MESSAGES)

    [record] = sink.records
    assert record.subscription == "sub_asyncio_thread"


def test_decorated_generator_scopes_each_step(sink: RecordingSink) -> None:
    client = openai_client(sink)

    @tokenwire.attribute(subscription="sub_generator", feature="summaries")
    def summaries(count: int) -> Iterator[str | None]:
        for _ in range(count):
            client.chat.completions.create(model="m", messages=MESSAGES)
            yield tokenwire.current().subscription

    seen_by_consumer = []
    seen_by_generator = []
    with tokenwire.attribute(subscription="sub_consumer"):
        for seen in summaries(3):
            seen_by_generator.append(seen)
            seen_by_consumer.append(tokenwire.current().subscription)
            client.chat.completions.create(model="m", messages=MESSAGES)

    assert seen_by_generator == ["sub_generator"] * 3
    assert seen_by_consumer == ["sub_consumer"] * 3
    assert [record.subscription for record in sink.records] == ["sub_generator", "sub_consumer"] * 3
    assert sink.records[0].dimensions == {"feature": "summaries"}


def test_decorated_generator_send_and_close(sink: RecordingSink) -> None:
    closed_under: list[str | None] = []

    @tokenwire.attribute(subscription="sub_echo")
    def echo() -> Generator[tuple[Any, str | None], Any, None]:
        received = None
        try:
            while True:
                received = yield received, tokenwire.current().subscription
        finally:
            closed_under.append(tokenwire.current().subscription)

    generator = echo()
    assert next(generator) == (None, "sub_echo")
    assert generator.send("ping") == ("ping", "sub_echo")
    generator.close()

    assert closed_under == ["sub_echo"]
    assert tokenwire.current() == tokenwire.Attribution()


@pytest.mark.anyio
async def test_decorated_async_generator_scopes_each_step(sink: RecordingSink) -> None:
    openai_client, anthropic_client = _async_clients(sink)

    @tokenwire.attribute(subscription="sub_async_generator")
    async def answers(count: int) -> AsyncIterator[int]:
        for index in range(count):
            await _drain_stream(index, openai_client, anthropic_client)
            yield index

    async with tokenwire.attribute(subscription="sub_consumer"):
        async for index in answers(4):
            assert tokenwire.current().subscription == "sub_consumer"
            await _drain_stream(index, openai_client, anthropic_client)

    assert [record.subscription for record in sink.records] == [
        "sub_async_generator",
        "sub_consumer",
    ] * 4


@pytest.mark.anyio
async def test_decorated_coroutine_function(sink: RecordingSink) -> None:
    openai_client, anthropic_client = _async_clients(sink)

    @tokenwire.attribute(subscription="sub_coroutine")
    async def answer() -> None:
        await _drain_stream(1, openai_client, anthropic_client)

    await asyncio.gather(answer(), answer())

    assert [record.subscription for record in sink.records] == ["sub_coroutine"] * 2


def test_scope_exit_leaves_no_context_state() -> None:
    scopes_before = len(contextvars.copy_context())

    for index in range(100):
        with tokenwire.attribute(subscription=f"sub_{index}"), tokenwire.attribute(feature="f"):
            pass

    # At most the attribution and the open-scope stack are set, whatever the count of scopes.
    assert len(contextvars.copy_context()) <= scopes_before + 2
    assert tokenwire.current() == tokenwire.Attribution()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_decorated_async_generator_aclose() -> None:
    closed_under: list[str | None] = []

    @tokenwire.attribute(subscription="sub_async_echo")
    async def numbers() -> AsyncIterator[tuple[int, str | None]]:
        try:
            for index in range(10):
                yield index, tokenwire.current().subscription
        finally:
            closed_under.append(tokenwire.current().subscription)

    generator = numbers()
    assert await generator.__anext__() == (0, "sub_async_echo")
    assert await generator.__anext__() == (1, "sub_async_echo")
    await generator.aclose()  # type: ignore[attr-defined]

    assert closed_under == ["sub_async_echo"]
    assert tokenwire.current() == tokenwire.Attribution()
