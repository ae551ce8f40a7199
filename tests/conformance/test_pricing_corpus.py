"""tokenwire's cost of every body in the genai-prices usage dataset equals the dataset's price.

The dataset (pydantic/genai-prices `tests/dataset/usages.json`) contains reduced
response bodies recorded by pydantic-ai's test cassettes. For each genai-prices
extractor (provider and API flavor) that read a body, it has the price that
genai-prices computed for a request at 2025-11-06T12:00Z (`extract_usages.py`
in the same folder).

Each body goes through tokenwire's own decoder for the route that the
extractor stands for and is priced by `Pricer` at that instant. The cost must
equal the dataset's input plus output price to the last digit, with two
counted exceptions:

- where the installed genai-prices (its extractor and its prices) gives another
  price than the dataset, because data changed since the dataset was made, the
  installed price is the expectation;
- tokenwire leaves a class unpriced where the data has no price for it (which
  genai-prices charges at the parent class's rate) or where the canonical usage
  cannot be split exactly (cached audio on a model with an audio rate).

Extractors for APIs tokenwire does not route are skipped with the reason, and
the whole module is skipped when the corpus is absent.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import warnings
from decimal import Decimal
from typing import Any, Final

import msgspec
import pytest

from tokenwire.decoders.body import ResponseDecoder
from tokenwire.decoders.routing import Route
from tokenwire.pricing import Cost, Pricer

from ..conftest import shared_dir

DATASET = shared_dir() / "pricing-corpus" / "genai-prices-usages.json"

if not DATASET.is_file():
    pytest.skip(f"pricing corpus not found at {DATASET}", allow_module_level=True)

PRICED_AT: Final = dt.datetime(2025, 11, 6, 12, 0, tzinfo=dt.UTC)
"""The request timestamp the dataset's prices were computed for."""

ROUTES: Final[dict[tuple[str, str], Route]] = {
    ("openai", "chat"): Route(provider="openai", api="chat_completions", shape="openai_chat"),
    ("openai", "responses"): Route(provider="openai", api="responses", shape="openai_responses"),
    ("openai", "embeddings"): Route(provider="openai", api="embeddings", shape="openai_chat"),
    ("azure", "chat"): Route(provider="azure_openai", api="chat_completions", shape="openai_chat"),
    ("azure", "responses"): Route(
        provider="azure_openai", api="responses", shape="openai_responses"
    ),
    ("azure", "embeddings"): Route(provider="azure_openai", api="embeddings", shape="openai_chat"),
    # Claude on Azure AI Foundry: the Messages API under *.services.ai.azure.com.
    ("azure", "anthropic"): Route(
        provider="azure_openai", api="messages", shape="anthropic_messages"
    ),
    ("anthropic", "default"): Route(
        provider="anthropic", api="messages", shape="anthropic_messages"
    ),
    # Anthropic's OpenAI-compatible endpoint, api.anthropic.com/v1/chat/completions.
    ("anthropic", "chat"): Route(provider="anthropic", api="chat_completions", shape="openai_chat"),
    ("deepseek", "chat"): Route(provider="deepseek", api="chat_completions", shape="openai_chat"),
    ("groq", "default"): Route(provider="groq", api="chat_completions", shape="openai_chat"),
    ("mistral", "default"): Route(provider="mistral", api="chat_completions", shape="openai_chat"),
    ("openrouter", "chat"): Route(
        provider="openrouter", api="chat_completions", shape="openai_chat"
    ),
    ("fireworks", "chat"): Route(provider="fireworks", api="chat_completions", shape="openai_chat"),
    ("cerebras", "chat"): Route(provider="cerebras", api="chat_completions", shape="openai_chat"),
    ("x-ai", "chat"): Route(provider="xai", api="chat_completions", shape="openai_chat"),
    ("google", "default"): Route(provider="gemini", api="generate_content", shape="gemini"),
    # Gemini's OpenAI-compatible endpoint, generativelanguage.googleapis.com/v1beta/openai.
    ("google", "chat"): Route(provider="gemini", api="chat_completions", shape="openai_chat"),
    # Claude on Vertex AI: rawPredict returns a Messages body.
    ("google", "anthropic"): Route(
        provider="vertex_ai", api="messages", shape="anthropic_messages"
    ),
    ("aws", "default"): Route(provider="bedrock", api="converse", shape="bedrock_converse"),
    # InvokeModel with an Anthropic model returns a Messages body.
    ("aws", "anthropic"): Route(provider="bedrock", api="invoke_model", shape="bedrock_invoke"),
}
"""genai-prices (provider, API flavor) extractors to the tokenwire route of the same API.
Bedrock names the model only in the request path, so those routes take the model the
dataset priced as their request model."""


