"""Bedrock ConverseStream through a real botocore client, metered against unmetered.

Each client serves its HTTP attempt from a `before-send` handler with a raw
response whose `stream()` yields one event-stream frame per read, as a network
delivers them. botocore signs the request, parses every frame and builds every
event on both sides; the metered client also has tokenwire's handlers
(`instrument_boto3`) and a real `Meter` on a temporary ledger.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from typing import Any

from ..core import Scenario, ScenarioSkipped, Settings, temporary_meter
from ..measure import interleave, summarize_pairs
from ..payloads import REQUEST_MESSAGES, converse_stream_frames

__all__ = ["SCENARIOS"]

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
_FAKE_CREDENTIAL = "tokenwire-bench"


class FramedRaw:
    """The urllib3 response botocore reads, serving pre-built frames one per `stream()` read."""

    def __init__(self, frames: Sequence[bytes]) -> None:
        self._frames = frames
        self.closed = False

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        yield from self._frames

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        return b"".join(self._frames)

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        """Nothing to release: there is no connection."""


def _client(frames: Sequence[bytes]) -> Any:
    import botocore.config
    import botocore.session
    from botocore.awsrequest import AWSResponse

    session = botocore.session.Session()
    client = session.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id=_FAKE_CREDENTIAL,
        aws_secret_access_key=_FAKE_CREDENTIAL,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    headers = {
        "content-type": "application/vnd.amazon.eventstream",
        "x-amzn-requestid": "4b7c1f0e-6d2a-4e3b-9a51-0c8e2f6d7a19",
    }

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, headers, FramedRaw(frames))

    client.meta.events.register("before-send.bedrock-runtime", answer)
    return client


_MESSAGES = [{"role": "user", "content": [{"text": REQUEST_MESSAGES[1]["content"]}]}]


def _converse_stream(client: Any) -> None:
    response = client.converse_stream(modelId=MODEL_ID, messages=_MESSAGES)
    stream = response["stream"]
    try:
        for _ in stream:
            pass
    finally:
        stream.close()


def run_converse_stream(settings: Settings) -> dict[str, Any]:
    if importlib.util.find_spec("tokenwire.transports.botocore") is None:
        raise ScenarioSkipped("tokenwire.transports.botocore does not exist yet")
    from tokenwire.testing import RecordingSink
    from tokenwire.transports.botocore import instrument_boto3

    frames = converse_stream_frames(settings.stream_events)
    check = _client(frames)
    sink = RecordingSink()
    instrument_boto3(check, meter=sink)
    _converse_stream(check)
    records = sink.take()
    if len(records) != 1 or records[0].state != "complete":
        states = [record.state for record in records]
        raise RuntimeError(
            f"one metered ConverseStream produced records {states}, expected one complete record"
        )

    raw_client = _client(frames)
    metered_client = _client(frames)
    with temporary_meter() as meter:
        instrument_boto3(metered_client, meter=meter)
        timing = interleave(
            lambda: _converse_stream(raw_client),
            lambda: _converse_stream(metered_client),
            rounds=settings.paired_rounds,
            calls=settings.scaled(4, 1),
            warmup_calls=settings.warmup_calls,
        )
        meter.flush(deliver=False)
        written = meter.statistics().written
    result = summarize_pairs(timing, chunks_per_call=len(frames))
    result["records"] = written
    result["body_bytes"] = sum(map(len, frames))
    return result


SCENARIOS = [
    Scenario(
        "bedrock-converse-stream-500",
        "overhead",
        "botocore, ConverseStream of 500 event-stream frames, read to the end",
        run_converse_stream,
    ),
]
