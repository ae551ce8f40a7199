"""Peers measured beside tokenwire, each in its own virtualenv and process.

Each peer's virtualenv lives in the peer venv folder: `--peer-venvs`, else
`TOKENWIRE_BENCH_VENVS`, else `bench-venvs` beside the repository checkout.
`python -m benchmarks --setup-peers` creates them from PyPI, with the openai
version of the running interpreter so that every side times the same SDK.
A peer whose virtualenv is missing is skipped with the command that creates it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PEERS", "PeerSpec", "default_venv_root", "run_peer", "setup_peer"]

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

PEER_TIMEOUT_S = 1800
"""A full peer run takes a few minutes on a 2-core machine; past this it is stuck."""


@dataclass(frozen=True)
class PeerSpec:
    name: str
    venv: str
    """Folder name of the peer's virtualenv inside the venv root."""
    module: str
    packages: tuple[str, ...]
    """Packages `--setup-peers` installs besides openai (the running interpreter's version)."""


PEERS = (
    PeerSpec("lago-agent-sdk", "lago", "benchmarks.peers.lago_sdk", ("lago-agent-sdk",)),
    PeerSpec(
        "openllmetry",
        "openllmetry",
        "benchmarks.peers.openllmetry",
        ("opentelemetry-instrumentation-openai", "opentelemetry-sdk"),
    ),
)


def default_venv_root() -> Path:
    configured = os.environ.get("TOKENWIRE_BENCH_VENVS")
    return Path(configured) if configured else REPOSITORY_ROOT.parent / "bench-venvs"


def _python(root: Path, spec: PeerSpec) -> Path:
    if os.name == "nt":
        return root / spec.venv / "Scripts" / "python.exe"
    return root / spec.venv / "bin" / "python"


def setup_peer(spec: PeerSpec, root: Path) -> None:
    """Create the peer's virtualenv and install its packages from PyPI."""
    folder = root / spec.venv
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    openai_pin = f"openai=={metadata.version('openai')}"
    subprocess.run(
        [str(_python(root, spec)), "-m", "pip", "install", "--quiet", openai_pin, *spec.packages],
        check=True,
    )


def run_peer(
    spec: PeerSpec, root: Path, *, quick: bool, rounds: int, only: list[str] | None
) -> dict[str, Any]:
    """Run one peer module in its virtualenv and return its JSON document, or a skip."""
    python = _python(root, spec)
    if not python.exists():
        return {
            "peer": spec.name,
            "status": "skipped",
            "reason": f"no virtualenv at {root / spec.venv}; create it with "
            f"`python -m benchmarks --setup-peers --peer-venvs {root}`",
        }
    command = [str(python), "-m", spec.module, "--rounds", str(rounds)]
    if quick:
        command.append("--quick")
    if only:
        command += ["--only", *only]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(REPOSITORY_ROOT)
    completed = subprocess.run(
        command,
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=PEER_TIMEOUT_S,
    )
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-5:]
        return {
            "peer": spec.name,
            "status": "failed",
            "reason": f"exit status {completed.returncode}: " + " | ".join(tail),
        }
    document: dict[str, Any] = json.loads(completed.stdout)
    document["status"] = "ok"
    return document
