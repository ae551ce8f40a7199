"""Incremental content-encoding decoders: same output for any chunking, clear errors."""

from __future__ import annotations

import gzip
import itertools
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenwire.decoders.encoding import ContentEncodingError, content_decoder

PLAIN = b'{"usage": {"prompt_tokens": 12, "completion_tokens": 3}}' * 40


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "gzip": gzip.compress(PLAIN),
    "x-gzip": gzip.compress(PLAIN),
    "deflate": zlib.compress(PLAIN),
    "identity": PLAIN,
}


def _decode(header: str | None, chunks: list[bytes]) -> bytes:
    decoder = content_decoder(header)
    return b"".join(decoder.decode(chunk) for chunk in chunks) + decoder.flush()


@pytest.mark.parametrize("header", sorted(ENCODED))
def test_decode_whole_and_bytewise(header: str) -> None:
    wire = ENCODED[header]

    assert _decode(header, [wire]) == PLAIN
    assert _decode(header, [wire[i : i + 1] for i in range(len(wire))]) == PLAIN


def test_raw_deflate_without_zlib_header() -> None:
    assert _decode("deflate", [_raw_deflate(PLAIN)]) == PLAIN


def test_stacked_encodings_decode_in_reverse_order() -> None:
    wire = gzip.compress(zlib.compress(PLAIN))

    assert _decode("deflate, gzip", [wire]) == PLAIN


def test_no_header_is_identity() -> None:
    assert _decode(None, [PLAIN]) == PLAIN
    assert _decode("", [PLAIN]) == PLAIN


@pytest.mark.parametrize(
    ("header", "wire", "fragment"),
    [
        pytest.param("gzip", b"plainly not gzip", "invalid gzip", id="not-gzip"),
        pytest.param("gzip", gzip.compress(PLAIN)[:-8], "end marker", id="gzip-truncated"),
        pytest.param("deflate", b"\xff\xff\xff", "invalid deflate", id="not-deflate"),
    ],
)
def test_corrupt_input_raises(header: str, wire: bytes, fragment: str) -> None:
    with pytest.raises(ContentEncodingError, match=fragment):
        _decode(header, [wire])


def test_unknown_encoding_raises() -> None:
    with pytest.raises(ContentEncodingError, match="'snappy'"):
        content_decoder("snappy")


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ENCODED["gzip"])), max_size=20))
def test_gzip_any_chunking(cuts: list[int]) -> None:
    wire = ENCODED["gzip"]
    points = sorted({0, len(wire), *cuts})

    assert _decode("gzip", [wire[a:b] for a, b in itertools.pairwise(points)]) == PLAIN


def test_brotli_when_available() -> None:
    brotli = pytest.importorskip("brotli")

    assert _decode("br", [brotli.compress(PLAIN)]) == PLAIN


def test_zstd_when_available() -> None:
    zstandard = pytest.importorskip("zstandard")

    assert _decode("zstd", [zstandard.ZstdCompressor().compress(PLAIN)]) == PLAIN
