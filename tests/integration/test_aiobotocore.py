"""Real aiobotocore clients with tokenwire's Bedrock hooks, over a loopback HTTP server.

The clients use aiohttp against `BedrockLoopbackServer` on 127.0.0.1 with fake
credentials from the environment, so the body tee wraps a real
`aiohttp.ClientResponse`. Nothing contacts AWS.
"""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

aiobotocore_session = pytest.importorskip("aiobotocore.session")

import botocore.exceptions  # noqa: E402
import botocore.session  # noqa: E402

import tokenwire  # noqa: E402
from tokenwire.decoders.body import ResponseDecoder  # noqa: E402
from tokenwire.decoders.providers.bedrock import InvokeModelExtractor  # noqa: E402
from tokenwire.testing.bedrock_replay import (  # noqa: E402
    EVENTSTREAM_CONTENT_TYPE,
    BedrockLoopbackServer,
    Reply,
    chunk_frame,
    event_frame,
    exception_frame,
)
from tokenwire.testing.replay import RecordingSink  # noqa: E402
from tokenwire.transports import botocore as hooks_module  # noqa: E402
from tokenwire.transports.aiobotocore import uninstrument_aiobotocore  # noqa: E402
from tokenwire.usage import UsageRecord  # noqa: E402

pytestmark = pytest.mark.anyio

MODEL = "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
INVOKE_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
)

CONVERSE_REPLY = Reply(
    200,
    {"content-type": "application/json", "x-amzn-RequestId": "req-converse"},
    [
        json.dumps(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "5"}]}},
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": 10,
                    "outputTokens": 2,
                    "totalTokens": 1310,
                    "cacheReadInputTokens": 0,
                    "cacheWriteInputTokens": 1298,
                },
                "metrics": {"latencyMs": 797},
            }
        ).encode()
    ],
)
CONVERSE_STREAM_FRAMES = [
    event_frame("messageStart", {"role": "assistant"}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    event_frame("contentBlockStop", {"contentBlockIndex": 0}),
    event_frame("messageStop", {"stopReason": "end_turn"}),
    event_frame(
        "metadata",
        {
            "usage": {"inputTokens": 13, "outputTokens": 82, "totalTokens": 95},
            "metrics": {"latencyMs": 522},
        },
    ),
]
CONVERSE_STREAM_REPLY = Reply(
    200,
    {"content-type": EVENTSTREAM_CONTENT_TYPE, "x-amzn-RequestId": "req-converse-stream"},
    CONVERSE_STREAM_FRAMES,
)
INVOKE_REPLY_BODY = json.dumps(
    {
        "id": "msg_bdrk_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": {
            "input_tokens": 3,
            "cache_read_input_tokens": 9511,
            "cache_creation_input_tokens": 1956,
            "output_tokens": 44,
        },
    }
).encode()
INVOKE_REPLY = Reply(
    200,
    {
        "content-type": "application/json",
        "x-amzn-RequestId": "req-invoke",
        "x-amzn-bedrock-input-token-count": "3",
        "x-amzn-bedrock-output-token-count": "44",
        "x-amzn-bedrock-cache-read-input-token-count": "9511",
        "x-amzn-bedrock-cache-write-input-token-count": "1956",
    },
    [INVOKE_REPLY_BODY[:40], INVOKE_REPLY_BODY[40:]],
)
NOVA_STREAM_EVENTS: list[dict[str, Any]] = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Hello"}, "contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
    {
        "metadata": {"usage": {"inputTokens": 12, "outputTokens": 13}},
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 12,
            "outputTokenCount": 13,
            "invocationLatency": 244,
            "firstByteLatency": 127,
        },
    },
]
INVOKE_STREAM_REPLY = Reply(
    200,
    {
        "content-type": EVENTSTREAM_CONTENT_TYPE,
        "x-amzn-RequestId": "req-invoke-stream",
        "X-Amzn-Bedrock-Content-Type": "application/json",
    },
    [chunk_frame(event) for event in NOVA_STREAM_EVENTS],
)
THROTTLED_REPLY = Reply(
    429,
    {
        "content-type": "application/json",
        "x-amzn-RequestId": "req-throttled",
        "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
    },
    [b'{"message":"Too many requests, please wait before trying again."}'],
)


@dataclass(frozen=True)
class Operation:
    reply: Reply
    counts: tuple[int | None, ...]
    """input, cached, cache write, output, total."""
    response_id: str
    response_model: str | None


