"""Every scenario the runner knows, in the order its tables list them."""

from __future__ import annotations

from ..core import Scenario

__all__ = ["all_scenarios"]


def all_scenarios() -> list[Scenario]:
    """Return every scenario; modules are imported here so `--help` stays fast."""
    from . import bedrock, decoders, hot_path, loopback, memory, sdk

    return [
        *sdk.SCENARIOS,
        *bedrock.SCENARIOS,
        *loopback.SCENARIOS,
        *decoders.SCENARIOS,
        *hot_path.SCENARIOS,
        *memory.SCENARIOS,
    ]
