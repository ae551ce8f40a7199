"""OpenTelemetry metrics for every usage record, beside the ledger and Lago.

`enable_otel()` registers an `OtelExporter` as a record observer of the meter.
The meter calls it with each batch of records after the ledger has written
them, on the ledger writer thread. It records the instruments below through
the application's `MeterProvider` (the global one unless another is given), so
whatever pipeline the application already runs (OTLP, Prometheus, a collector)
carries them. It runs beside the ledger and Lago delivery, never instead.

- `gen_ai.client.token.usage` (histogram, `{token}`), as the OpenTelemetry
  GenAI semantic conventions define it: one measurement per record and
  `gen_ai.token.type`, `input` or `output`. Following the conventions'
  `gen_ai.usage.input_tokens`, `input` counts every input token: fresh input,
  cache reads and cache writes. The conventions define no token type for cache
  reads or writes, so those go to the next instrument.
- `tokenwire.token.usage` (counter, `{token}`): the disjoint billing classes of
  `tokenwire.usage.Usage` under `tokenwire.token.class` (`input` for fresh
  input only, `cached_input`, `cache_creation`, `output`). Its sum over
  classes is the number of billable tokens; the histogram's `input` is the sum
  of the first three.
- `tokenwire.cost` (counter, `{USD}`): provider cost from `tokenwire.pricing`,
  with `tokenwire.cost.complete` false when some token class had no price (the
  value then covers the priced classes only).
- `tokenwire.records` (counter, `{record}`): every record, by
  `tokenwire.record.state` (`complete`, `partial`, `missing`, `error`).

Attributes on all four: `gen_ai.operation.name`, `gen_ai.provider.name`,
`gen_ai.request.model` and `gen_ai.response.model` (when known),
`tokenwire.subscription` (absent for an unattributed record), and
`tokenwire.dimension.<key>` for the dimension keys named in `dimensions=`
(none by default, because free-form dimensions can have unbounded
cardinality). Token instruments are recorded only for billable records
(`complete` or `partial` with counts), like the Lago events.

NOTE: OpenTelemetry metrics carry floats, so `tokenwire.cost` is rounded to
binary floating point; the ledger and Lago keep the exact decimal amounts.
`server.address`, recommended by the conventions, is not set: records do not
keep the host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from ..errors import ConfigurationError
from ..meter import add_record_observer, remove_record_observer, report_fault
from ..usage import UsageRecord

if TYPE_CHECKING:
    from opentelemetry import metrics

__all__ = [
    "TOKEN_USAGE_BUCKETS",
    "OtelExporter",
    "disable_otel",
    "enable_otel",
    "operation_name",
    "provider_name",
]

TOKEN_USAGE_BUCKETS: Final[tuple[int, ...]] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""Histogram bucket boundaries that the GenAI conventions give `gen_ai.client.token.usage`."""

_PROVIDER_NAMES: Final[Mapping[str, str]] = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "cohere": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
}
"""tokenwire provider names to the conventions' well-known `gen_ai.provider.name` values.
Other providers (gateways, unknown hosts) keep their tokenwire name, as the
conventions allow for providers they do not list."""

_OPERATION_NAMES: Final[Mapping[str, str]] = {
    "chat_completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "converse": "chat",
    "converse_stream": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "generate_content": "generate_content",
    "stream_generate_content": "generate_content",
}
"""tokenwire API names to the conventions' well-known `gen_ai.operation.name` values.
Other APIs keep their tokenwire name."""

Pricing = Callable[[UsageRecord], Any]
"""Returns an object with `cost_usd` (Decimal) and `priced` (bool), such as
`tokenwire.pricing.Pricer.price`, or None when the record cannot be priced."""


def provider_name(provider: str) -> str:
    """Return the `gen_ai.provider.name` value for a tokenwire provider name."""
    return _PROVIDER_NAMES.get(provider, provider)


def operation_name(api: str) -> str:
    """Return the `gen_ai.operation.name` value for a tokenwire API name."""
    return _OPERATION_NAMES.get(api, api)


def _default_pricing() -> Pricing | None:
    try:
        from ..pricing import default_pricer
    except ImportError:  # pricing needs genai-prices, an optional dependency
        return None
    return default_pricer().price


