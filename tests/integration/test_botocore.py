"""Real boto3 clients with tokenwire's Bedrock hooks, stubbed at botocore's send step.

Every test runs a real `bedrock-runtime` client (signing, retries, parsing,
event streams); a `before-send` handler returns the scripted HTTP response in
place of the network, and fake credentials come from the environment. Nothing
contacts AWS. The loopback tests at the end use a real urllib3 connection to a
server on 127.0.0.1 instead.
"""

from __future__ import annotations

import functools
import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

import tokenwire
from tokenwire.decoders.body import ResponseDecoder
from tokenwire.decoders.providers.bedrock import ConverseExtractor, InvokeModelExtractor
from tokenwire.testing.bedrock_replay import (
    EVENTSTREAM_CONTENT_TYPE,
    BedrockLoopbackServer,
    RecordedRawResponse,
    Reply,
    chunk_frame,
    event_frame,
    exception_frame,
)
from tokenwire.testing.replay import RecordingSink
from tokenwire.transports import botocore as hooks_module
from tokenwire.usage import UsageRecord

ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"
MODEL = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
ARN_MODEL = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
INVOKE_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
)

# --- Scripted responses ---------------------------------------------------------------

CONVERSE_REPLY = Reply(
    200,
    {"content-type": "application/json", "x-amzn-RequestId": "req-converse"},
    [
        json.dumps(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": 3,
                    "outputTokens": 121,
                    "totalTokens": 2072,
                    "cacheReadInputTokens": 1712,
                    "cacheWriteInputTokens": 236,
                    "cacheReadInputTokenCount": 1712,
                    "cacheWriteInputTokenCount": 236,
                    "cacheDetails": [{"inputTokens": 236, "ttl": "5m"}],
                },
                "metrics": {"latencyMs": 2818},
            }
        ).encode()
    ],
)

CONVERSE_STREAM_FRAMES = [
    event_frame("messageStart", {"role": "assistant"}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
    event_frame("contentBlockStop", {"contentBlockIndex": 0}),
    event_frame("messageStop", {"stopReason": "end_turn"}),
    event_frame(
        "metadata",
        {
            "usage": {"inputTokens": 37, "outputTokens": 8, "totalTokens": 45},
            "metrics": {"latencyMs": 508},
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
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 4,
            "cache_creation_input_tokens": 18131,
            "cache_read_input_tokens": 0,
            "output_tokens": 50,
        },
    }
).encode()
INVOKE_REPLY = Reply(
    200,
    {
        "content-type": "application/json",
        "content-length": str(len(INVOKE_REPLY_BODY)),
        "x-amzn-RequestId": "req-invoke",
        "X-Amzn-Bedrock-Input-Token-Count": "4",
        "X-Amzn-Bedrock-Output-Token-Count": "50",
        "X-Amzn-Bedrock-Cache-Read-Input-Token-Count": "0",
        "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": "18131",
        "X-Amzn-Bedrock-Invocation-Latency": "7275",
    },
    [INVOKE_REPLY_BODY],
)

INVOKE_STREAM_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_02",
            "type": "message",
            "role": "assistant",
            "model": "claude-2.0",
            "usage": {"input_tokens": 14, "output_tokens": 1},
        },
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 10}},
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 14,
            "outputTokenCount": 10,
            "invocationLatency": 1321,
            "firstByteLatency": 439,
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
    [chunk_frame(event) for event in INVOKE_STREAM_EVENTS],
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
    method: str
    api: str
    reply: Reply
    counts: tuple[int | None, ...]
    """input, cached, cache write, output, total."""
    response_id: str
    response_model: str | None
    stream: bool


OPERATIONS = {
    "converse": Operation(
        "converse",
        "converse",
        CONVERSE_REPLY,
        (3, 1712, 236, 121, 2072),
        "req-converse",
        None,
        False,
    ),
    "converse_stream": Operation(
        "converse_stream",
        "converse_stream",
        CONVERSE_STREAM_REPLY,
        (37, None, None, 8, 45),
        "req-converse-stream",
        None,
        True,
    ),
    "invoke_model": Operation(
        "invoke_model",
        "invoke_model",
        INVOKE_REPLY,
        (4, 0, 18131, 50, None),
        "req-invoke",
        "claude-3-5-haiku-20241022",
        False,
    ),
    "invoke_model_with_response_stream": Operation(
        "invoke_model_with_response_stream",
        "invoke_model_with_response_stream",
        INVOKE_STREAM_REPLY,
        (14, None, None, 10, None),
        "req-invoke-stream",
        "claude-2.0",
        True,
    ),
}
STREAM_METHODS = ["converse_stream", "invoke_model_with_response_stream"]
STREAM_MEMBER = {"converse_stream": "stream", "invoke_model_with_response_stream": "body"}


