"""Metered clients for the legacy `httpx` package (install the `httpx` extra).

Use these with SDKs still built on `httpx` rather than `httpx2`:
`SomeSDK(http_client=tokenwire.httpx.MeteredClient())`. They behave exactly as
`tokenwire.MeteredClient` does; only the client family differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "tokenwire.httpx needs the httpx package; install it with "
        "`pip install 'tokenwire[httpx]'`"
    ) from exc

from .meter import RecordSink
from .transports.httpx import (
    AsyncMeteredTransport,
    MeteredTransport,
    client_defaults,
    meter_client_transports,
)

__all__ = ["AsyncMeteredClient", "AsyncMeteredTransport", "MeteredClient", "MeteredTransport"]


class MeteredClient(httpx.Client):
    """An `httpx.Client` that meters every LLM response it receives."""

    def __init__(
        self,
        *,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        meter: RecordSink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**client_defaults(httpx, kwargs))
        meter_client_transports(
            self, MeteredTransport, meter=meter, subscription=subscription, dimensions=dimensions
        )


class AsyncMeteredClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that meters every LLM response it receives."""

    def __init__(
        self,
        *,
        subscription: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        meter: RecordSink | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**client_defaults(httpx, kwargs))
        meter_client_transports(
            self,
            AsyncMeteredTransport,
            meter=meter,
            subscription=subscription,
            dimensions=dimensions,
        )
