"""Transaction ids: a resend of one record repeats them, two exchanges never share one."""

from __future__ import annotations

import httpx2
import msgspec
import openai

import tokenwire
from tokenwire.delivery.events import EventCodes, plan_delivery
from tokenwire.testing.replay import RecordingSink
from tokenwire.usage import UsageRecord

EMBEDDING_REPLY = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.25, 0.5]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


def _events(record: UsageRecord) -> list[tuple[str, float]]:
    plan = plan_delivery(record, codes=EventCodes(), default_subscription=None, lago_enabled=True)
    return [(event.transaction_id, event.timestamp) for event in plan.events]


def _reply(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json=EMBEDDING_REPLY)


def _embed_twice(sink: RecordingSink) -> list[UsageRecord]:
    client = openai.OpenAI(
        api_key="test",
        http_client=tokenwire.MeteredClient(
            transport=httpx2.MockTransport(_reply),
            meter=sink,
            subscription="sub_acme",
        ),
    )
    for _ in range(2):
        client.embeddings.create(model="text-embedding-3-small", input="same text")
    return sink.records


def test_identical_embeddings_calls_get_distinct_ids(sink: RecordingSink) -> None:
    first, second = _embed_twice(sink)

    assert first.response_id is None
    assert second.response_id is None
    assert first.record_id != second.record_id
    assert first.usage.input_tokens == second.usage.input_tokens == 8
    first_ids = {transaction for transaction, _ in _events(first)}
    second_ids = {transaction for transaction, _ in _events(second)}
    assert first_ids
    assert first_ids.isdisjoint(second_ids)


def test_resent_record_repeats_ids_and_timestamps(sink: RecordingSink) -> None:
    [record, _] = _embed_twice(sink)
    # The record as the ledger stores and reloads it before a resend.
    reloaded = msgspec.json.decode(msgspec.json.encode(record), type=UsageRecord)

    assert _events(reloaded) == _events(record)
    assert _events(record) == _events(record)
