"""Shared fixtures: the shared corpus location and a fresh record sink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokenwire.testing.replay import RecordingSink

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """Return the shared corpora folder: `TOKENWIRE_SHARED`, else `../shared` beside the repo."""
    configured = os.environ.get("TOKENWIRE_SHARED")
    return Path(configured) if configured else REPO_ROOT.parent / "shared"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
