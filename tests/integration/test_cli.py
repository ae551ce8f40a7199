"""The `tokenwire` command: demo, replay and report, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokenwire.demo import expected_total_tokens

CASSETTE = """\
interactions:
- request:
    method: POST
    uri: https://api.openai.com/v1/chat/completions
    headers:
      content-type: [application/json]
    body: '{"model": "gpt-4o-mini", "messages": []}'
  response:
    status: {code: 200, message: OK}
    headers:
      content-type: [application/json]
    body:
      string: '{"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18", "usage":
        {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37,
        "prompt_tokens_details": {"cached_tokens": 10}}}'
- request:
    method: POST
    uri: https://api.anthropic.com/v1/messages
    headers:
      content-type: [application/json]
    body: '{"model": "claude-sonnet-4-5", "messages": []}'
  response:
    status: {code: 401, message: Unauthorized}
    headers:
      content-type: [application/json]
    body:
      string: '{"type": "error", "error": {"type": "authentication_error"}}'
- request:
    method: GET
    uri: https://api.openai.com/v1/models
    headers: {}
    body: null
  response:
    status: {code: 200, message: OK}
    headers:
      content-type: [application/json]
    body:
      string: '{"data": []}'
"""


def _tokenwire(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenwire.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    ledger = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    done = _tokenwire("demo", "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    return ledger, done.stdout


def test_demo_reports_fixture_totals(demo_run: tuple[Path, str]) -> None:
    ledger, stdout = demo_run

    assert "sub_acme" in stdout
    assert "sub_globex" in stdout
    openai_total = 2 * sum(expected_total_tokens("openai", stream) for stream in (False, True))
    assert f"sub_acme: {openai_total:,} tokens in the ledger" in stdout
    assert "DIFFERS" not in stdout
    assert ledger.exists()


def test_demo_again_gives_same_totals(demo_run: tuple[Path, str]) -> None:
    _, first = demo_run

    second = _tokenwire("demo").stdout

    lines = [
        [line for line in stdout.splitlines() if "tokens in the ledger" in line]
        for stdout in (first, second)
    ]
    assert lines[0] == lines[1]
    assert len(lines[0]) == 2


def test_replay_jsonl_lines(tmp_path: Path) -> None:
    cassette = tmp_path / "calls.yaml"
    cassette.write_text(CASSETTE)

    done = _tokenwire("replay", str(tmp_path), "--format", "jsonl")

    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["interaction"] for row in rows] == [0, 1, 2]
    chat, error, models = rows
    assert chat["source"] == str(cassette)
    assert (chat["provider"], chat["api"], chat["state"]) == (
        "openai",
        "chat_completions",
        "complete",
    )
    assert (chat["input_tokens"], chat["cached_input_tokens"], chat["output_tokens"]) == (20, 10, 7)
    assert chat["total_tokens"] == 37
    assert chat["request_model"] == "gpt-4o-mini"
    assert chat["response_model"] == "gpt-4o-mini-2024-07-18"
    assert chat["record_id"]
    assert (error["state"], error["http_status"]) == ("error", 401)
    assert models["metered"] is False


def test_replay_bad_file_reported_and_rest_replayed(tmp_path: Path) -> None:
    (tmp_path / "a_broken.yaml").write_text("interactions: [unclosed")
    (tmp_path / "b_good.yaml").write_text(CASSETTE)

    done = _tokenwire("replay", str(tmp_path), "--format", "jsonl")

    assert done.returncode == 1
    assert "a_broken.yaml" in done.stderr
    assert len(done.stdout.splitlines()) == 3


def test_replay_missing_path_fails(tmp_path: Path) -> None:
    done = _tokenwire("replay", str(tmp_path / "nope"), "--format", "jsonl")

    assert done.returncode != 0
    assert "nope" in done.stderr


def test_report_without_ledger_explains(tmp_path: Path) -> None:
    done = _tokenwire("report", "--ledger", str(tmp_path / "missing.sqlite3"))

    assert done.returncode == 2
    assert "no ledger" in done.stderr


@pytest.mark.parametrize("group", ["subscription", "model"])
def test_report_groups_demo_ledger(demo_run: tuple[Path, str], group: str) -> None:
    ledger, _ = demo_run

    done = _tokenwire("report", "--ledger", str(ledger), "--by", group)

    assert done.returncode == 0, done.stderr
    expected = "sub_globex" if group == "subscription" else "claude-sonnet-4-5-20250929"
    assert expected in done.stdout
