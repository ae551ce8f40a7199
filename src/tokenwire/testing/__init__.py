"""Test helpers for users of tokenwire and for its own suite.

- `RecordingSink`: a record sink that keeps records in memory (pass it as `meter=`).
- `ReplayTransport`, `replay_interaction`: answer a request with a recorded response,
  streamed in network-sized chunks, through the real `MeteredTransport`.
- `load_cassette`, `find_cassettes`: read vcrpy cassettes (pydantic-ai's form too).
- `ProviderServer`: a loopback server that answers like the OpenAI and Anthropic APIs.
- `LagoServer`, `LagoServerProcess`: a loopback server that answers like Lago's batch
  events API, in a thread or in its own process, with faults on command.
"""

from __future__ import annotations

from .cassettes import (
    CassetteError,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    find_cassettes,
    load_cassette,
)
from .lago_server import LagoServer, LagoServerProcess
from .provider_server import ProviderServer
from .replay import RecordingSink, ReplayTransport, chunk_body, replay_interaction

__all__ = [
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
]
