"""Feed a response body through `ResponseDecoder` the ways the provider tests need."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from tokenwire.decoders.body import ResponseDecoder
from tokenwire.decoders.routing import Route, route_request
from tokenwire.usage import UsageRecord


def route(method: str, url: str, body: bytes | None = None) -> Route:
    """Return the route of a request given as a URL, failing the test when there is none."""
    scheme, _, rest = url.partition("://")
    assert scheme == "https"
    host, _, path = rest.partition("/")
    found = route_request(method, host, "/" + path, body)
    assert found is not None, f"{method} {url} is not routed"
    return found


def decode(
    route: Route,
    chunks: Iterable[bytes],
    *,
    content_type: str | None,
    status: int = 200,
    content_encoding: str | None = None,
    eof: bool = True,
) -> tuple[UsageRecord, ResponseDecoder]:
    """Feed `chunks` and return the record and the decoder that made it."""
    decoder = ResponseDecoder(route, status, content_type, content_encoding)
    for chunk in chunks:
        decoder.feed(chunk)
    record = decoder.build_record(eof=eof, subscription=None, dimensions={})
    return record, decoder


def bytewise(body: bytes) -> list[bytes]:
    return [body[index : index + 1] for index in range(len(body))]


THREE_WAYS = [
    pytest.param("whole", id="whole"),
    pytest.param("bytewise", id="bytewise"),
    pytest.param("trailing", id="trailing"),
]
"""How a body is fed: whole, one byte at a time, or whole plus trailing whitespace."""


def chunked(body: bytes, way: str, trailing: bytes = b"\n\n") -> list[bytes]:
    """Split `body` as `way` says (see `THREE_WAYS`)."""
    if way == "whole":
        return [body]
    if way == "bytewise":
        return bytewise(body)
    assert way == "trailing"
    return [body, trailing]


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Split `body` at the given offsets (any order, duplicates allowed)."""
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    return [body[start:end] for start, end in itertools.pairwise(points)]