class OtelExporter:
    """A record observer that records OpenTelemetry metrics for each usage record.

    `pricing` prices a record (default: `tokenwire.pricing.default_pricer()`
    when that package imports; pass None to skip cost). `dimensions` names
    the record dimensions to add as `tokenwire.dimension.<key>` attributes.
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        pricing: Pricing | None = None,
        dimensions: Collection[str] = (),
    ) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            raise ConfigurationError(
                "OpenTelemetry export needs the opentelemetry-api package; "
                "install it with: pip install 'tokenwire[otel]'"
            ) from exc
        from .. import __version__

        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("tokenwire", __version__)
        self._pricing = pricing
        self._dimensions = tuple(dimensions)
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_USAGE_BUCKETS,
        )
        self._class_usage = meter.create_counter(
            "tokenwire.token.usage",
            unit="{token}",
            description="Tokens by disjoint billing class; the sum over classes is the bill's.",
        )
        self._cost = meter.create_counter(
            "tokenwire.cost",
            unit="{USD}",
            description="Provider cost of the usage, in US dollars, from tokenwire.pricing.",
        )
        self._records = meter.create_counter(
            "tokenwire.records",
            unit="{record}",
            description="Usage records made, by completeness state.",
        )

    def __call__(self, records: Sequence[UsageRecord]) -> None:
        for record in records:
            try:
                self.observe(record)
            except Exception as exc:  # one bad record must not hide the rest of the batch
                report_fault("otel", exc)

    def observe(self, record: UsageRecord) -> None:
        """Record the metrics of one usage record."""
        attributes = self._attributes(record)
        self._records.add(1, {**attributes, "tokenwire.record.state": record.state})
        if not record.billable:
            return

        usage = record.usage
        classes = {
            "input": usage.input_tokens,
            "cached_input": usage.cached_input_tokens,
            "cache_creation": usage.cache_creation_tokens,
            "output": usage.output_tokens,
        }
        for token_class, count in classes.items():
            if count is not None:
                self._class_usage.add(count, {**attributes, "tokenwire.token.class": token_class})

        inputs = [classes["input"], classes["cached_input"], classes["cache_creation"]]
        if any(count is not None for count in inputs):
            total_input = sum(count for count in inputs if count is not None)
            self._token_usage.record(total_input, {**attributes, "gen_ai.token.type": "input"})
        if usage.output_tokens is not None:
            self._token_usage.record(
                usage.output_tokens, {**attributes, "gen_ai.token.type": "output"}
            )

        self._record_cost(record, attributes)

    def _record_cost(self, record: UsageRecord, attributes: dict[str, Any]) -> None:
        if self._pricing is None:
            return
        try:
            cost = self._pricing(record)
        except Exception as exc:  # the token metrics are already recorded
            report_fault("otel-pricing", exc)
            return
        if cost is None:
            return
        amount: Decimal = cost.cost_usd
        self._cost.add(float(amount), {**attributes, "tokenwire.cost.complete": bool(cost.priced)})

    def _attributes(self, record: UsageRecord) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation_name(record.api),
            "gen_ai.provider.name": provider_name(record.provider),
        }
        if record.request_model is not None:
            attributes["gen_ai.request.model"] = record.request_model
        if record.response_model is not None:
            attributes["gen_ai.response.model"] = record.response_model
        if record.subscription is not None:
            attributes["tokenwire.subscription"] = record.subscription
        for key in self._dimensions:
            value = record.dimensions.get(key)
            if value is not None:
                attributes[f"tokenwire.dimension.{key}"] = value
        return attributes


_enabled: OtelExporter | None = None
_enabled_lock = threading.Lock()

_USE_DEFAULT_PRICING: Final[Any] = object()


def enable_otel(
    meter_provider: metrics.MeterProvider | None = None,
    *,
    pricing: Pricing | None = _USE_DEFAULT_PRICING,
    dimensions: Collection[str] = (),
) -> OtelExporter:
    """Export OpenTelemetry metrics for every usage record, beside the ledger.

    `meter_provider` defaults to the global one (`opentelemetry.metrics`).
    `pricing` defaults to `tokenwire.pricing.default_pricer().price` (None
    turns cost off), and `dimensions` names the record dimensions to export
    as attributes. Calling it again replaces the previous exporter, so
    records are never counted twice. Returns the exporter now registered.
    Raises `ConfigurationError` when opentelemetry-api is not installed.
    """
    global _enabled
    chosen = _default_pricing() if pricing is _USE_DEFAULT_PRICING else pricing
    exporter = OtelExporter(meter_provider, pricing=chosen, dimensions=dimensions)
    with _enabled_lock:
        previous, _enabled = _enabled, exporter
        if previous is not None:
            remove_record_observer(previous)
        add_record_observer(exporter)
    return exporter


def disable_otel() -> None:
    """Stop exporting OpenTelemetry metrics; does nothing if they were not enabled."""
    global _enabled
    with _enabled_lock:
        previous, _enabled = _enabled, None
        if previous is not None:
            remove_record_observer(previous)
