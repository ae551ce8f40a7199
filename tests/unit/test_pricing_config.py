"""The pricing configuration: override file prices, markup, and invalid settings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from tokenwire.decoders.providers.openai import chat_usage
from tokenwire.errors import ConfigurationError
from tokenwire.pricing import (
    Markup,
    MarkupPolicy,
    PriceOverride,
    Pricer,
    PricingConfig,
    load_config,
)
from tokenwire.usage import Usage, UsageRecord

MTOK = Decimal(1_000_000)
JAN_2026 = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
DEC_2025 = dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.UTC)

# OpenAI standard rates, https://platform.openai.com/docs/pricing.
GPT_4O = {"input": Decimal("2.50"), "cached": Decimal("1.25"), "output": Decimal("10.00")}
# AWS, https://aws.amazon.com/bedrock/pricing/: Claude Sonnet 4.5, global profile.
BEDROCK_SONNET_4_5_GLOBAL = {"input": Decimal("3.00"), "output": Decimal("15.00")}

PRICES_TOML = """\
[[prices]]
model = "ft:gpt-4o-mini-2024-07-18:acme::*"
provider = "openai"
input_mtok = 0.30
cached_input_mtok = 0.15
output_mtok = 1.20
source = "fine-tuned gpt-4o-mini price list"

[[prices]]
model = "gpt-4o"
provider = "openai"
since = 2026-01-01
input_mtok = "2.00"
cached_input_mtok = "1.00"
output_mtok = 8
source = "negotiated 2026 rate"

[[prices]]
model = "*claude*"
provider = "bedrock"
discount_percent = 12

[[prices]]
model = "gpt-4o"
provider = "openai"
batch = true
input_mtok = 0.90
output_mtok = 3.60

[markup]
percent = 20

[markup.subscriptions]
sub_acme = { multiplier = 1.5 }

[[markup.models]]
model = "claude-*"
percent = 35

[batch_discounts]
bedrock = 40

[service_tiers.openai]
scale = 1.25

