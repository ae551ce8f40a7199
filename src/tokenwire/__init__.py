"""tokenwire: meter LLM token usage on the wire and bill it through Lago.

    client = OpenAI(http_client=tokenwire.MeteredClient())
    with tokenwire.attribute(subscription="sub_acme", feature="search"):
        client.chat.completions.create(...)
"""

from __future__ import annotations

from .attribution import Attribution, attribute, current
from .errors import ConfigurationError, DecodeError, TokenwireError
from .meter import FlushResult, Meter, MeterStatistics, configure, flush, get_meter, shutdown
from .transports.httpx import (
    AsyncMeteredClient,
    AsyncMeteredTransport,
    MeteredClient,
    MeteredTransport,
)
from .usage import RecordState, Usage, UsageRecord

__version__ = "0.1.0"

__all__ = [
    "AsyncMeteredClient",
    "AsyncMeteredTransport",
    "Attribution",
    "ConfigurationError",
    "DecodeError",
    "FlushResult",
    "Meter",
    "MeterStatistics",
    "MeteredClient",
    "MeteredTransport",
    "RecordState",
    "TokenwireError",
    "Usage",
    "UsageRecord",
    "__version__",
    "attribute",
    "configure",
    "current",
    "flush",
    "get_meter",
    "shutdown",
]
