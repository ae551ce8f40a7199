"""A fault in any tokenwire stage leaves the caller's results identical to an unmetered client's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import tokenwire
from tokenwire.decoders.body import ResponseDecoder
from tokenwire.decoders.injection import UsageChunkFilter
from tokenwire.decoders.providers.openai import ChatCompletionsExtractor
from tokenwire.transports import httpx as transport_module

from .test_lifecycle import MESSAGES, handler


class StageFault(Exception):
    """Raised by a tokenwire stage that the test breaks on purpose."""


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise StageFault("injected fault")


STAGES = {
    "router": (transport_module, "route_request"),
    "attribution": (transport_module.attribution, "resolve"),
    "decoder-init": (ResponseDecoder, "__init__"),
    "decoder-feed": (ResponseDecoder, "_consume"),
    "extractor": (ChatCompletionsExtractor, "on_json"),
    "extractor-stream": (ChatCompletionsExtractor, "on_event"),
    "usage-filter": (UsageChunkFilter, "feed"),
    "ring": (tokenwire.Meter, "emit"),
}


def _calls(client: openai.OpenAI) -> list[Any]:
    completion = client.chat.completions.create(model="m", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    return [completion.model_dump(), [chunk.model_dump() for chunk in chunks]]


def _unmetered() -> openai.OpenAI:
    return openai.OpenAI(
        api_key="test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler())),
        max_retries=0,
    )


@pytest.mark.parametrize("stage", sorted(set(STAGES) - {"usage-filter"}))
def test_stage_fault_invisible_to_caller(
    stage: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    meter = tokenwire.Meter(ledger=tmp_path / "ledger.sqlite3")
    expected = _calls(_unmetered())
    target, name = STAGES[stage]
    monkeypatch.setattr(target, name, _raise)

    actual = _calls(
        openai.OpenAI(
            api_key="test",
            http_client=tokenwire.MeteredClient(
                transport=httpx2.MockTransport(handler()), meter=meter
            ),
            max_retries=0,
        )
    )
    meter.shutdown(timeout_s=5)

    assert actual == expected


def test_usage_filter_fault_only_reveals_usage_chunk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    completion_plain, chunks_plain = _calls(_unmetered())
    monkeypatch.setattr(UsageChunkFilter, "feed", _raise)
    meter = tokenwire.Meter(ledger=tmp_path / "ledger.sqlite3")
    metered = openai.OpenAI(
        api_key="test",
        http_client=tokenwire.MeteredClient(transport=httpx2.MockTransport(handler()), meter=meter),
        max_retries=0,
    )

    completion_metered, chunks_metered = _calls(metered)
    meter.shutdown(timeout_s=5)

    # The filter failed open: the chunk that tokenwire's flag caused reaches
    # the caller, and nothing else differs.
    assert completion_metered == completion_plain
    assert chunks_metered[:-1] == chunks_plain
    assert chunks_metered[-1]["choices"] == []
    assert chunks_metered[-1]["usage"] is not None


def test_metered_equals_unmetered_without_faults(tmp_path: Path) -> None:
    plain = _unmetered()
    meter = tokenwire.Meter(ledger=tmp_path / "ledger.sqlite3")
    metered = openai.OpenAI(
        api_key="test",
        http_client=tokenwire.MeteredClient(transport=httpx2.MockTransport(handler()), meter=meter),
        max_retries=0,
    )

    completion_plain, chunks_plain = _calls(plain)
    completion_metered, chunks_metered = _calls(metered)
    result = meter.shutdown(timeout_s=5)

    assert completion_metered == completion_plain
    assert chunks_metered == chunks_plain
    assert result.written == 2
