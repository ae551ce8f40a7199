"""Exact costs of usage records, checked against published rates written out here.

Every expected value is computed in the test from the rates below (USD per
million tokens), never by calling the code under test. Each rate is written
with the provider pricing page it is published on, which is also the source
genai-prices names for it. Dates are fixed, because prices change: the rates
are the ones in force on that date.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tokenwire.decoders.providers.anthropic import messages_usage
from tokenwire.decoders.providers.bedrock import converse_usage
from tokenwire.decoders.providers.gemini import gemini_usage
from tokenwire.decoders.providers.openai import chat_usage
from tokenwire.decoders.providers.openai_responses import responses_usage
from tokenwire.pricing import Cost, PriceOverride, Pricer, PricingConfig
from tokenwire.usage import Usage, UsageRecord

MTOK = Decimal(1_000_000)
NOV_2025 = dt.datetime(2025, 11, 6, 12, 0, tzinfo=dt.UTC)
NOV_2026 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)

# Anthropic API, https://platform.claude.com/docs/en/about-claude/pricing (model pricing,
# prompt caching: 5-minute writes 1.25x, 1-hour writes 2x, reads 0.1x base input).
SONNET_4 = {
    "input": Decimal("3"),
    "output": Decimal("15"),
    "cache_read": Decimal("0.30"),
    "write_5m": Decimal("3.75"),
    "write_1h": Decimal("6"),
}
# Same page, "long context pricing": Claude Sonnet 4.5 prompts over 200K input tokens
# (fresh input plus cache reads and writes) pay these rates on every token of the request.
SONNET_4_5 = SONNET_4
SONNET_4_5_LONG = {
    "input": Decimal("6"),
    "output": Decimal("22.50"),
    "cache_read": Decimal("0.60"),
    "write_5m": Decimal("7.50"),
    "write_1h": Decimal("12"),
}
# OpenAI, https://platform.openai.com/docs/pricing (standard tier).
GPT_4O = {"input": Decimal("2.50"), "cached": Decimal("1.25"), "output": Decimal("10.00")}
O4_MINI = {"input": Decimal("1.10"), "cached": Decimal("0.275"), "output": Decimal("4.40")}
# Google, https://ai.google.dev/gemini-api/docs/pricing: Gemini 2.5 Flash text (and image,
# video) input, audio input, and the output price, which includes thinking tokens.
GEMINI_2_5_FLASH = {
    "input": Decimal("0.30"),
    "audio_input": Decimal("1.00"),
    "output": Decimal("2.50"),
}
# AWS, https://aws.amazon.com/bedrock/pricing/: Claude Sonnet 4.5 through a global
# cross-region inference profile, and through a geographic (us., eu.) profile at a 10% premium.
BEDROCK_SONNET_4_5_GLOBAL = {"input": Decimal("3.00"), "output": Decimal("15.00")}
BEDROCK_SONNET_4_5_EU = {"input": Decimal("3.30"), "output": Decimal("16.50")}


def record(
    provider: str,
    usage: Usage,
    *,
    response_model: str | None = None,
    request_model: str | None = None,
    at: dt.datetime = NOV_2025,
    batch: bool = False,
    service_tier: str | None = None,
    subscription: str | None = "sub_test",
) -> UsageRecord:
    return UsageRecord(
        provider=provider,
        api="test",
        state="complete",
        usage=usage,
        created_at=at,
        response_model=response_model,
        request_model=request_model,
        batch=batch,
        service_tier=service_tier,
        subscription=subscription,
    )


def line_costs(cost: Cost) -> dict[str, Decimal | None]:
    return {line.token_class: line.cost_usd for line in cost.lines}


def anthropic_usage(fresh: int, read: int, write_5m: int, write_1h: int, output: int) -> Usage:
    """Normalize an Anthropic `usage` object the way the Messages extractor does."""
    return messages_usage(
        {
            "input_tokens": fresh,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write_5m + write_1h,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
            "output_tokens": output,
        }
    )


# --- Anthropic cache reads and writes -------------------------------------------------------


def test_anthropic_cache_reads_writes_and_fresh_input() -> None:
    usage = anthropic_usage(fresh=1_200, read=30_000, write_5m=5_000, write_1h=0, output=800)

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-20250514"))

    expected = (
        1_200 * SONNET_4["input"]
        + 30_000 * SONNET_4["cache_read"]
        + 5_000 * SONNET_4["write_5m"]
        + 800 * SONNET_4["output"]
    ) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.04335")
    assert cost.priced
    assert line_costs(cost) == {
        "input": Decimal("0.0036"),
        "cached_input": Decimal("0.009"),
        "cache_write_5m": Decimal("0.01875"),
        "output": Decimal("0.012"),
    }


def test_anthropic_cache_tokens_not_billed_as_input_too() -> None:
    usage = anthropic_usage(fresh=1_200, read=30_000, write_5m=5_000, write_1h=0, output=800)

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-20250514"))

    [input_line] = [line for line in cost.lines if line.token_class == "input"]
    assert input_line.tokens == 1_200


@pytest.mark.parametrize(
    ("write_5m", "write_1h", "expected"),
    [
        pytest.param(10_000, 0, 10_000 * SONNET_4["write_5m"] / MTOK, id="5m"),
        pytest.param(0, 10_000, 10_000 * SONNET_4["write_1h"] / MTOK, id="1h"),
        pytest.param(
            4_000,
            6_000,
            (4_000 * SONNET_4["write_5m"] + 6_000 * SONNET_4["write_1h"]) / MTOK,
            id="mixed",
        ),
    ],
)
def test_cache_write_ttl_prices(write_5m: int, write_1h: int, expected: Decimal) -> None:
    usage = anthropic_usage(fresh=0, read=0, write_5m=write_5m, write_1h=write_1h, output=0)

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-20250514"))

    assert cost.cost_usd == expected


def test_one_hour_writes_cost_more_than_five_minute() -> None:
    five = anthropic_usage(fresh=0, read=0, write_5m=10_000, write_1h=0, output=0)
    hour = anthropic_usage(fresh=0, read=0, write_5m=0, write_1h=10_000, output=0)
    pricer = Pricer()

    cost_5m = pricer.price(record("anthropic", five, response_model="claude-sonnet-4-20250514"))
    cost_1h = pricer.price(record("anthropic", hour, response_model="claude-sonnet-4-20250514"))

    assert cost_5m.cost_usd == Decimal("0.0375")
    assert cost_1h.cost_usd == Decimal("0.06")


def test_unsplit_cache_write_five_minute_price() -> None:
    usage = messages_usage(
        {"input_tokens": 10, "cache_creation_input_tokens": 2_000, "output_tokens": 0}
    )

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-20250514"))

    assert line_costs(cost)["cache_write"] == 2_000 * SONNET_4["write_5m"] / MTOK
    assert cost.cost_usd == (10 * SONNET_4["input"] + 2_000 * SONNET_4["write_5m"]) / MTOK


def test_bedrock_one_hour_write_uses_anthropic_rule() -> None:
    # genai-prices has no 1-hour write price for Claude Sonnet 4 on Bedrock; Anthropic's
    # published rule (2x base input) applies, and the line's note names the rule.
    usage = converse_usage(
        {
            "inputTokens": 1_000,
            "cacheWriteInputTokens": 2_000,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 2_000}],
            "outputTokens": 10,
        }
    )
    profile = "us.anthropic.claude-sonnet-4-20250514-v1:0"

    cost = Pricer().price(record("bedrock", usage, request_model=profile))

    expected = (1_000 * Decimal(3) + 2_000 * 2 * Decimal(3) + 10 * Decimal(15)) / MTOK
    assert cost.cost_usd == expected
    [write] = [line for line in cost.lines if line.token_class == "cache_write_1h"]
    assert write.usd_per_unit == Decimal(6)
    assert write.note is not None
    assert write.note.startswith("rule: 2x base input")


def test_one_hour_write_without_price_unpriced() -> None:
    # An override that gives only an unsplit write price: 1-hour writes stay unpriced.
    config = PricingConfig(
        overrides=(
            PriceOverride(
                model="private-model", rates={"input": "1", "cache_write": "1.25", "output": "5"}
            ),
        )
    )
    usage = Usage(
        input_tokens=100,
        cache_creation_tokens=1_000,
        cache_creation_1h_tokens=1_000,
        cache_creation_5m_tokens=0,
        output_tokens=10,
    )

    cost = Pricer(config).price(record("openai", usage, response_model="private-model"))

    assert cost.unpriced == ("cache_write_1h",)
    assert not cost.priced
    assert cost.cost_usd == (100 * Decimal(1) + 10 * Decimal(5)) / MTOK


# --- long context --------------------------------------------------------------------------


def test_long_context_over_threshold_moves_every_class() -> None:
    # 150,000 fresh + 40,000 read + 5,001 + 5,000 written = 200,001 input tokens.
    usage = anthropic_usage(
        fresh=150_000, read=40_000, write_5m=5_001, write_1h=5_000, output=1_000
    )

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-5-20250929"))

    long = SONNET_4_5_LONG
    expected = (
        150_000 * long["input"]
        + 40_000 * long["cache_read"]
        + 5_001 * long["write_5m"]
        + 5_000 * long["write_1h"]
        + 1_000 * long["output"]
    ) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("1.0440075")
    assert {line.token_class: line.usd_per_unit for line in cost.lines} == {
        "input": long["input"],
        "cached_input": long["cache_read"],
        "cache_write_5m": long["write_5m"],
        "cache_write_1h": long["write_1h"],
        "output": long["output"],
    }


def test_long_context_exactly_at_threshold_stays_base() -> None:
    # 150,000 fresh + 40,000 read + 5,000 + 5,000 written = exactly 200,000 input tokens.
    usage = anthropic_usage(
        fresh=150_000, read=40_000, write_5m=5_000, write_1h=5_000, output=1_000
    )

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-5-20250929"))

    base = SONNET_4_5
    expected = (
        150_000 * base["input"]
        + 40_000 * base["cache_read"]
        + 5_000 * base["write_5m"]
        + 5_000 * base["write_1h"]
        + 1_000 * base["output"]
    ) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.52575")


# --- OpenAI --------------------------------------------------------------------------------


def test_openai_cached_input_is_subset_of_prompt() -> None:
    usage = chat_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 500,
            "total_tokens": 10_500,
            "prompt_tokens_details": {"cached_tokens": 6_000},
        }
    )

    cost = Pricer().price(record("openai", usage, response_model="gpt-4o-2024-08-06"))

    expected = (4_000 * GPT_4O["input"] + 6_000 * GPT_4O["cached"] + 500 * GPT_4O["output"]) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.0225")


def test_openai_responses_cached_input_is_subset() -> None:
    usage = responses_usage(
        {
            "input_tokens": 10_000,
            "input_tokens_details": {"cached_tokens": 6_000},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 10_500,
        }
    )

    cost = Pricer().price(record("openai", usage, response_model="gpt-4o"))

    assert cost.cost_usd == Decimal("0.0225")


def test_reasoning_tokens_not_billed_twice() -> None:
    usage = chat_usage(
        {
            "prompt_tokens": 2_000,
            "completion_tokens": 5_000,
            "completion_tokens_details": {"reasoning_tokens": 4_000},
        }
    )

    cost = Pricer().price(record("openai", usage, response_model="o4-mini-2025-04-16"))

    # Reasoning is inside the 5,000 completion tokens and priced with them, once.
    expected = (2_000 * O4_MINI["input"] + 5_000 * O4_MINI["output"]) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.0242")
    assert [line.token_class for line in cost.lines] == ["input", "output"]


# --- Gemini --------------------------------------------------------------------------------


def test_gemini_thoughts_at_output_rate() -> None:
    # candidatesTokenCount excludes thoughtsTokenCount; both are billed as output.
    usage = gemini_usage(
        {"promptTokenCount": 1_000, "candidatesTokenCount": 200, "thoughtsTokenCount": 800}
    )

    cost = Pricer().price(record("gemini", usage, response_model="gemini-2.5-flash"))

    expected = (1_000 * GEMINI_2_5_FLASH["input"] + (200 + 800) * GEMINI_2_5_FLASH["output"]) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.0028")


def test_gemini_audio_input_at_audio_rate() -> None:
    usage = gemini_usage(
        {
            "promptTokenCount": 1_000,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 600},
                {"modality": "AUDIO", "tokenCount": 400},
            ],
            "candidatesTokenCount": 100,
        }
    )

    cost = Pricer().price(record("gemini", usage, response_model="gemini-2.5-flash"))

    expected = (
        600 * GEMINI_2_5_FLASH["input"]
        + 400 * GEMINI_2_5_FLASH["audio_input"]
        + 100 * GEMINI_2_5_FLASH["output"]
    ) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.00083")


def test_gemini_cached_audio_split_unknown_unpriced() -> None:
    # 321 audio tokens in a prompt that also read 2,918 tokens from the cache: how many
    # of the audio tokens were cache reads is not in the canonical usage.
    usage = gemini_usage(
        {
            "promptTokenCount": 3_297,
            "cachedContentTokenCount": 2_918,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 2_976},
                {"modality": "AUDIO", "tokenCount": 321},
            ],
            "candidatesTokenCount": 55,
        }
    )

    cost = Pricer().price(record("gemini", usage, response_model="gemini-2.5-flash"))

    assert cost.unpriced == ("input", "cached_input", "audio_input")
    assert cost.cost_usd == 55 * GEMINI_2_5_FLASH["output"] / MTOK


def test_gemini_resource_name_is_reduced_to_model_id() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=1_000)

    cost = Pricer().price(record("gemini", usage, request_model="models/gemini-2.5-flash"))

    assert cost.model == "gemini-2.5-flash"
    assert cost.cost_usd == Decimal("0.0028")


# --- Bedrock inference profiles ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "rates"),
    [
        pytest.param(
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", BEDROCK_SONNET_4_5_EU, id="eu-profile"
        ),
        pytest.param(
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            BEDROCK_SONNET_4_5_GLOBAL,
            id="global-profile",
        ),
        pytest.param(
            "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/"
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            BEDROCK_SONNET_4_5_EU,
            id="eu-profile-arn",
        ),
        pytest.param(
            "eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0",
            BEDROCK_SONNET_4_5_EU,
            id="eu-profile-url-encoded",
        ),
    ],
)
def test_bedrock_profile_prefix_selects_price(model_id: str, rates: dict[str, Decimal]) -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000)

    cost = Pricer().price(
        record(
            "bedrock", usage, request_model=model_id, response_model="claude-sonnet-4-5-20250929"
        )
    )

    assert cost.cost_usd == (10_000 * rates["input"] + 1_000 * rates["output"]) / MTOK


def test_bedrock_eu_profile_costs_ten_percent_more() -> None:
    usage = converse_usage({"inputTokens": 10_000, "outputTokens": 1_000, "totalTokens": 11_000})
    pricer = Pricer()

    eu = pricer.price(
        record("bedrock", usage, request_model="eu.anthropic.claude-sonnet-4-5-20250929-v1:0")
    )
    world = pricer.price(
        record("bedrock", usage, request_model="global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    )

    assert eu.cost_usd == Decimal("0.0495")
    assert world.cost_usd == Decimal("0.045")


def test_bedrock_application_profile_arn_unpriced() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4"
    usage = Usage(input_tokens=10, output_tokens=1)

    cost = Pricer().price(
        record("bedrock", usage, request_model=arn, response_model="claude-sonnet-4-5-20250929")
    )

    assert cost.unpriced == ("input", "output")
    assert cost.unpriced_reason is not None
    assert "a1b2c3d4" in cost.unpriced_reason


# --- batch and service tiers ---------------------------------------------------------------


def test_batch_result_gets_published_discount() -> None:
    # The price data has no batch price for Claude Sonnet 4; Anthropic publishes Message
    # Batches at 50% of standard prices
    # (https://platform.claude.com/docs/en/build-with-claude/batch-processing).
    usage = anthropic_usage(fresh=1_000, read=0, write_5m=0, write_1h=0, output=1_000)

    cost = Pricer().price(
        record("anthropic", usage, response_model="claude-sonnet-4-20250514", batch=True)
    )

    half = Decimal("0.5")
    expected = (1_000 * SONNET_4["input"] * half + 1_000 * SONNET_4["output"] * half) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.009")
    assert any("batch: 50% off" in note for note in cost.notes)


def test_batch_service_tier_reported_by_anthropic() -> None:
    usage = anthropic_usage(fresh=1_000, read=0, write_5m=0, write_1h=0, output=1_000)

    cost = Pricer().price(
        record("anthropic", usage, response_model="claude-sonnet-4-20250514", service_tier="batch")
    )

    assert cost.cost_usd == Decimal("0.009")


def test_batch_price_from_data_when_it_has_one() -> None:
    # From 2026-10-14 genai-prices carries gpt-4o batch prices: input $1.25, output $5.00,
    # matching https://platform.openai.com/docs/pricing (Batch tab).
    usage = chat_usage({"prompt_tokens": 2_000, "completion_tokens": 100})

    cost = Pricer().price(record("openai", usage, response_model="gpt-4o", at=NOV_2026, batch=True))

    assert cost.cost_usd == (2_000 * Decimal("1.25") + 100 * Decimal("5.00")) / MTOK
    assert any(note.startswith("batch prices from genai-prices") for note in cost.notes)


def test_batch_without_known_discount_unpriced() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000)

    cost = Pricer().price(
        record(
            "bedrock",
            usage,
            batch=True,
            request_model="global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        )
    )

    assert cost.unpriced == ("input", "output")
    assert cost.cost_usd == 0
    assert cost.unpriced_reason is not None
    assert "[batch_discounts]" in cost.unpriced_reason


def test_batch_discount_from_config() -> None:
    config = PricingConfig(batch_discounts={"bedrock": Decimal(50)})
    usage = Usage(input_tokens=10_000, output_tokens=1_000)

    cost = Pricer(config).price(
        record(
            "bedrock",
            usage,
            batch=True,
            request_model="global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        )
    )

    rates = BEDROCK_SONNET_4_5_GLOBAL
    assert cost.cost_usd == (10_000 * rates["input"] + 1_000 * rates["output"]) / 2 / MTOK


def test_service_tier_price_from_data() -> None:
    # OpenAI priority processing for gpt-5, https://platform.openai.com/docs/pricing
    # (Priority tab): input $2.50, output $20.00; in genai-prices from 2026-10-12.
    usage = chat_usage({"prompt_tokens": 1_000, "completion_tokens": 1_000})

    cost = Pricer().price(
        record(
            "openai", usage, response_model="gpt-5-2025-08-07", at=NOV_2026, service_tier="priority"
        )
    )

    assert cost.cost_usd == (1_000 * Decimal("2.50") + 1_000 * Decimal("20.00")) / MTOK


def test_standard_service_tier_names_priced_as_standard() -> None:
    usage = chat_usage({"prompt_tokens": 1_000, "completion_tokens": 1_000})
    pricer = Pricer()

    costs = {
        tier: pricer.price(record("openai", usage, response_model="gpt-4o", service_tier=tier))
        for tier in (None, "default")
    }

    expected = (1_000 * GPT_4O["input"] + 1_000 * GPT_4O["output"]) / MTOK
    assert costs[None].cost_usd == expected
    assert costs["default"].cost_usd == expected


def test_unknown_service_tier_unpriced() -> None:
    usage = chat_usage({"prompt_tokens": 1_000, "completion_tokens": 1_000})

    cost = Pricer().price(record("openai", usage, response_model="gpt-4o", service_tier="scale"))

    assert not cost.priced
    assert cost.unpriced_reason is not None
    assert "[service_tiers.openai]" in cost.unpriced_reason


def test_service_tier_multiplier_from_config() -> None:
    config = PricingConfig(service_tier_multipliers={"openai": {"scale": Decimal("1.5")}})
    usage = chat_usage({"prompt_tokens": 1_000, "completion_tokens": 1_000})

    cost = Pricer(config).price(
        record("openai", usage, response_model="gpt-4o", service_tier="scale")
    )

    expected = (1_000 * GPT_4O["input"] + 1_000 * GPT_4O["output"]) * Decimal("1.5") / MTOK
    assert cost.cost_usd == expected


# --- inference geography -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("geo", "multiplier"),
    [
        # https://docs.aws.amazon.com/claude-platform/latest/userguide/data-residency.html:
        # "us" inference costs 1.1x, "global" the standard price.
        pytest.param("us", Decimal("1.1"), id="us"),
        pytest.param("global", Decimal(1), id="global"),
        pytest.param("not_available", Decimal(1), id="not-available"),
    ],
)
def test_inference_geo_multiplier(geo: str, multiplier: Decimal) -> None:
    usage = messages_usage({"input_tokens": 1_000, "output_tokens": 100, "inference_geo": geo})

    cost = Pricer().price(
        record("anthropic", usage, response_model="claude-sonnet-4-6", at=NOV_2026)
    )

    # Claude Sonnet 4.6: $3 input, $15 output per million tokens.
    assert cost.cost_usd == (1_000 * Decimal(3) + 100 * Decimal(15)) * multiplier / MTOK


def test_unknown_inference_geo_unpriced() -> None:
    usage = messages_usage({"input_tokens": 1_000, "output_tokens": 100, "inference_geo": "eu"})

    cost = Pricer().price(
        record("anthropic", usage, response_model="claude-sonnet-4-6", at=NOV_2026)
    )

    assert cost.unpriced == ("input", "output")
    assert cost.unpriced_reason is not None
    assert "[inference_geo.anthropic]" in cost.unpriced_reason


def test_inference_geo_multiplier_from_config() -> None:
    config = PricingConfig(inference_geo_multipliers={"anthropic": {"eu": Decimal("1.2")}})
    usage = messages_usage({"input_tokens": 1_000, "output_tokens": 100, "inference_geo": "eu"})

    cost = Pricer(config).price(
        record("anthropic", usage, response_model="claude-sonnet-4-6", at=NOV_2026)
    )

    assert cost.cost_usd == (1_000 * Decimal(3) + 100 * Decimal(15)) * Decimal("1.2") / MTOK


# --- unpriced and edge cases ---------------------------------------------------------------


def test_unknown_model_unpriced() -> None:
    usage = Usage(input_tokens=10, output_tokens=1)

    cost = Pricer().price(record("openai", usage, response_model="acme-private-1"))

    assert cost.unpriced == ("input", "output")
    assert cost.cost_usd == 0
    assert cost.billed_usd == 0
    assert cost.unpriced_reason is not None
    assert "'acme-private-1'" in cost.unpriced_reason


def test_record_without_model_unpriced() -> None:
    cost = Pricer().price(record("openai", Usage(input_tokens=10, output_tokens=1)))

    assert cost.unpriced == ("input", "output")
    assert cost.unpriced_reason == "the record names no model"


def test_record_without_counts_costs_nothing() -> None:
    empty = UsageRecord(
        provider="openai", api="chat_completions", state="missing", response_model="gpt-4o"
    )

    cost = Pricer().price(empty)

    assert cost.lines == ()
    assert cost.priced
    assert cost.cost_usd == 0


def test_cache_read_without_price_unpriced() -> None:
    # Claude 3 Haiku on Bedrock has no cache-read price, and no published rule gives one.
    usage = Usage(input_tokens=100, cached_input_tokens=1_000, output_tokens=10)

    cost = Pricer().price(
        record("bedrock", usage, request_model="anthropic.claude-3-haiku-20240307-v1:0")
    )

    assert cost.unpriced == ("cached_input",)
    assert cost.cost_usd == (100 * Decimal("0.25") + 10 * Decimal("1.25")) / MTOK


def test_costs_are_exact_decimals() -> None:
    usage = anthropic_usage(fresh=1, read=1, write_5m=1, write_1h=1, output=1)

    cost = Pricer().price(record("anthropic", usage, response_model="claude-sonnet-4-20250514"))

    # 3 + 0.30 + 3.75 + 6 + 15 = 28.05 USD per million: 0.00002805 USD, no rounding.
    assert cost.cost_usd == Decimal("0.00002805")
    assert all(isinstance(line.cost_usd, Decimal) for line in cost.lines)


def test_price_follows_record_date() -> None:
    # o3 cost $10 / $40 until 2025-06-10 and $2 / $8 from then on
    # (https://platform.openai.com/docs/pricing; genai-prices dates the change).
    usage = chat_usage({"prompt_tokens": 1_000, "completion_tokens": 1_000})
    pricer = Pricer()

    before = pricer.price(
        record("openai", usage, response_model="o3", at=dt.datetime(2025, 6, 9, tzinfo=dt.UTC))
    )
    after = pricer.price(
        record("openai", usage, response_model="o3", at=dt.datetime(2025, 6, 10, tzinfo=dt.UTC))
    )

    assert before.cost_usd == (1_000 * Decimal(10) + 1_000 * Decimal(40)) / MTOK
    assert after.cost_usd == (1_000 * Decimal(2) + 1_000 * Decimal(8)) / MTOK