def _cases() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Return every priced (body, usage, extractor) of the dataset, by extractor."""
    cases: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for body in json.loads(DATASET.read_text(encoding="utf-8")):
        for group in body["extracted"]:
            for extractor in group["extractors"]:
                if "input_price" not in extractor:
                    continue
                key = (extractor["provider_id"], extractor["api_flavor"])
                cases[key].append(
                    {
                        "body": body["body"],
                        "model": body.get("model"),
                        "usage": group["usage"],
                        "price": Decimal(extractor["input_price"])
                        + Decimal(extractor["output_price"]),
                    }
                )
    return dict(cases)


CASES = _cases()


def _skip_reason(key: tuple[str, str]) -> str | None:
    if key in ROUTES:
        return None
    provider, flavor = key
    return f"tokenwire does not route {provider} ({flavor} API) to a known provider"


def _installed_price(case: dict[str, Any], key: tuple[str, str]) -> Decimal | None:
    """Return what the installed genai-prices charges for the body, or None if it cannot.

    The body's usage is extracted again with the installed extractor, because
    extractors, like prices, change between genai-prices versions.
    """
    from genai_prices import calc_price, extract_usage

    provider_id, flavor = key
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extracted = extract_usage(case["body"], provider_id=provider_id, api_flavor=flavor)
            price = calc_price(
                extracted.usage,
                case["model"],
                provider_id=provider_id,
                genai_request_timestamp=PRICED_AT,
            )
    except (LookupError, ValueError):
        return None
    return price.input_price + price.output_price


def _is_chat_body_for_embeddings(case: dict[str, Any], key: tuple[str, str]) -> bool:
    """Whether an embeddings extractor matched a chat response (it reads prompt_tokens only)."""
    usage = case["body"].get("usage") or {}
    return key[1] == "embeddings" and bool(usage.get("completion_tokens"))


def _priced_in_data(cost: Cost, key: tuple[str, str]) -> list[str]:
    """Return the unpriced classes of a cost that do have a price in the installed data."""
    from tokenwire.pricing.catalog import lookup

    entry = lookup(ROUTES[key].provider, cost.model or "")
    if entry is None:
        return list(cost.unpriced)  # genai-prices priced this model, so it must be found
    card = entry.rate_card(PRICED_AT)
    return [name for name in cost.unpriced if name in card.rates]


def _ambiguous_counts(cost: Cost, token_class: str) -> bool:
    """Whether tokenwire left a class unpriced because the usage cannot be split exactly."""
    return any(
        line.token_class == token_class
        and line.note is not None
        and "does not say how many" in line.note
        for line in cost.lines
    )


def _tokenwire_cost(case: dict[str, Any], route: Route, pricer: Pricer) -> tuple[Cost, str]:
    body = msgspec.json.encode(case["body"])
    if route.provider == "bedrock":
        route = msgspec.structs.replace(route, request_model=case["model"])
    decoder = ResponseDecoder(route, 200, "application/json", None)
    decoder.feed(body)
    record = decoder.build_record(eof=True, subscription=None, dimensions={})
    record = msgspec.structs.replace(record, created_at=PRICED_AT)
    usage = {k: v for k, v in msgspec.structs.asdict(record.usage).items() if v and k != "raw"}
    return pricer.price(record), f"state={record.state} usage={usage}"


class Outcome(msgspec.Struct):
    """How the cases of one extractor compared."""

    equal: int = 0
    stale: list[str] = msgspec.field(default_factory=list)
    """The installed genai-prices no longer gives the dataset's price (changed prices or
    extractors); the installed price was the expectation."""
    left_unpriced: list[str] = msgspec.field(default_factory=list)
    """tokenwire left a class unpriced: its price is missing from the data (genai-prices
    charges the parent class's rate), or the usage cannot be split exactly (cached media)."""
    mismatches: list[str] = msgspec.field(default_factory=list)


def compare(key: tuple[str, str]) -> Outcome:
    """Price every comparable case of one extractor with tokenwire and sort the outcomes."""
    route, pricer, outcome = ROUTES[key], Pricer(), Outcome()
    for case in CASES[key]:
        if _is_chat_body_for_embeddings(case, key):
            continue
        cost, detail = _tokenwire_cost(case, route, pricer)
        where = f"{case['body'].get('file')}: model {case['model']!r}"

        if not cost.priced:
            wrongly_unpriced = [
                name for name in _priced_in_data(cost, key) if not _ambiguous_counts(cost, name)
            ]
            if wrongly_unpriced:
                outcome.mismatches.append(
                    f"{where}: {wrongly_unpriced} unpriced but priced in the data ({detail})"
                )
            else:
                outcome.left_unpriced.append(f"{where}: no price for {', '.join(cost.unpriced)}")
            continue

        expected = case["price"]
        installed = _installed_price(case, key)
        if installed is not None and installed != expected:
            outcome.stale.append(f"{where}: dataset {expected}, installed {installed}")
            expected = installed
        if cost.cost_usd == expected:
            outcome.equal += 1
        else:
            outcome.mismatches.append(
                f"{where}: expected {expected}, tokenwire {cost.cost_usd} ({detail})"
            )
    return outcome


@pytest.mark.parametrize("key", sorted(CASES), ids=lambda key: f"{key[0]}-{key[1]}")
def test_corpus_price_matches(key: tuple[str, str]) -> None:
    reason = _skip_reason(key)
    if reason is not None:
        pytest.skip(reason)

    outcome = compare(key)

    assert outcome.equal > 0, f"no body of {key} was priced"
    assert not outcome.mismatches, (
        f"{len(outcome.mismatches)} differ, {outcome.equal} equal:\n"
        + "\n".join(outcome.mismatches[:20])
    )


def test_corpus_exceptions_are_few() -> None:
    outcomes = [compare(key) for key in ROUTES if key in CASES]
    equal = sum(outcome.equal for outcome in outcomes)
    stale = [line for outcome in outcomes for line in outcome.stale]
    left_unpriced = [line for outcome in outcomes for line in outcome.left_unpriced]

    # Nearly every body compares equal to the dataset itself. A few are priced
    # differently by the installed genai-prices (changed prices or extractors), and a
    # few have a class whose price the data lacks. Many of either would mean the
    # dataset no longer tests this genai-prices version.
    assert equal > 2_800
    assert len(stale) <= 10, stale
    assert len(left_unpriced) <= 10, left_unpriced
