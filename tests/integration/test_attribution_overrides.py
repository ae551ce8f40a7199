"""Per-request override headers, their removal before sending, and the unattributed policy."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import tokenwire
from tokenwire import attribution
from tokenwire.meter import _faults
from tokenwire.testing.replay import RecordingSink

from .test_sdk_mock import MESSAGES, make_handler

OVERRIDE_HEADERS = ("x-tokenwire-subscription", "x-tokenwire-dimensions")


class SeenRequests:
    """A MockTransport handler that keeps every request the inner transport received."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self._respond = make_handler()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.method == "GET":
            return httpx2.Response(200, json={"object": "list", "data": []})
        response: httpx2.Response = self._respond(request)
        return response

    def override_headers_seen(self) -> list[str]:
        return [
            name
            for request in self.requests
            for name in OVERRIDE_HEADERS
            if name in request.headers
        ]


class DisabledSink(RecordingSink):
    @property
    def disabled(self) -> bool:
        return True


def _http_client(seen: SeenRequests, sink: RecordingSink, **options: Any) -> Any:
    return tokenwire.MeteredClient(transport=httpx2.MockTransport(seen), meter=sink, **options)


def _openai(seen: SeenRequests, sink: RecordingSink, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="test", http_client=_http_client(seen, sink, **options), max_retries=0
    )


def _anthropic(seen: SeenRequests, sink: RecordingSink) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test", http_client=_http_client(seen, sink), max_retries=0)


def _override(subscription: str, **dimensions: str) -> dict[str, str]:
    return {
        "X-Tokenwire-Subscription": subscription,
        "X-Tokenwire-Dimensions": json.dumps(dimensions),
    }


@pytest.fixture(autouse=True)
def _policy_from_clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TOKENWIRE_UNATTRIBUTED", raising=False)
    monkeypatch.delenv("TOKENWIRE_DEFAULT_SUBSCRIPTION", raising=False)
    attribution._reset_policy()
    yield
    attribution._reset_policy()


def _openai_json(client: Any, headers: dict[str, str]) -> None:
    client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)


def _openai_stream_injected(client: Any, headers: dict[str, str]) -> None:
    # No include_usage: tokenwire rewrites the body, the other copy of the request.
    for _ in client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, extra_headers=headers
    ):
        pass


def _openai_stream(client: Any, headers: dict[str, str]) -> None:
    for _ in client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    ):
        pass


def _anthropic_json(client: Any, headers: dict[str, str]) -> None:
    client.messages.create(model="c", max_tokens=8, messages=MESSAGES, extra_headers=headers)


def _anthropic_stream(client: Any, headers: dict[str, str]) -> None:
    with client.messages.stream(
        model="c", max_tokens=8, messages=MESSAGES, extra_headers=headers
    ) as stream:
        for _ in stream:
            pass


CALLS = [
    pytest.param("openai", _openai_json, id="openai-json"),
    pytest.param("openai", _openai_stream, id="openai-stream"),
    pytest.param("openai", _openai_stream_injected, id="openai-stream-injected"),
    pytest.param("anthropic", _anthropic_json, id="anthropic-json"),
    pytest.param("anthropic", _anthropic_stream, id="anthropic-stream"),
]


@pytest.mark.parametrize(("sdk", "call"), CALLS)
def test_override_headers_attribute_and_are_stripped(
    sink: RecordingSink, sdk: str, call: Callable[[Any, dict[str, str]], None]
) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink) if sdk == "openai" else _anthropic(seen, sink)

    call(client, _override("sub_header", feature="chat"))

    [request] = seen.requests
    assert seen.override_headers_seen() == []
    assert "authorization" in request.headers or "x-api-key" in request.headers
    [record] = sink.records
    assert record.subscription == "sub_header"
    assert record.dimensions == {"feature": "chat"}


def test_override_beats_scope_and_client_default(sink: RecordingSink) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink, subscription="sub_default", dimensions={"team": "core"})

    with tokenwire.attribute(subscription="sub_scope", feature="search", region="us"):
        _openai_json(client, _override("sub_header", feature="chat"))
        _openai_json(client, {"X-Tokenwire-Dimensions": '{"region": "eu"}'})
        _openai_json(client, {})
    _openai_json(client, {})

    assert [(record.subscription, record.dimensions) for record in sink.records] == [
        ("sub_header", {"team": "core", "feature": "chat", "region": "us"}),
        ("sub_scope", {"team": "core", "feature": "search", "region": "eu"}),
        ("sub_scope", {"team": "core", "feature": "search", "region": "us"}),
        ("sub_default", {"team": "core"}),
    ]