OPERATIONS = {
    "converse": Operation(CONVERSE_REPLY, (10, 0, 1298, 2, 1310), "req-converse", None),
    "converse_stream": Operation(
        CONVERSE_STREAM_REPLY, (13, None, None, 82, 95), "req-converse-stream", None
    ),
    "invoke_model": Operation(
        INVOKE_REPLY, (3, 9511, 1956, 44, None), "req-invoke", "claude-haiku-4-5-20251001"
    ),
    "invoke_model_with_response_stream": Operation(
        INVOKE_STREAM_REPLY, (12, None, None, 13, None), "req-invoke-stream", None
    ),
}
STREAM_MEMBER = {"converse_stream": "stream", "invoke_model_with_response_stream": "body"}
EXCEPTION_REPLIES = {
    "converse_stream": Reply(
        200,
        dict(CONVERSE_STREAM_REPLY.headers),
        [*CONVERSE_STREAM_FRAMES[:2], exception_frame("throttlingException", "slow down")],
    ),
    "invoke_model_with_response_stream": Reply(
        200,
        dict(INVOKE_STREAM_REPLY.headers),
        [
            chunk_frame(NOVA_STREAM_EVENTS[0]),
            exception_frame("modelStreamErrorException", "stopped"),
        ],
    ),
}


def params_for(method: str) -> dict[str, Any]:
    if method.startswith("invoke_model"):
        return {"modelId": MODEL, "body": INVOKE_BODY}
    return {"modelId": MODEL, "messages": MESSAGES}


def counts(record: UsageRecord) -> tuple[int | None, ...]:
    usage = record.usage
    return (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_creation_tokens,
        usage.output_tokens,
        usage.total_tokens,
    )


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[BedrockLoopbackServer]:
    with BedrockLoopbackServer() as running:
        yield running


def retry_at_once(response: Any, attempts: int, **kwargs: Any) -> int | None:
    """Retry a 429 once with no delay, so the tests never sleep; else let aiobotocore decide."""
    if response is not None and response[0].status_code == 429 and attempts == 1:
        return 0
    return None


@functools.cache
def shared_session() -> Any:
    """A session for tests that never instrument it; it loads the service model once."""
    return aiobotocore_session.get_session()


class Clients:
    """Creates aiobotocore clients for the loopback server and closes them at the end."""

    def __init__(self, server: BedrockLoopbackServer) -> None:
        self._server = server
        self._contexts: list[Any] = []

    async def new(
        self,
        *,
        sink: RecordingSink | None = None,
        session: Any = None,
        instrument: bool = True,
        **options: Any,
    ) -> Any:
        session = session or shared_session()
        context = session.create_client("bedrock-runtime", endpoint_url=self._server.endpoint_url)
        client = await context.__aenter__()
        self._contexts.append(context)
        client.meta.events.register_first("needs-retry.bedrock-runtime", retry_at_once)
        if sink is not None and instrument:
            tokenwire.instrument_aiobotocore(client, meter=sink, **options)
        return client

    async def close(self) -> None:
        for context in reversed(self._contexts):
            await context.__aexit__(None, None, None)


@pytest.fixture
async def clients(server: BedrockLoopbackServer) -> AsyncIterator[Clients]:
    created = Clients(server)
    try:
        yield created
    finally:
        await created.close()


async def call_and_read(client: Any, method: str) -> dict[str, Any]:
    """Call `method` and read everything, returning what the caller got."""
    response = dict(await getattr(client, method)(**params_for(method)))
    if method in STREAM_MEMBER:
        response[STREAM_MEMBER[method]] = [event async for event in response[STREAM_MEMBER[method]]]
    elif method == "invoke_model":
        async with response["body"] as body:
            response["body"] = await body.read()
    metadata = dict(response["ResponseMetadata"])
    metadata["HTTPHeaders"] = {
        name: value
        for name, value in metadata["HTTPHeaders"].items()
        if name not in ("date", "server")
    }
    response["ResponseMetadata"] = metadata
    return response


