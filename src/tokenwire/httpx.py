"""Metered clients for the legacy `httpx` package (install the `httpx` extra).

Use these with SDKs still built on `httpx` rather than `httpx2`:
`SomeSDK(http_client=tokenwire.httpx.MeteredClient())`. They behave exactly as
`tokenwire.MeteredClient` does; only the client family differs.
"""

from __future__ import annotations

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "tokenwire.httpx needs the httpx package; install it with `pip install 'tokenwire[httpx]'`"
    ) from exc

from .transports.httpx import AsyncMeteredTransport, MeteredClientMixin, MeteredTransport

__all__ = ["AsyncMeteredClient", "AsyncMeteredTransport", "MeteredClient", "MeteredTransport"]


class MeteredClient(MeteredClientMixin, httpx.Client):
    """An `httpx.Client` that meters every LLM response it receives."""

    family = httpx


class AsyncMeteredClient(MeteredClientMixin, httpx.AsyncClient):
    """An `httpx.AsyncClient` that meters every LLM response it receives."""

    family = httpx
    is_async = True
