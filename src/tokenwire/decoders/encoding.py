"""Incremental content-encoding decoders for tokenwire's own copy of a response body.

Transports see bytes before the HTTP client decodes them, so the metering path
decompresses its own copy. Each decoder has the same shape: `decode(data)`
returns the plain bytes available so far and `flush()` returns the rest at end
of stream. Both raise `ContentEncodingError` on corrupt input. `br` and `zstd`
are supported when the `brotli` (or `brotlicffi`) and `zstandard` modules import.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

from ..errors import DecodeError

__all__ = ["ContentDecoder", "ContentEncodingError", "content_decoder"]


class ContentEncodingError(DecodeError):
    """Compressed bytes that cannot be decompressed."""


class ContentDecoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class IdentityDecoder:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class ZlibDecoder:
    """gzip (wbits 16+MAX) or deflate (zlib-wrapped, falling back to raw deflate)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._first = True
        wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        self._obj: Any = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        try:
            if self._first and self._encoding == "deflate" and data:
                self._first = False
                try:
                    return bytes(self._obj.decompress(data))
                except zlib.error:
                    # Some servers send raw deflate without the zlib header.
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                    return bytes(self._obj.decompress(data))
            self._first = False
            return bytes(self._obj.decompress(data))
        except zlib.error as exc:
            raise ContentEncodingError(f"invalid {self._encoding} data: {exc}") from exc

    def flush(self) -> bytes:
        try:
            rest = bytes(self._obj.flush())
        except zlib.error as exc:
            raise ContentEncodingError(f"invalid {self._encoding} data: {exc}") from exc
        if not self._first and not self._obj.eof:
            raise ContentEncodingError(f"{self._encoding} stream ended before its end marker")
        return rest


class BrotliDecoder:
    def __init__(self, module: Any) -> None:
        self._obj = module.Decompressor()
        self._error = getattr(module, "error", Exception)

    def decode(self, data: bytes) -> bytes:
        try:
            method = getattr(self._obj, "process", None) or self._obj.decompress
            return bytes(method(data))
        except self._error as exc:
            raise ContentEncodingError(f"invalid br data: {exc}") from exc

    def flush(self) -> bytes:
        return b""


class ZstdDecoder:
    def __init__(self, module: Any) -> None:
        self._obj = module.ZstdDecompressor().decompressobj()
        self._error = getattr(module, "ZstdError", Exception)

    def decode(self, data: bytes) -> bytes:
        try:
            return bytes(self._obj.decompress(data))
        except self._error as exc:
            raise ContentEncodingError(f"invalid zstd data: {exc}") from exc

    def flush(self) -> bytes:
        return b""


def _optional_module(*names: str) -> Any:
    import importlib

    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


_brotli = _optional_module("brotli", "brotlicffi")
_zstd = _optional_module("zstandard")


class _Chain:
    """Several encodings applied in order (`Content-Encoding: gzip, br`)."""

    def __init__(self, decoders: list[ContentDecoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> bytes:
        for decoder in reversed(self._decoders):
            data = decoder.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for decoder in reversed(self._decoders):
            data = decoder.decode(data) + decoder.flush()
        return data


def content_decoder(header: str | None) -> ContentDecoder:
    """Return a decoder for a `Content-Encoding` header value.

    Raises `ContentEncodingError` for an encoding this process cannot decode.
    """
    if not header:
        return IdentityDecoder()
    decoders: list[ContentDecoder] = []
    for part in header.split(","):
        name = part.strip().lower()
        if name in ("", "identity"):
            continue
        if name in ("gzip", "x-gzip"):
            decoders.append(ZlibDecoder("gzip"))
        elif name == "deflate":
            decoders.append(ZlibDecoder("deflate"))
        elif name == "br" and _brotli is not None:
            decoders.append(BrotliDecoder(_brotli))
        elif name == "zstd" and _zstd is not None:
            decoders.append(ZstdDecoder(_zstd))
        else:
            raise ContentEncodingError(f"unsupported content-encoding {name!r}")
    if not decoders:
        return IdentityDecoder()
    if len(decoders) == 1:
        return decoders[0]
    return _Chain(decoders)