def test_override_headers_stripped_from_unmetered_request(sink: RecordingSink) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink)

    client.models.list(extra_headers=_override("sub_header"))

    assert len(seen.requests) == 1
    assert seen.override_headers_seen() == []
    assert sink.records == []


def test_override_headers_stripped_when_disabled() -> None:
    seen = SeenRequests()
    client = _openai(seen, DisabledSink())

    _openai_json(client, _override("sub_header"))

    assert len(seen.requests) == 1
    assert seen.override_headers_seen() == []


def test_stripped_request_keeps_body_and_extensions(sink: RecordingSink) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink)

    _openai_json(client, {})
    _openai_json(client, _override("sub_header"))

    plain, stripped = seen.requests
    assert stripped.content == plain.content
    assert stripped.extensions == plain.extensions
    assert "timeout" in stripped.extensions
    assert dict(stripped.headers) == dict(plain.headers)


def test_caller_request_object_not_modified(sink: RecordingSink) -> None:
    seen = SeenRequests()
    transport = tokenwire.MeteredTransport(httpx2.MockTransport(seen), meter=sink)
    request = httpx2.Request(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers=_override("sub_header"),
    )

    response = transport.handle_request(request)
    response.read()

    assert request.headers["x-tokenwire-subscription"] == "sub_header"
    assert seen.override_headers_seen() == []
    assert [record.subscription for record in sink.records] == ["sub_header"]


INVALID_HEADERS = [
    pytest.param({"X-Tokenwire-Subscription": "  "}, id="blank-subscription"),
    pytest.param({"X-Tokenwire-Dimensions": "feature=chat"}, id="dimensions-not-json"),
    pytest.param({"X-Tokenwire-Dimensions": '["chat"]'}, id="dimensions-not-object"),
    pytest.param({"X-Tokenwire-Dimensions": '{"tier": 3}'}, id="dimension-not-string"),
    pytest.param(
        {"X-Tokenwire-Dimensions": json.dumps({"note": "x" * 9000})}, id="dimensions-too-long"
    ),
]


@pytest.mark.parametrize("headers", INVALID_HEADERS)
def test_invalid_override_header_ignored(sink: RecordingSink, headers: dict[str, str]) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink)
    faults_before = _faults.by_stage.get("attribution-header", 0)

    with tokenwire.attribute(subscription="sub_scope", feature="search"):
        _openai_json(client, headers)

    assert seen.override_headers_seen() == []
    [record] = sink.records
    assert record.subscription == "sub_scope"
    assert record.dimensions == {"feature": "search"}
    assert _faults.by_stage.get("attribution-header", 0) == faults_before + 1


def test_invalid_dimensions_keep_valid_subscription(sink: RecordingSink) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink)

    _openai_json(client, {"X-Tokenwire-Subscription": "sub_header", "X-Tokenwire-Dimensions": "{"})

    [record] = sink.records
    assert (record.subscription, record.dimensions) == ("sub_header", {})


# --- Unattributed policy --------------------------------------------------------------


def test_unattributed_kept_local_by_default(sink: RecordingSink) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink)

    _openai_json(client, {})

    assert tokenwire.configure_attribution() == "keep_local"
    [record] = sink.records
    assert record.subscription is None


