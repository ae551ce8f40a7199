"""OpenAI audio and image endpoints: token usage, duration usage, bodies without usage, streams."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.providers.openai_media import media_usage
from tokenwire.decoders.routing import route_request

from .wire import THREE_WAYS, chunked, decode, route, split_at

TRANSCRIPTIONS = "https://api.openai.com/v1/audio/transcriptions"
SPEECH = "https://api.openai.com/v1/audio/speech"
GENERATIONS = "https://api.openai.com/v1/images/generations"
EDITS = "https://api.openai.com/v1/images/edits"

TRANSCRIPTION_TOKENS = {
    "type": "tokens",
    "input_tokens": 14,
    "input_token_details": {"text_tokens": 2, "audio_tokens": 12},
    "output_tokens": 45,
    "total_tokens": 59,
}
TRANSCRIPTION_DURATION = {"type": "duration", "seconds": 9.5}
IMAGE_USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
    "output_tokens": 4160,
    "output_tokens_details": {"image_tokens": 4096, "text_tokens": 64},
    "total_tokens": 4210,
}
PIXEL = base64.b64encode(b"\x89PNG fake image bytes" * 40).decode()

TRANSCRIPTION_SSE = (
    b'data: {"type":"transcript.text.delta","delta":"I"}\n\n'
    b'data: {"type":"transcript.text.delta","delta":" see."}\n\n'
    b"data: "
    + json.dumps(
        {"type": "transcript.text.done", "text": "I see.", "usage": TRANSCRIPTION_TOKENS}
    ).encode()
    + b"\n\n"
)
SPEECH_SSE = (
    b"data: " + json.dumps({"type": "speech.audio.delta", "audio": PIXEL}).encode() + b"\n\n"
    b'data: {"type":"speech.audio.done","usage":{"input_tokens":14,"output_tokens":101,'
    b'"total_tokens":115}}\n\n'
)
IMAGE_SSE = (
    b"event: image_generation.partial_image\ndata: "
    + json.dumps(
        {"type": "image_generation.partial_image", "b64_json": PIXEL, "partial_image_index": 0}
    ).encode()
    + b"\n\nevent: image_generation.completed\ndata: "
    + json.dumps(
        {"type": "image_generation.completed", "b64_json": PIXEL, "usage": IMAGE_USAGE}
    ).encode()
    + b"\n\n"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(TRANSCRIPTION_TOKENS, (14, None, 45, 12, None, None, 59), id="transcription"),
        pytest.param(IMAGE_USAGE, (50, None, 4160, None, 40, 4096, 4210), id="image"),
        pytest.param(
            {"input_tokens": 14, "output_tokens": 101, "total_tokens": 115},
            (14, None, 101, None, None, None, 115),
            id="speech",
        ),
        pytest.param(
            {
                "input_tokens": 50,
                "input_tokens_details": {"cached_tokens": 20, "image_tokens": 40},
                "output_tokens": 10,
            },
            (30, 20, 10, None, 40, None, None),
            id="cached-image-input",
        ),
    ],
)
def test_usage_semantics(raw: dict[str, object], expected: tuple[int | None, ...]) -> None:
    usage = media_usage(raw)

    assert (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.output_tokens,
        usage.audio_input_tokens,
        usage.image_input_tokens,
        usage.image_output_tokens,
        usage.total_tokens,
    ) == expected
    assert usage.raw == raw


def test_duration_usage_has_no_token_classes() -> None:
    usage = media_usage(TRANSCRIPTION_DURATION)

    assert usage.has_counts() is False
    assert usage.raw == {"type": "duration", "seconds": 9.5}


@pytest.mark.parametrize("way", THREE_WAYS)
def test_transcription_json_token_usage(way: str) -> None:
    transcription = route("POST", TRANSCRIPTIONS)
    body = json.dumps({"text": "I see.", "usage": TRANSCRIPTION_TOKENS}).encode()

    record, _ = decode(transcription, chunked(body, way), content_type="application/json")

    assert (record.api, record.state) == ("audio_transcriptions", "complete")
    assert record.usage.input_tokens == 14
    assert record.usage.audio_input_tokens == 12
    assert record.billable is True


def test_transcription_duration_usage_complete_not_billable() -> None:
    transcription = route("POST", TRANSCRIPTIONS)
    body = json.dumps({"text": "Hello.", "usage": TRANSCRIPTION_DURATION}).encode()

    record, _ = decode(transcription, [body], content_type="application/json")

    assert record.state == "complete"
    assert record.billable is False
    assert record.usage.raw["seconds"] == 9.5


@pytest.mark.parametrize(
    "content_type", ["text/plain; charset=utf-8", "text/vtt", "application/x-subrip"]
)
def test_transcription_text_formats_missing_without_problem(content_type: str) -> None:
    transcription = route("POST", TRANSCRIPTIONS)

    record, decoder = decode(
        transcription, [b"1\n00:00:00,000 --> 00:00:01,000\nHi\n"], content_type=content_type
    )

    assert record.state == "missing"
    assert decoder.problem is None


@pytest.mark.parametrize("way", THREE_WAYS)
def test_transcription_stream(way: str) -> None:
    transcription = route("POST", TRANSCRIPTIONS)

    record, _ = decode(
        transcription, chunked(TRANSCRIPTION_SSE, way), content_type="text/event-stream"
    )

    assert record.stream is True
    assert record.state == "complete"
    assert record.usage.output_tokens == 45


def test_transcription_stream_cut_before_done_is_partial() -> None:
    transcription = route("POST", TRANSCRIPTIONS)
    cut = TRANSCRIPTION_SSE.index(b'data: {"type": "transcript.text.done"')

    record, _ = decode(transcription, [TRANSCRIPTION_SSE[:cut]], content_type="text/event-stream")

    assert record.state == "partial"


def test_speech_audio_body_not_buffered() -> None:
    speech = route("POST", SPEECH, b'{"model": "gpt-4o-mini-tts", "input": "hi", "voice": "ash"}')
    audio = b"\xff\xfb\x90" + bytes(range(256)) * 64

    record, decoder = decode(speech, [audio, audio], content_type="audio/mpeg")

    assert (record.api, record.state) == ("audio_speech", "missing")
    assert record.request_model == "gpt-4o-mini-tts"
    assert decoder.problem is None
    assert decoder._buffered == 0


@pytest.mark.parametrize("way", THREE_WAYS)
def test_speech_sse_usage(way: str) -> None:
    speech = route("POST", SPEECH, b'{"model": "gpt-4o-mini-tts", "stream_format": "sse"}')

    record, _ = decode(speech, chunked(SPEECH_SSE, way), content_type="text/event-stream")

    assert record.state == "complete"
    assert (record.usage.input_tokens, record.usage.output_tokens) == (14, 101)


@pytest.mark.parametrize("way", THREE_WAYS)
def test_image_generation_json(way: str) -> None:
    generation = route("POST", GENERATIONS, b'{"model": "gpt-image-1", "prompt": "a cat"}')
    body = json.dumps({"created": 1, "data": [{"b64_json": PIXEL}], "usage": IMAGE_USAGE}).encode()

    record, _ = decode(generation, chunked(body, way), content_type="application/json")

    assert (record.api, record.state) == ("images_generations", "complete")
    assert record.request_model == "gpt-image-1"
    assert record.usage.image_input_tokens == 40
    assert record.usage.image_output_tokens == 4096
    assert record.usage.output_tokens == 4160


def test_image_svg_usage_kept_raw_only() -> None:
    generation = route("POST", GENERATIONS, b'{"model": "gpt-image-2"}')
    svg = {
        "model": "gpt-5",
        "input_tokens": 5,
        "output_tokens": 900,
        "reasoning_tokens": 800,
        "total_tokens": 905,
    }
    body = json.dumps({"created": 1, "data": [], "usage": IMAGE_USAGE, "svg_usage": svg}).encode()

    record, _ = decode(generation, [body], content_type="application/json")

    assert record.usage.raw["svg_usage"] == svg
    assert record.usage.output_tokens == IMAGE_USAGE["output_tokens"]


def test_dall_e_image_without_usage_is_missing() -> None:
    generation = route("POST", GENERATIONS, b'{"model": "dall-e-3"}')

    record, _ = decode(
        generation,
        [b'{"created": 1, "data": [{"url": "https://x"}]}'],
        content_type="application/json",
    )

    assert record.state == "missing"


@pytest.mark.parametrize("way", THREE_WAYS)
def test_image_stream(way: str) -> None:
    generation = route("POST", GENERATIONS, b'{"model": "gpt-image-1", "stream": true}')

    record, _ = decode(generation, chunked(IMAGE_SSE, way), content_type="text/event-stream")

    assert record.stream is True
    assert record.state == "complete"
    assert record.usage.input_tokens == 50


@given(st.lists(st.integers(min_value=0, max_value=len(IMAGE_SSE)), max_size=20))
def test_image_stream_any_chunking(cuts: list[int]) -> None:
    edit = route("POST", EDITS)

    record, _ = decode(edit, split_at(IMAGE_SSE, cuts), content_type="text/event-stream")

    assert record.api == "images_edits"
    assert record.state == "complete"
    assert record.usage.total_tokens == 4210


def test_image_error_body() -> None:
    generation = route("POST", GENERATIONS, b"{}")
    body = b'{"error": {"code": "moderation_blocked", "message": "blocked"}}'

    record, _ = decode(generation, [body], content_type="application/json", status=400)

    assert record.state == "error"
    assert record.problem == "provider error: moderation_blocked"


def test_moderation_is_free() -> None:
    moderation = route_request("POST", "api.openai.com", "/v1/moderations", b'{"input": "x"}')

    assert moderation is not None
    assert moderation.free is True


def test_azure_media_model_from_deployment() -> None:
    speech = route_request(
        "POST", "res.openai.azure.com", "/openai/deployments/my-tts/audio/speech", b"{}"
    )

    assert speech is not None
    assert (speech.provider, speech.request_model) == ("azure_openai", "my-tts")
