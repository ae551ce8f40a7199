"""The Lago Agent SDK (`lago-agent-sdk` on PyPI) wrapping an openai client, against raw calls.

`LagoSDK.wrap()` patches the methods of the one client instance it is given,
so the raw side is simply another client. The SDK batches events to Lago on a
background thread through `requests`; here it sends them to the Lago sink of
`benchmarks.loopback` on 127.0.0.1, which answers 200. Token mode (the
default) fetches no prices. The check after each case asks the sink how many
events arrived, so the peer is known to have metered the calls it was timed on.

Run by `python -m benchmarks --peers` with the peer's virtualenv's python.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

from ..loopback import LoopbackServer
from .harness import Peer, PeerCase, main, openai_client


class LagoAgentSdk(Peer):
    name = "lago-agent-sdk"

    def __init__(self) -> None:
        self._server = LoopbackServer()
        self._sdk: Any = None
        self._events_seen = 0

    def versions(self) -> dict[str, str]:
        return {name: metadata.version(name) for name in ("lago-agent-sdk", "openai", "httpx2")}

    def start(self) -> None:
        from lago_agent_sdk import LagoSDK

        # requests reads proxy settings from the environment; the sink is local.
        os.environ["NO_PROXY"] = "127.0.0.1,localhost"
        self._server.__enter__()
        self._sdk = LagoSDK(
            api_key="bench",
            api_url=f"{self._server.base_url}/api/v1",
            default_subscription_id="sub_bench",
        )

    def stop(self) -> None:
        if self._sdk is not None:
            self._sdk.shutdown()
        self._server.__exit__(None, None, None)

    def instrumented_client(self, case: PeerCase) -> Any:
        return self._sdk.wrap(openai_client(case))

    def check(self, case: PeerCase, instrumented_calls: int) -> None:
        self._sdk.flush()
        events = self._server.lago_events()
        if events <= self._events_seen:
            raise RuntimeError(f"{self.name} sent no event to Lago for {case.name}")
        self._events_seen = events


if __name__ == "__main__":
    raise SystemExit(main(LagoAgentSdk()))