def params_for(method: str, model_id: str = MODEL) -> dict[str, Any]:
    if method.startswith("invoke_model"):
        return {"modelId": model_id, "body": INVOKE_BODY, "contentType": "application/json"}
    return {"modelId": model_id, "messages": MESSAGES}


def counts(record: UsageRecord) -> tuple[int | None, ...]:
    usage = record.usage
    return (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_creation_tokens,
        usage.output_tokens,
        usage.total_tokens,
    )


# --- Clients ------------------------------------------------------------------------------


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


class SendStub:
    """Returns the scripted responses for a client's HTTP attempts at `before-send`."""

    def __init__(self, replies: list[Reply], chunk_bytes: int) -> None:
        self.replies = list(replies)
        self.chunk_bytes = chunk_bytes
        self.urls: list[str] = []

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse:
        self.urls.append(request.url)
        reply = self.replies.pop(0)
        raw = RecordedRawResponse(reply.body, chunk_bytes=self.chunk_bytes)
        return AWSResponse(request.url, reply.status, dict(reply.headers), raw)


def retry_at_once(response: Any, attempts: int, **kwargs: Any) -> int | None:
    """Retry a 429 once with no delay, so the tests never sleep; else let botocore decide."""
    if response is not None and response[0].status_code == 429 and attempts == 1:
        return 0
    return None


def stub_client(client: Any, replies: list[Reply], chunk_bytes: int = 16) -> SendStub:
    stub = SendStub(replies, chunk_bytes)
    client.meta.events.register("before-send.bedrock-runtime", stub)
    client.meta.events.register_first("needs-retry.bedrock-runtime", retry_at_once)
    return stub


@functools.cache
def shared_session() -> boto3.Session:
    """A session for tests that never instrument it; it loads the service model once."""
    return boto3.Session()


def new_client(*replies: Reply, sink: RecordingSink | None = None, **options: Any) -> Any:
    """Return a bedrock-runtime client served by `replies`, metered into `sink` if given."""
    client = shared_session().client("bedrock-runtime", endpoint_url=ENDPOINT)
    if sink is not None:
        tokenwire.instrument_boto3(client, meter=sink, **options)
    stub_client(client, list(replies))
    return client


def call_and_read(client: Any, method: str, model_id: str = MODEL) -> dict[str, Any]:
    """Call `method` and read everything, returning what the caller got."""
    response = dict(getattr(client, method)(**params_for(method, model_id)))
    if method in STREAM_MEMBER:
        response[STREAM_MEMBER[method]] = list(response[STREAM_MEMBER[method]])
    elif method == "invoke_model":
        response["body"] = response["body"].read()
    return response


def faults() -> int:
    return tokenwire.get_meter().statistics().faults


# --- Full reads -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_operation_full_read(method: str, sink: RecordingSink) -> None:
    operation = OPERATIONS[method]
    expected = call_and_read(new_client(operation.reply), method)

    with tokenwire.attribute(subscription="sub_acme", feature="search"):
        result = call_and_read(new_client(operation.reply, sink=sink), method)

    assert result == expected
    (record,) = sink.records
    assert (record.provider, record.api) == ("bedrock", operation.api)
    assert record.state == "complete"
    assert counts(record) == operation.counts
    assert record.request_model == MODEL
    assert record.response_model == operation.response_model
    assert record.response_id == operation.response_id
    assert record.stream is operation.stream
    assert record.http_status == 200
    assert record.subscription == "sub_acme"
    assert record.dimensions == {"feature": "search"}
    assert record.problem is None


def test_converse_cache_split_and_duplicates(sink: RecordingSink) -> None:
    call_and_read(new_client(CONVERSE_REPLY, sink=sink), "converse")

    (record,) = sink.records
    assert record.usage.cache_creation_5m_tokens == 236
    assert record.usage.cache_creation_1h_tokens == 0
    assert record.usage.cached_input_tokens == 1712


@pytest.mark.parametrize(
    "model_id", [ARN_MODEL, "global.anthropic.claude-sonnet-4-5-20250929-v1:0"]
)
@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_model_id_kept_as_given(method: str, model_id: str, sink: RecordingSink) -> None:
    client = new_client(OPERATIONS[method].reply, sink=sink)

    call_and_read(client, method, model_id)

    (record,) = sink.records
    assert record.request_model == model_id