def test_default_subscription_policy_from_environment(
    sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENWIRE_UNATTRIBUTED", "default_subscription")
    monkeypatch.setenv("TOKENWIRE_DEFAULT_SUBSCRIPTION", "sub_fallback")
    seen = SeenRequests()
    client = _openai(seen, sink)

    _openai_json(client, {})
    with tokenwire.attribute(subscription="sub_scope", feature="x"):
        _openai_json(client, {})
    _openai_json(client, {"X-Tokenwire-Dimensions": '{"feature": "y"}'})

    assert [(record.subscription, record.dimensions) for record in sink.records] == [
        ("sub_fallback", {}),
        ("sub_scope", {"feature": "x"}),
        ("sub_fallback", {"feature": "y"}),
    ]


def test_default_subscription_policy_needs_subscription() -> None:
    with pytest.raises(tokenwire.ConfigurationError, match="TOKENWIRE_DEFAULT_SUBSCRIPTION"):
        tokenwire.configure_attribution(unattributed="default_subscription")


def test_default_subscription_argument_accepted(sink: RecordingSink) -> None:
    seen = SeenRequests()
    client = _openai(seen, sink)

    tokenwire.configure_attribution(
        unattributed="default_subscription", default_subscription="sub_configured"
    )
    _openai_json(client, {})

    assert [record.subscription for record in sink.records] == ["sub_configured"]


@pytest.mark.parametrize(
    "value", [pytest.param("drop", id="unknown"), pytest.param("", id="empty")]
)
def test_unknown_policy_rejected(value: str) -> None:
    with pytest.raises(tokenwire.ConfigurationError, match="keep_local, default_subscription"):
        tokenwire.configure_attribution(unattributed=value)  # type: ignore[arg-type]


def test_invalid_policy_environment_keeps_local(
    sink: RecordingSink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TOKENWIRE_UNATTRIBUTED", "default_subscription")
    seen = SeenRequests()
    client = _openai(seen, sink)

    with caplog.at_level(logging.ERROR, logger="tokenwire.attribution"):
        _openai_json(client, {})

    [record] = sink.records
    assert record.subscription is None
    assert "TOKENWIRE_DEFAULT_SUBSCRIPTION" in caplog.text
    assert tokenwire.attribution.unattributed_policy() == "keep_local"


def test_invalid_policy_environment_raises_at_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWIRE_UNATTRIBUTED", "sometimes")

    with pytest.raises(tokenwire.ConfigurationError, match="TOKENWIRE_UNATTRIBUTED"):
        tokenwire.configure_attribution()


@pytest.mark.parametrize(
    "sdk", [pytest.param("openai", id="openai"), pytest.param("anthropic", id="anthropic")]
)
def test_raise_policy_stops_request_before_sending(sink: RecordingSink, sdk: str) -> None:
    tokenwire.configure_attribution(unattributed="raise")
    seen = SeenRequests()
    client = _openai(seen, sink) if sdk == "openai" else _anthropic(seen, sink)
    call = _openai_json if sdk == "openai" else _anthropic_json

    with pytest.raises(tokenwire.UnattributedError, match="no subscription"):
        try:
            call(client, {})
        except Exception:  # an application's catch-all handler does not swallow it
            pytest.fail("UnattributedError was caught as an Exception")

    assert seen.requests == []
    assert sink.records == []


def test_raise_policy_accepts_any_attribution(sink: RecordingSink) -> None:
    tokenwire.configure_attribution(unattributed="raise")
    seen = SeenRequests()
    client = _openai(seen, sink)
    defaulted = _openai(seen, sink, subscription="sub_default")

    with tokenwire.attribute(subscription="sub_scope"):
        _openai_json(client, {})
    _openai_json(client, _override("sub_header"))
    _openai_json(defaulted, {})
    client.models.list()  # not an LLM call: never checked

    assert [record.subscription for record in sink.records] == [
        "sub_scope",
        "sub_header",
        "sub_default",
    ]
    assert len(seen.requests) == 4


def test_raise_policy_from_environment(
    sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENWIRE_UNATTRIBUTED", "RAISE")
    seen = SeenRequests()
    client = _openai(seen, sink)

    with pytest.raises(tokenwire.UnattributedError):
        _openai_json(client, {})
    assert seen.requests == []


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.usefixtures("fake_aws_credentials")
def test_raise_policy_stops_bedrock_call(sink: RecordingSink) -> None:
    from .test_botocore import CONVERSE_REPLY, ENDPOINT, MODEL, shared_session, stub_client
    from .test_botocore import MESSAGES as BEDROCK_MESSAGES

    tokenwire.configure_attribution(unattributed="raise")
    client = shared_session().client("bedrock-runtime", endpoint_url=ENDPOINT)
    tokenwire.instrument_boto3(client, meter=sink)
    stub = stub_client(client, [CONVERSE_REPLY])

    with pytest.raises(tokenwire.UnattributedError):
        client.converse(modelId=MODEL, messages=BEDROCK_MESSAGES)
    assert stub.urls == []

    with tokenwire.attribute(subscription="sub_bedrock"):
        client.converse(modelId=MODEL, messages=BEDROCK_MESSAGES)
    assert len(stub.urls) == 1
    assert [record.subscription for record in sink.records] == ["sub_bedrock"]
