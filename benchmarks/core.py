"""Shared parts of every scenario: settings, the scenario record, skips and sinks."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "NullSink",
    "Scenario",
    "ScenarioSkipped",
    "Settings",
    "temporary_meter",
]


@dataclass(frozen=True)
class Settings:
    """How long to measure: full runs for numbers, `quick` only to check that the code works."""

    quick: bool = False
    rounds: int = 30
    """Interleaved rounds per paired scenario (each round: one batch per side)."""

    def scaled(self, full: int, quick: int) -> int:
        """Return `quick` in quick mode, else `full`."""
        return quick if self.quick else full

    @property
    def paired_rounds(self) -> int:
        return 3 if self.quick else self.rounds

    @property
    def warmup_calls(self) -> int:
        """Untimed calls per side before the first round: caches, imports, the writer thread."""
        return 1 if self.quick else 3

    @property
    def stream_events(self) -> int:
        """Events per streamed response: a long answer of a few hundred tokens."""
        return 50 if self.quick else 500


class ScenarioSkipped(Exception):
    """Raised by a scenario that cannot run here; the message says why and how to enable it."""


@dataclass(frozen=True)
class Scenario:
    """One benchmark: a name for `--only`, the table it belongs to, and the code that runs it."""

    name: str
    kind: str
    """The results table: `overhead`, `throughput`, `latency`, `memory` or `flusher`."""
    description: str
    run: Callable[[Settings], dict[str, Any]]
    group: str = "mock"
    """`mock`, `loopback`, `decoder`, `hot-path`: lets `--only` select a whole group."""


class NullSink:
    """A record sink that drops every record: isolates the transport and decoders."""

    def __init__(self) -> None:
        self.emitted = 0

    @property
    def disabled(self) -> bool:
        return False

    def emit(self, record: Any) -> None:
        self.emitted += 1


@contextmanager
def temporary_meter() -> Iterator[Any]:
    """Yield a real `tokenwire.Meter` writing to a ledger in a temporary folder, then stop it."""
    import tokenwire

    with tempfile.TemporaryDirectory(prefix="tokenwire-bench-") as folder:
        meter = tokenwire.Meter(ledger=Path(folder) / "ledger.sqlite3")
        try:
            yield meter
        finally:
            meter.shutdown()