[inference_geo.anthropic]
eu = 1.2
"""


def record(
    provider: str,
    usage: Usage,
    *,
    model: str,
    at: dt.datetime = JAN_2026,
    subscription: str | None = "sub_other",
    batch: bool = False,
    service_tier: str | None = None,
) -> UsageRecord:
    model_field = "request_model" if provider == "bedrock" else "response_model"
    return UsageRecord(
        provider=provider,
        api="test",
        state="complete",
        usage=usage,
        created_at=at,
        subscription=subscription,
        batch=batch,
        service_tier=service_tier,
        **{model_field: model},
    )


@pytest.fixture
def pricer(tmp_path: Path) -> Pricer:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES_TOML, encoding="utf-8")
    return Pricer.from_file(path)


# --- overrides -----------------------------------------------------------------------------


def test_override_prices_fine_tuned_model(pricer: Pricer) -> None:
    usage = chat_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 2_000,
            "prompt_tokens_details": {"cached_tokens": 4_000},
        }
    )

    cost = pricer.price(record("openai", usage, model="ft:gpt-4o-mini-2024-07-18:acme::9aBc"))

    expected = (6_000 * Decimal("0.30") + 4_000 * Decimal("0.15") + 2_000 * Decimal("1.20")) / MTOK
    assert cost.cost_usd == expected
    assert cost.cost_usd == Decimal("0.0048")
    assert (
        cost.source == "override 'ft:gpt-4o-mini-2024-07-18:acme::*' for openai "
        "(fine-tuned gpt-4o-mini price list)"
    )


def test_override_wins_over_database_from_its_date(pricer: Pricer) -> None:
    usage = chat_usage({"prompt_tokens": 10_000, "completion_tokens": 2_000})

    negotiated = pricer.price(record("openai", usage, model="gpt-4o", at=JAN_2026))
    before = pricer.price(record("openai", usage, model="gpt-4o", at=DEC_2025))

    assert negotiated.cost_usd == (10_000 * Decimal("2.00") + 2_000 * Decimal(8)) / MTOK
    assert before.cost_usd == (10_000 * GPT_4O["input"] + 2_000 * GPT_4O["output"]) / MTOK
    assert before.source is not None
    assert before.source.startswith("genai-prices ")


def test_override_ignores_other_provider(pricer: Pricer) -> None:
    usage = chat_usage({"prompt_tokens": 10_000, "completion_tokens": 2_000})

    cost = pricer.price(record("azure_openai", usage, model="gpt-4o"))

    assert cost.cost_usd == (10_000 * GPT_4O["input"] + 2_000 * GPT_4O["output"]) / MTOK


def test_discount_override_scales_database_price(pricer: Pricer) -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000)

    cost = pricer.price(
        record("bedrock", usage, model="global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    )

    rates = BEDROCK_SONNET_4_5_GLOBAL
    undiscounted = (10_000 * rates["input"] + 1_000 * rates["output"]) / MTOK
    assert cost.cost_usd == undiscounted * Decimal("0.88")
    assert cost.cost_usd == Decimal("0.0396")


def test_batch_override_entry_is_final_price(pricer: Pricer) -> None:
    usage = chat_usage({"prompt_tokens": 10_000, "completion_tokens": 1_000})

    cost = pricer.price(record("openai", usage, model="gpt-4o", batch=True))

    assert cost.cost_usd == (10_000 * Decimal("0.90") + 1_000 * Decimal("3.60")) / MTOK


def test_batch_discount_from_file_stacks_with_override(pricer: Pricer) -> None:
    usage = Usage(input_tokens=10_000, output_tokens=1_000)

    cost = pricer.price(
        record(
            "bedrock", usage, batch=True, model="global.anthropic.claude-sonnet-4-5-20250929-v1:0"
        )
    )

    rates = BEDROCK_SONNET_4_5_GLOBAL
    standard = (10_000 * rates["input"] + 1_000 * rates["output"]) / MTOK
    # 40% batch discount from the file, then the 12% negotiated discount.
    assert cost.cost_usd == standard * Decimal("0.60") * Decimal("0.88")


def test_service_tier_multiplier_from_file(pricer: Pricer) -> None:
    usage = chat_usage({"prompt_tokens": 10_000, "completion_tokens": 1_000})

    cost = pricer.price(record("openai", usage, model="gpt-4o-mini", service_tier="scale"))

    # gpt-4o-mini: $0.15 input, $0.60 output (https://platform.openai.com/docs/pricing).
    expected = (10_000 * Decimal("0.15") + 1_000 * Decimal("0.60")) * Decimal("1.25") / MTOK
    assert cost.cost_usd == expected


def test_inference_geo_from_file_keeps_published(pricer: Pricer) -> None:
    assert pricer.config.inference_geo_multipliers == {
        "anthropic": {"us": Decimal("1.1"), "eu": Decimal("1.2")}
    }


def test_latest_override_since_wins() -> None:
    config = PricingConfig(
        overrides=(
            PriceOverride(
                model="acme-*", rates={"input": "2", "output": "4"}, since=dt.date(2026, 1, 1)
            ),
            PriceOverride(model="acme-*", rates={"input": "1", "output": "2"}),
        )
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=0)

    cost = Pricer(config).price(record("openai", usage, model="acme-large"))

    assert cost.cost_usd == Decimal(2)


# --- markup --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subscription", "model", "factor"),
    [
        pytest.param("sub_other", "gpt-4o", Decimal("1.20"), id="default-percent"),
        pytest.param("sub_acme", "gpt-4o", Decimal("1.5"), id="subscription-multiplier"),
        pytest.param(
            "sub_other", "claude-sonnet-4-20250514", Decimal("1.35"), id="model-pattern-percent"
        ),
        pytest.param(
            "sub_acme",
            "claude-sonnet-4-20250514",
            Decimal("1.5"),
            id="subscription-wins-over-pattern",
        ),
    ],
)
def test_markup_from_file(pricer: Pricer, subscription: str, model: str, factor: Decimal) -> None:
    provider = "anthropic" if model.startswith("claude") else "openai"
    usage = Usage(input_tokens=10_000, output_tokens=1_000)

    cost = pricer.price(
        record(provider, usage, model=model, subscription=subscription, at=DEC_2025)
    )

    # Standard rates: gpt-4o $2.50/$10; Claude Sonnet 4 $3/$15
    # (https://platform.openai.com/docs/pricing, https://platform.claude.com/docs/en/about-claude/pricing).
    rates = (Decimal(3), Decimal(15)) if provider == "anthropic" else (Decimal("2.5"), Decimal(10))
    expected_cost = (10_000 * rates[0] + 1_000 * rates[1]) / MTOK
    assert cost.cost_usd == expected_cost
    assert cost.billed_usd == expected_cost * factor
    assert cost.margin_usd == expected_cost * factor - expected_cost


def test_markup_in_code_matches_exact_amounts() -> None:
    policy = MarkupPolicy(
        default=Markup.percent(20),
        subscriptions={"sub_acme": Markup.multiplier("1.5")},
        models=(("claude-*", Markup.percent("35")),),
    )
    usage = chat_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 6_000},
        }
    )
    pricer = Pricer(PricingConfig(markup=policy))

    other = pricer.price(record("openai", usage, model="gpt-4o", at=DEC_2025))
    acme = pricer.price(
        record("openai", usage, model="gpt-4o", at=DEC_2025, subscription="sub_acme")
    )

    # Cost: 4,000 x 2.50 + 6,000 x 1.25 + 500 x 10 per million = 0.0225 USD.
    assert other.cost_usd == Decimal("0.0225")
    assert other.billed_usd == Decimal("0.027")
    assert other.margin_usd == Decimal("0.0045")
    assert other.markup == "+20%"
    assert acme.billed_usd == Decimal("0.03375")
    assert acme.markup_source == "subscription 'sub_acme'"


def test_no_markup_bills_cost() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=0)

    cost = Pricer().price(record("openai", usage, model="gpt-4o", at=DEC_2025))

    assert cost.billed_usd == cost.cost_usd == Decimal("0.0025")
    assert cost.markup_factor == 1


def test_negative_percent_markup_discounts() -> None:
    assert Markup.percent("-10").factor == Decimal("0.9")


# --- invalid settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(
            "[[prices]]\ninput_mtok = 1\n", "prices[0].model is missing", id="missing-model"
        ),
        pytest.param('[[prices]]\nmodel = "m"\n', "either price keys", id="no-rates"),
        pytest.param(
            '[[prices]]\nmodel = "m"\ninput_mtok = 1\ndiscount_percent = 5\n',
            "not both",
            id="rates-and-discount",
        ),
        pytest.param(
            '[[prices]]\nmodel = "m"\ninput_mtok = -1\n',
            "prices[0].input_mtok must be zero or more",
            id="negative-rate",
        ),
        pytest.param(
            '[[prices]]\nmodel = "m"\ninput_mtok = "cheap"\n',
            "prices[0].input_mtok must be a decimal number",
            id="text-rate",
        ),
        pytest.param(
            '[[prices]]\nmodel = "m"\ninput_mtok = inf\n',
            "prices[0].input_mtok must be a finite number",
            id="infinite-rate",
        ),
        pytest.param(
            '[[prices]]\nmodel = "m"\ninput_mtk = 1\n',
            "unknown keys ['input_mtk']",
            id="misspelled-key",
        ),
        pytest.param(
            '[[prices]]\nmodel = "m"\ndiscount_percent = 120\n',
            "between 0 and 100",
            id="discount-over-100",
        ),
        pytest.param(
            '[[prices]]\nmodel = "m"\ninput_mtok = 1\nsince = "soon"\n',
            "since must be a date",
            id="bad-since",
        ),
        pytest.param(
            "[markup]\npercent = 10\nmultiplier = 2\n", "keep one", id="percent-and-multiplier"
        ),
        pytest.param(
            "[markup]\nmultiplier = -2\n",
            "markup.multiplier must be zero or more",
            id="negative-multiplier",
        ),
        pytest.param(
            "[markup]\npercent = -150\n",
            "markup.percent must be -100 or more",
            id="percent-below-minus-100",
        ),
        pytest.param(
            "[markup.subscriptions]\nsub_a = {}\n",
            "needs percent or multiplier",
            id="empty-subscription-markup",
        ),
        pytest.param(
            "[[markup.models]]\npercent = 5\n",
            "markup.models[0].model is missing",
            id="pattern-without-model",
        ),
        pytest.param(
            "[batch_discounts]\nbedrock = 150\n",
            "batch_discounts.bedrock",
            id="batch-discount-over-100",
        ),
        pytest.param(
            "[service_tiers]\nopenai = 2\n",
            "service_tiers.openai must be a table",
            id="tier-not-table",
        ),
        pytest.param(
            "[inference_geo.anthropic]\nus = -1\n",
            "inference_geo.anthropic.us must be zero or more",
            id="negative-geo",
        ),
        pytest.param("[markups]\npercent = 10\n", "unknown keys ['markups']", id="unknown-section"),
        pytest.param("[markup\n", "is not valid TOML", id="syntax-error"),
    ],
)
def test_invalid_file_names_setting(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigurationError) as caught:
        load_config(path)

    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the prices file"):
        load_config(tmp_path / "absent.toml")


def test_float_in_code_rejected() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Markup.percent(0.2)  # type: ignore[arg-type]

    assert "markup percent is the float 0.2" in str(caught.value)
    assert "pass a string such as '0.2'" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"rates": {"input": 0.3}}, "is the float 0.3", id="float-rate"),
        pytest.param(
            {"rates": {"inputs": "1"}}, "unknown token classes ['inputs']", id="unknown-class"
        ),
        pytest.param(
            {"rates": {"input": "1"}, "discount_percent": "5"}, "not both", id="rates-and-discount"
        ),
        pytest.param({}, "not both and not neither", id="neither"),
        pytest.param(
            {"rates": {"input": "1"}, "since": dt.datetime(2026, 1, 1)},
            "since must be a date",
            id="datetime-since",
        ),
    ],
)
def test_invalid_override_in_code(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PriceOverride(model="acme-*", **kwargs)  # type: ignore[arg-type]

    assert fragment in str(caught.value)
    assert "PriceOverride(model='acme-*')" in str(caught.value)


def test_toml_float_read_exactly(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[[prices]]\nmodel = "m"\ninput_mtok = 0.1\n', encoding="utf-8")

    [entry] = load_config(path).overrides

    assert entry.decimal_rates() == {"input": Decimal("0.1")}
