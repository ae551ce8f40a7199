"""`tokenwire replay` over the shared wire corpus matches every `sure` row of EXPECTED.tsv.

Runs the real command in a subprocess with `--format jsonl`, so the
check covers the cassette reader, the replaying transport, `MeteredTransport`,
the decoders and the JSON output. Skipped when the corpus is absent.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import shared_dir

CORPUS = shared_dir() / "wire-corpus"
EXPECTED_TSV = CORPUS / "EXPECTED.tsv"

if not EXPECTED_TSV.is_file():
    pytest.skip(f"wire corpus not found at {CORPUS}", allow_module_level=True)

METERED_FOLDERS = (
    "openai/chat_json",
    "openai/chat_sse",
    "openai/errors",
    "openai/responses_json",
    "openai/responses_sse",
    "openai/embeddings",
    "azure_openai/embeddings",
    "azure_openai/responses_json",
    "azure_openai/chat_json",
    "azure_openai/chat_sse",
    "anthropic",
    "gemini",
    "mistral",
    "groq",
    "cohere",
    "bedrock",
)
"""Corpus folders whose APIs tokenwire meters today."""

COUNT_COLUMNS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)


def _expected_rows() -> dict[tuple[str, int], dict[str, str]]:
    with EXPECTED_TSV.open(encoding="utf-8", newline="") as file:
        rows = csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {
            (row["local_path"], int(row["interaction_index"])): row
            for row in rows
            if row["confidence"] == "sure"
            and row["local_path"].startswith(tuple(f"{f}/" for f in METERED_FOLDERS))
        }


def _replay() -> dict[tuple[str, int], dict[str, Any]]:
    command = [sys.executable, "-m", "tokenwire.cli", "replay", "--format", "jsonl"]
    command += [str(CORPUS / folder) for folder in METERED_FOLDERS]
    done = subprocess.run(command, capture_output=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    lines: dict[tuple[str, int], dict[str, Any]] = {}
    for line in done.stdout.decode().splitlines():
        row = json.loads(line)
        relative = Path(row["source"]).relative_to(CORPUS).as_posix()
        lines[relative, row["interaction"]] = row
    return lines


EXPECTED = _expected_rows()
REPLAYED = _replay()


def _count(value: str) -> int | None:
    return None if value == "-" else int(value)


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda key: f"{key[0]}#{key[1]}")
def test_replay_matches_expected(key: tuple[str, int]) -> None:
    expected = EXPECTED[key]
    actual = REPLAYED.get(key)

    assert actual is not None, "replay printed no line for this interaction"
    assert actual["metered"] is True
    assert actual["http_status"] == int(expected["http_status"])
    assert actual["stream"] == (expected["streaming"] == "yes")
    if expected["model_as_returned"] != "-":
        assert actual["response_model"] == expected["model_as_returned"]
    for column in COUNT_COLUMNS:
        want = _count(expected[column])
        got = actual[column]
        if want is None:
            assert got in (None, 0), column
        else:
            assert got == want, column


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda key: f"{key[0]}#{key[1]}")
def test_replay_state_matches_expected(key: tuple[str, int]) -> None:
    expected = EXPECTED[key]
    actual = REPLAYED[key]

    if int(expected["http_status"]) >= 400:
        assert actual["state"] == "error"
    elif expected["usage_source"] != "-":
        assert actual["state"] == "complete"
    elif "error" in expected["notes"]:
        assert actual["state"] == "error"
    else:
        assert actual["state"] == "missing"


def test_replay_covers_every_interaction_of_the_folders() -> None:
    assert set(EXPECTED) <= set(REPLAYED)