def test_invoke_model_stream_mismatch_kept_raw(sink: RecordingSink) -> None:
    events = [dict(event) for event in INVOKE_STREAM_EVENTS]
    events[2] = {"type": "message_delta", "usage": {"output_tokens": 134}}
    reply = Reply(200, dict(INVOKE_STREAM_REPLY.headers), [chunk_frame(e) for e in events])

    call_and_read(new_client(reply, sink=sink), "invoke_model_with_response_stream")

    (record,) = sink.records
    assert record.usage.output_tokens == 10
    assert record.usage.raw["mismatch"] == {"output_tokens": {"bedrock": 10, "model": 134}}


def test_count_tokens_gets_no_record(sink: RecordingSink) -> None:
    reply = Reply(200, {"content-type": "application/json"}, [b'{"inputTokens": 5}'])
    client = new_client(reply, sink=sink)

    result = client.count_tokens(modelId=MODEL, input={"converse": {"messages": MESSAGES}})

    assert result["inputTokens"] == 5
    assert sink.records == []


# --- Early ends and in-stream exceptions ----------------------------------------------------


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_stream_early_break_then_close(method: str, sink: RecordingSink) -> None:
    response = getattr(new_client(OPERATIONS[method].reply, sink=sink), method)(
        **params_for(method)
    )
    stream = response[STREAM_MEMBER[method]]

    first = next(iter(stream))
    assert sink.records == []
    stream.close()

    assert first
    (record,) = sink.records
    assert record.state == "partial"
    assert record.problem == "closed before end of body"
    if method == "invoke_model_with_response_stream":
        assert record.usage.input_tokens == 14  # from message_start
        assert record.billable is True
    else:
        assert record.usage.has_counts() is False


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_stream_abandoned_is_recorded_on_collection(method: str, sink: RecordingSink) -> None:
    response = getattr(new_client(OPERATIONS[method].reply, sink=sink), method)(
        **params_for(method)
    )
    for _ in response[STREAM_MEMBER[method]]:
        break

    del response
    gc.collect()

    (record,) = sink.records
    assert record.state == "partial"


def test_invoke_model_record_waits_for_body(sink: RecordingSink) -> None:
    response = new_client(INVOKE_REPLY, sink=sink).invoke_model(**params_for("invoke_model"))
    assert sink.records == []

    body = response["body"].read()

    assert body == INVOKE_REPLY_BODY
    (record,) = sink.records
    assert record.state == "complete"
    assert record.response_model == "claude-3-5-haiku-20241022"


def test_invoke_model_body_closed_unread(sink: RecordingSink) -> None:
    response = new_client(INVOKE_REPLY, sink=sink).invoke_model(**params_for("invoke_model"))

    response["body"].close()

    (record,) = sink.records
    assert record.state == "complete"
    assert counts(record) == OPERATIONS["invoke_model"].counts
    assert record.response_model is None


def test_invoke_model_body_read_in_chunks(sink: RecordingSink) -> None:
    response = new_client(INVOKE_REPLY, sink=sink).invoke_model(**params_for("invoke_model"))

    body = b"".join(response["body"].iter_chunks(chunk_size=7))

    assert body == INVOKE_REPLY_BODY
    (record,) = sink.records
    assert record.response_model == "claude-3-5-haiku-20241022"


EXCEPTION_REPLIES = {
    "converse_stream": Reply(
        200,
        dict(CONVERSE_STREAM_REPLY.headers),
        [*CONVERSE_STREAM_FRAMES[:3], exception_frame("modelStreamErrorException", "stopped")],
    ),
    "invoke_model_with_response_stream": Reply(
        200,
        dict(INVOKE_STREAM_REPLY.headers),
        [
            chunk_frame(INVOKE_STREAM_EVENTS[0]),
            chunk_frame(INVOKE_STREAM_EVENTS[1]),
            exception_frame("modelStreamErrorException", "stopped"),
        ],
    ),
}


def read_until_error(client: Any, method: str) -> tuple[list[Any], str]:
    stream = getattr(client, method)(**params_for(method))[STREAM_MEMBER[method]]
    events: list[Any] = []
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        for event in stream:
            events.append(event)
    return events, str(raised.value)


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_in_stream_exception(method: str, sink: RecordingSink) -> None:
    expected = read_until_error(new_client(EXCEPTION_REPLIES[method]), method)

    result = read_until_error(new_client(EXCEPTION_REPLIES[method], sink=sink), method)

    assert result == expected
    (record,) = sink.records
    assert record.state == "partial"
    assert record.problem == "provider error in stream: modelStreamErrorException"
    assert record.http_status == 200