@pytest.mark.parametrize("method", sorted(OPERATIONS))
async def test_operation_full_read(
    method: str, server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    operation = OPERATIONS[method]
    server.enqueue(operation.reply, operation.reply)
    expected = await call_and_read(await clients.new(), method)

    async with tokenwire.attribute(subscription="sub_async"):
        result = await call_and_read(await clients.new(sink=sink), method)

    assert result == expected
    (record,) = sink.records
    assert record.state == "complete"
    assert counts(record) == operation.counts
    assert record.request_model == MODEL
    assert record.response_id == operation.response_id
    assert record.response_model == operation.response_model
    assert record.subscription == "sub_async"


@pytest.mark.parametrize("method", sorted(STREAM_MEMBER))
async def test_stream_early_break_then_close(
    method: str, server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    server.enqueue(OPERATIONS[method].reply)
    response = await getattr(await clients.new(sink=sink), method)(**params_for(method))
    stream = response[STREAM_MEMBER[method]]

    async for _ in stream:
        break
    assert sink.records == []
    stream.close()

    (record,) = sink.records
    assert record.state == "partial"
    assert record.problem == "closed before end of body"


async def test_stream_abandoned_is_recorded_on_collection(
    server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    method = "converse_stream"
    server.enqueue(OPERATIONS[method].reply)
    response = await getattr(await clients.new(sink=sink), method)(**params_for(method))
    events = aiter(response["stream"])
    await anext(events)

    await events.aclose()  # type: ignore[attr-defined]
    del response, events
    gc.collect()

    (record,) = sink.records
    assert record.state == "partial"


async def test_invoke_model_body_closed_unread(
    server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    server.enqueue(INVOKE_REPLY)
    response = await (await clients.new(sink=sink)).invoke_model(**params_for("invoke_model"))

    response["body"].close()

    (record,) = sink.records
    assert record.state == "complete"
    assert counts(record) == OPERATIONS["invoke_model"].counts


async def read_until_error(client: Any, method: str) -> tuple[list[Any], str]:
    stream = (await getattr(client, method)(**params_for(method)))[STREAM_MEMBER[method]]
    events: list[Any] = []
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        async for event in stream:
            events.append(event)
    return events, str(raised.value)


@pytest.mark.parametrize("method", sorted(STREAM_MEMBER))
async def test_in_stream_exception(
    method: str, server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    server.enqueue(EXCEPTION_REPLIES[method], EXCEPTION_REPLIES[method])
    expected = await read_until_error(await clients.new(), method)

    result = await read_until_error(await clients.new(sink=sink), method)

    assert result == expected
    (record,) = sink.records
    assert record.state == "partial"
    assert record.problem is not None
    assert record.problem.startswith("provider error in stream: ")


@pytest.mark.parametrize("method", sorted(OPERATIONS))
async def test_retried_429_then_200(
    method: str, server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    operation = OPERATIONS[method]
    server.enqueue(THROTTLED_REPLY, operation.reply, THROTTLED_REPLY, operation.reply)
    expected = await call_and_read(await clients.new(), method)

    result = await call_and_read(await clients.new(sink=sink), method)

    assert result == expected
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    throttled, succeeded = sink.records
    assert (throttled.state, throttled.http_status, throttled.billable) == ("error", 429, False)
    assert (succeeded.state, succeeded.http_status) == ("complete", 200)
    assert counts(succeeded) == operation.counts


class StageFault(Exception):
    """Raised by a tokenwire stage that the test breaks on purpose."""


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise StageFault("injected fault")


STAGES: dict[str, tuple[Any, str]] = {
    "attribution": (hooks_module.attribution, "resolve"),
    "decoder-init": (ResponseDecoder, "__init__"),
    "decoder-feed": (ResponseDecoder, "feed"),
    "record": (ResponseDecoder, "build_record"),
    "extractor": (InvokeModelExtractor, "on_message"),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("method", sorted(OPERATIONS))
async def test_fault_invisible_to_caller(
    method: str,
    stage: str,
    server: BedrockLoopbackServer,
    clients: Clients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operation = OPERATIONS[method]
    server.enqueue(operation.reply, operation.reply)
    expected = await call_and_read(await clients.new(), method)
    owner, name = STAGES[stage]
    monkeypatch.setattr(owner, name, _raise)

    result = await call_and_read(await clients.new(sink=RecordingSink()), method)

    assert result == expected


async def test_session_instrumentation_reaches_new_clients(
    server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    session = aiobotocore_session.get_session()
    existing = await clients.new(session=session)
    tokenwire.instrument_aiobotocore(session, meter=sink)
    tokenwire.instrument_aiobotocore(session, meter=sink)
    created = await clients.new(session=session)
    server.enqueue(CONVERSE_REPLY, CONVERSE_REPLY)

    await call_and_read(existing, "converse")
    await call_and_read(created, "converse")

    (record,) = sink.records
    assert record.response_id == "req-converse"


async def test_uninstrument_stops_metering(
    server: BedrockLoopbackServer, clients: Clients, sink: RecordingSink
) -> None:
    client = await clients.new(sink=sink)
    server.enqueue(CONVERSE_REPLY, CONVERSE_REPLY)

    await call_and_read(client, "converse")
    uninstrument_aiobotocore(client)
    await call_and_read(client, "converse")

    assert len(sink.records) == 1


def test_rejects_botocore_session() -> None:
    with pytest.raises(tokenwire.ConfigurationError, match="instrument_boto3"):
        tokenwire.instrument_aiobotocore(botocore.session.Session())
