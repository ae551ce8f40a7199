"""OpenLLMetry's OpenAI instrumentation (`opentelemetry-instrumentation-openai`), against raw calls.

The instrumentor patches the openai resource classes for every client in the
process, so it is switched on once, and the raw client calls the original
`Completions.create` that the patch replaced. Spans go through the SDK's `BatchSpanProcessor`, the
production setting, to an in-memory exporter that is emptied between cases,
and the token and duration metrics go to an in-memory metric reader: nothing
leaves the machine. Prompt and completion capture stays at its default (on).
The check after each case reads the exported spans and requires the usage
attributes on them.

Run by `python -m benchmarks --peers` with the peer's virtualenv's python.
"""

from __future__ import annotations

import types
from importlib import metadata
from typing import Any

from .harness import Peer, PeerCase, main, openai_client


class OpenLLMetry(Peer):
    name = "openllmetry"

    def __init__(self) -> None:
        self._tracer_provider: Any = None
        self._meter_provider: Any = None
        self._exporter: Any = None
        self._original_create: Any = None

    def versions(self) -> dict[str, str]:
        names = ("opentelemetry-instrumentation-openai", "opentelemetry-sdk", "openai", "httpx2")
        return {name: metadata.version(name) for name in names}

    def start(self) -> None:
        from openai.resources.chat.completions import Completions
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self._exporter = InMemorySpanExporter()
        self._tracer_provider = TracerProvider()
        self._tracer_provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self._meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        original = Completions.__dict__["create"]
        OpenAIInstrumentor().instrument(
            tracer_provider=self._tracer_provider, meter_provider=self._meter_provider
        )
        if Completions.__dict__["create"] is original:
            raise RuntimeError("OpenAIInstrumentor did not patch Completions.create")
        self._original_create = original

    def stop(self) -> None:
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown()

    def raw_client(self, case: PeerCase) -> Any:
        # NOTE: uninstrument() in 0.62.4 leaves a wrapper behind, so switching the
        # patch off and on per round nests wrappers. The raw client instead calls
        # the method the instrumentor replaced, bound to its own resource object.
        client = openai_client(case)
        completions = client.chat.completions
        completions.create = types.MethodType(self._original_create, completions)
        return client

    def instrumented_client(self, case: PeerCase) -> Any:
        self._exporter.clear()
        return openai_client(case)

    def check(self, case: PeerCase, instrumented_calls: int) -> None:
        self._tracer_provider.force_flush()
        spans = self._exporter.get_finished_spans()
        with_usage = [
            span
            for span in spans
            if any("usage" in key and "input" in key for key in (span.attributes or {}))
        ]
        if not with_usage:
            raise RuntimeError(
                f"{self.name} exported {len(spans)} spans for {case.name}, none with usage"
            )
        # One span per instrumented call at most: the raw client must make none.
        if len(spans) > instrumented_calls:
            raise RuntimeError(
                f"{self.name} exported {len(spans)} spans for {instrumented_calls} instrumented "
                f"calls in {case.name}: the raw client is instrumented too"
            )


if __name__ == "__main__":
    raise SystemExit(main(OpenLLMetry()))