# --- Retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_retried_429_then_200(method: str, sink: RecordingSink) -> None:
    operation = OPERATIONS[method]
    expected = call_and_read(new_client(THROTTLED_REPLY, operation.reply), method)

    client = new_client(THROTTLED_REPLY, operation.reply, sink=sink)
    result = call_and_read(client, method)

    assert result == expected
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    throttled, succeeded = sink.records
    assert (throttled.state, throttled.http_status) == ("error", 429)
    assert throttled.billable is False
    assert throttled.problem == "provider error: ThrottlingException"
    assert throttled.response_id == "req-throttled"
    assert (succeeded.state, succeeded.http_status) == ("complete", 200)
    assert counts(succeeded) == operation.counts
    assert [record for record in sink.records if record.billable] == [succeeded]


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_error_without_retry(method: str, sink: RecordingSink) -> None:
    reply = Reply(
        400,
        {
            "content-type": "application/json",
            "x-amzn-RequestId": "req-400",
            "x-amzn-ErrorType": "ValidationException:http://internal/",
        },
        [b'{"message":"The provided model identifier is invalid."}'],
    )
    client = new_client(reply, sink=sink)

    with pytest.raises(botocore.exceptions.ClientError, match="ValidationException"):
        getattr(client, method)(**params_for(method))

    (record,) = sink.records
    assert (record.state, record.http_status, record.stream) == ("error", 400, False)
    assert record.problem == "provider error: ValidationException"


# --- Faults inside tokenwire ------------------------------------------------------------------


class StageFault(Exception):
    """Raised by a tokenwire stage that the test breaks on purpose."""


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise StageFault("injected fault")


STAGES: dict[str, tuple[Any, str]] = {
    "attribution": (hooks_module.attribution, "resolve"),
    "decoder-init": (ResponseDecoder, "__init__"),
    "decoder-feed": (ResponseDecoder, "feed"),
    "record": (ResponseDecoder, "build_record"),
    "converse-extractor": (ConverseExtractor, "on_message"),
    "invoke-extractor": (InvokeModelExtractor, "on_message"),
    "headers": (InvokeModelExtractor, "on_headers"),
}


class FailingSink(RecordingSink):
    def emit(self, record: UsageRecord) -> None:
        raise StageFault("injected fault")


@pytest.mark.parametrize("stage", [*sorted(STAGES), "emit"])
@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_fault_invisible_to_caller(
    method: str, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    operation = OPERATIONS[method]
    expected = call_and_read(new_client(operation.reply), method)
    sink = RecordingSink()
    if stage == "emit":
        sink = FailingSink()
    else:
        owner, name = STAGES[stage]
        monkeypatch.setattr(owner, name, _raise)
    before = faults()

    result = call_and_read(new_client(operation.reply, sink=sink), method)

    assert result == expected
    if stage in ("attribution", "decoder-init", "decoder-feed", "record", "emit"):
        assert faults() > before


# --- Instrumentation targets ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["boto3-session", "botocore-session"])
def test_session_instrumentation_reaches_new_clients(kind: str, sink: RecordingSink) -> None:
    session: Any = boto3.Session() if kind == "boto3-session" else botocore.session.Session()
    make = session.client if kind == "boto3-session" else session.create_client
    existing = make("bedrock-runtime", endpoint_url=ENDPOINT)
    stub_client(existing, [CONVERSE_REPLY])

    tokenwire.instrument_boto3(session, meter=sink)
    created = make("bedrock-runtime", endpoint_url=ENDPOINT)
    stub_client(created, [CONVERSE_REPLY])
    call_and_read(existing, "converse")
    call_and_read(created, "converse")

    (record,) = sink.records
    assert record.response_id == "req-converse"


def test_instrument_twice_records_once(sink: RecordingSink) -> None:
    client = new_client(CONVERSE_REPLY, sink=sink)
    tokenwire.instrument_boto3(client, meter=sink)
    session = boto3.Session()
    tokenwire.instrument_boto3(session, meter=sink)
    tokenwire.instrument_boto3(session, meter=sink)
    from_session = session.client("bedrock-runtime", endpoint_url=ENDPOINT)
    tokenwire.instrument_boto3(from_session, meter=sink)
    stub_client(from_session, [CONVERSE_REPLY])

    call_and_read(client, "converse")
    call_and_read(from_session, "converse")

    assert len(sink.records) == 2


def test_uninstrument_stops_metering(sink: RecordingSink) -> None:
    client = new_client(CONVERSE_REPLY, CONVERSE_REPLY, sink=sink)

    call_and_read(client, "converse")
    tokenwire.uninstrument_boto3(client)
    call_and_read(client, "converse")

    assert len(sink.records) == 1


def test_attribution_captured_when_request_is_sent(sink: RecordingSink) -> None:
    client = new_client(
        CONVERSE_STREAM_REPLY,
        sink=sink,
        subscription="sub_default",
        dimensions={"team": "core", "feature": "default"},
    )

    with tokenwire.attribute(subscription="sub_sender", feature="chat"):
        response = client.converse_stream(**params_for("converse_stream"))
    with tokenwire.attribute(subscription="sub_reader"):
        list(response["stream"])

    (record,) = sink.records
    assert record.subscription == "sub_sender"
    assert record.dimensions == {"team": "core", "feature": "chat"}


def test_client_default_attribution(sink: RecordingSink) -> None:
    client = new_client(CONVERSE_REPLY, sink=sink, subscription="sub_default")

    call_and_read(client, "converse")

    (record,) = sink.records
    assert record.subscription == "sub_default"


class DisabledSink(RecordingSink):
    @property
    def disabled(self) -> bool:
        return True


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_disabled_meter_records_nothing(method: str) -> None:
    sink = DisabledSink()
    expected = call_and_read(new_client(OPERATIONS[method].reply), method)

    result = call_and_read(new_client(OPERATIONS[method].reply, sink=sink), method)

    assert result == expected
    assert sink.records == []


def test_rejects_client_of_another_service() -> None:
    s3 = boto3.Session().client("s3", region_name="us-east-1")

    with pytest.raises(tokenwire.ConfigurationError, match="'s3' client"):
        tokenwire.instrument_boto3(s3)


def test_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="got str"):
        tokenwire.instrument_boto3("bedrock-runtime")


