"""Load every cassette of the shared wire corpus and compare it with EXPECTED.tsv.

The corpus is found through TOKENWIRE_SHARED (default: the folder "shared" beside
the repository root). The module is skipped when the corpus is absent.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from tokenwire.testing.cassettes import Interaction, find_cassettes, load_cassette

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TOKENWIRE_SHARED", REPOSITORY_ROOT.parent / "shared"))
CORPUS = SHARED / "wire-corpus"
EXPECTED_TSV = CORPUS / "EXPECTED.tsv"

if not EXPECTED_TSV.is_file():
    pytest.skip(f"wire corpus not found at {CORPUS}", allow_module_level=True)


def read_expected_rows() -> list[dict[str, str]]:
    with EXPECTED_TSV.open(encoding="utf-8", newline="") as file:
        # Notes and raw usage contain quotes, so no field is quoted.
        return list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))


EXPECTED_ROWS = read_expected_rows()
EXPECTED_BY_FILE: dict[str, dict[int, dict[str, str]]] = {}
for row in EXPECTED_ROWS:
    EXPECTED_BY_FILE.setdefault(row["local_path"], {})[int(row["interaction_index"])] = row

CASSETTE_FILES = [path.relative_to(CORPUS).as_posix() for path in find_cassettes([CORPUS])]


@functools.cache
def load(relative_path: str) -> list[Interaction]:
    return load_cassette(CORPUS / relative_path)


def header_values(interaction: Interaction, name: str) -> list[str]:
    return [value for key, value in interaction.response.headers if key.lower() == name]


def test_corpus_files_match_expected_rows() -> None:
    assert sorted(CASSETTE_FILES) == sorted(EXPECTED_BY_FILE)


def test_expected_rows_unique() -> None:
    keys = Counter((row["local_path"], row["interaction_index"]) for row in EXPECTED_ROWS)

    assert [key for key, count in keys.items() if count > 1] == []


@pytest.mark.parametrize("relative_path", CASSETTE_FILES)
def test_interaction_count_matches_expected(relative_path: str) -> None:
    expected_indexes = sorted(EXPECTED_BY_FILE.get(relative_path, {}))

    interactions = load(relative_path)

    assert [interaction.index for interaction in interactions] == expected_indexes


@pytest.mark.parametrize("relative_path", CASSETTE_FILES)
def test_status_matches_expected(relative_path: str) -> None:
    expected = EXPECTED_BY_FILE.get(relative_path, {})

    for interaction in load(relative_path):
        row = expected[interaction.index]
        assert interaction.response.status == int(row["http_status"]), interaction.index


@pytest.mark.parametrize("relative_path", CASSETTE_FILES)
def test_body_form_matches_expected(relative_path: str) -> None:
    # recorded_body_form opens with "string", "binary(...)" or "parsed_body(...)".
    expected = EXPECTED_BY_FILE.get(relative_path, {})

    for interaction in load(relative_path):
        recorded_form = expected[interaction.index]["recorded_body_form"]
        assert recorded_form.startswith(interaction.response.body_form), interaction.index


@pytest.mark.parametrize("relative_path", CASSETTE_FILES)
def test_gzip_bodies_decompress(relative_path: str) -> None:
    for interaction in load(relative_path):
        if "gzip" in header_values(interaction, "content-encoding"):
            assert gzip.decompress(interaction.response.body), interaction.index


@pytest.mark.parametrize("relative_path", CASSETTE_FILES)
def test_parsed_bodies_are_json(relative_path: str) -> None:
    for interaction in load(relative_path):
        if interaction.response.body_form == "parsed_body":
            assert isinstance(json.loads(interaction.response.body), dict | list), interaction.index
            assert header_values(interaction, "content-encoding") == [], interaction.index


def test_gzip_header_over_plain_body_dropped() -> None:
    marked = [
        (row["local_path"], int(row["interaction_index"]))
        for row in EXPECTED_ROWS
        if "enc-header-but-not-gzipped" in row["recorded_body_form"]
    ]
    assert marked, "EXPECTED.tsv no longer marks a gzip header over a plain body"

    for relative_path, index in marked:
        interaction = load(relative_path)[index]
        assert header_values(interaction, "content-encoding") == [], relative_path
        assert not interaction.response.body.startswith(b"\x1f\x8b"), relative_path


@pytest.mark.parametrize("relative_path", CASSETTE_FILES)
def test_no_transfer_encoding_and_lengths_agree(relative_path: str) -> None:
    for interaction in load(relative_path):
        for message in (interaction.request, interaction.response):
            names = [name.lower() for name, _ in message.headers]
            lengths = [value for name, value in message.headers if name.lower() == "content-length"]
            body_length = len(message.body or b"")
            assert "transfer-encoding" not in names, interaction.index
            assert all(int(length) == body_length for length in lengths), interaction.index
