"""tokenwire: meter LLM token usage on the wire and bill it through Lago.

client = OpenAI(http_client=tokenwire.MeteredClient())
with tokenwire.attribute(subscription="sub_acme", feature="search"):
    client.chat.completions.create(...)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .attribution import (
    Attribution,
    UnattributedError,
    attribute,
    configure_attribution,
    current,
    wrap,
)
from .delivery.events import EventCodes
from .delivery.otel import disable_otel, enable_otel
from .errors import ConfigurationError, DecodeError, TokenwireError
from .meter import FlushResult, Meter, MeterStatistics, configure, flush, get_meter, shutdown
from .middleware import ASGIAttributionMiddleware, IncomingRequest, WSGIAttributionMiddleware
from .pricing import (
    Cost,
    Markup,
    MarkupPolicy,
    PriceOverride,
    Pricer,
    PricingConfig,
    cost_event,
)
from .transports.httpx import (
    AsyncMeteredClient,
    AsyncMeteredTransport,
    MeteredClient,
    MeteredTransport,
)
from .usage import RecordState, Usage, UsageRecord

if TYPE_CHECKING:
    from .transports.aiobotocore import instrument_aiobotocore, uninstrument_aiobotocore
    from .transports.botocore import instrument_boto3, uninstrument_boto3

__version__ = "0.1.0"

__all__ = [
    "ASGIAttributionMiddleware",
    "AsyncMeteredClient",
    "AsyncMeteredTransport",
    "Attribution",
    "ConfigurationError",
    "Cost",
    "DecodeError",
    "EventCodes",
    "FlushResult",
    "IncomingRequest",
    "Markup",
    "MarkupPolicy",
    "Meter",
    "MeterStatistics",
    "MeteredClient",
    "MeteredTransport",
    "PriceOverride",
    "Pricer",
    "PricingConfig",
    "RecordState",
    "TokenwireError",
    "UnattributedError",
    "Usage",
    "UsageRecord",
    "WSGIAttributionMiddleware",
    "__version__",
    "attribute",
    "configure",
    "configure_attribution",
    "cost_event",
    "current",
    "disable_otel",
    "enable_otel",
    "flush",
    "get_meter",
    "instrument_aiobotocore",
    "instrument_boto3",
    "shutdown",
    "uninstrument_aiobotocore",
    "uninstrument_boto3",
    "wrap",
]

# boto3, botocore and aiobotocore are optional: their hooks are imported on first use,
# so that importing tokenwire never imports them.
_LAZY_EXPORTS = {
    "instrument_aiobotocore": ".transports.aiobotocore",
    "instrument_boto3": ".transports.botocore",
    "uninstrument_aiobotocore": ".transports.aiobotocore",
    "uninstrument_boto3": ".transports.botocore",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_EXPORTS})