def test_rejects_aiobotocore_session() -> None:
    aiobotocore_session = pytest.importorskip("aiobotocore.session")

    with pytest.raises(tokenwire.ConfigurationError, match="instrument_aiobotocore"):
        tokenwire.instrument_boto3(aiobotocore_session.get_session())


def test_import_tokenwire_leaves_boto_unimported() -> None:
    code = (
        "import sys, tokenwire; "
        "print(sorted(m for m in ('botocore', 'boto3', 'aiobotocore') if m in sys.modules))"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60)

    assert done.stdout.decode().strip() == "[]"


# --- Real urllib3 connections to a loopback server ---------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[BedrockLoopbackServer]:
    with BedrockLoopbackServer() as running:
        yield running


def loopback_client(server: BedrockLoopbackServer, sink: RecordingSink | None) -> Any:
    client = shared_session().client("bedrock-runtime", endpoint_url=server.endpoint_url)
    client.meta.events.register_first("needs-retry.bedrock-runtime", retry_at_once)
    if sink is not None:
        tokenwire.instrument_boto3(client, meter=sink)
    return client


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_loopback_full_read(
    method: str, server: BedrockLoopbackServer, sink: RecordingSink
) -> None:
    operation = OPERATIONS[method]
    server.enqueue(operation.reply, operation.reply)

    expected = call_and_read(loopback_client(server, None), method)
    result = call_and_read(loopback_client(server, sink), method)

    assert _without_volatile_headers(result) == _without_volatile_headers(expected)
    (record,) = sink.records
    assert record.state == "complete"
    assert counts(record) == operation.counts
    assert record.response_id == operation.response_id


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_loopback_in_stream_exception(
    method: str, server: BedrockLoopbackServer, sink: RecordingSink
) -> None:
    server.enqueue(EXCEPTION_REPLIES[method])

    events, _ = read_until_error(loopback_client(server, sink), method)

    assert len(events) >= 2
    (record,) = sink.records
    assert record.state == "partial"


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_loopback_retry_then_early_close(
    method: str, server: BedrockLoopbackServer, sink: RecordingSink
) -> None:
    server.enqueue(THROTTLED_REPLY, OPERATIONS[method].reply)
    response = getattr(loopback_client(server, sink), method)(**params_for(method))
    stream = response[STREAM_MEMBER[method]]

    next(iter(stream))
    stream.close()

    throttled, cut = sink.records
    assert (throttled.state, throttled.http_status) == ("error", 429)
    assert cut.state == "partial"


def _without_volatile_headers(result: dict[str, Any]) -> dict[str, Any]:
    """Drop the headers a live server changes per response (date, connection)."""
    metadata = dict(result["ResponseMetadata"])
    metadata["HTTPHeaders"] = {
        name: value
        for name, value in metadata["HTTPHeaders"].items()
        if name not in ("date", "server")
    }
    return {**result, "ResponseMetadata": metadata}
