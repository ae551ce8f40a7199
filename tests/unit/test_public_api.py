"""The public names of `tokenwire` and `tokenwire.testing`, pinned so changes are deliberate."""

from __future__ import annotations

import subprocess
import sys

import tokenwire
import tokenwire.testing

PUBLIC = {
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
}
TESTING = {
    "CassetteError",
    "Interaction",
    "LagoServer",
    "LagoServerProcess",
    "ProviderServer",
    "RecordedRequest",
    "RecordedResponse",
    "RecordingSink",
    "ReplayTransport",
    "chunk_body",
    "find_cassettes",
    "load_cassette",
    "replay_interaction",
}


def test_tokenwire_all_pinned() -> None:
    assert set(tokenwire.__all__) == PUBLIC
    assert tokenwire.__all__ == sorted(tokenwire.__all__)


def test_tokenwire_names_resolve() -> None:
    missing = [name for name in tokenwire.__all__ if getattr(tokenwire, name, None) is None]

    assert missing == []


def test_testing_all_pinned() -> None:
    assert set(tokenwire.testing.__all__) == TESTING
    assert all(getattr(tokenwire.testing, name, None) is not None for name in TESTING)


def test_import_does_not_load_optional_packages() -> None:
    code = (
        "import sys, tokenwire; "
        "print(sorted(m for m in ('botocore', 'boto3', 'aiobotocore', 'opentelemetry', "
        "'genai_prices', 'openai', 'anthropic') if m in sys.modules))"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"
