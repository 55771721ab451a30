"""Token usage and cost: the price table, dated model names, unknown models, ``register_price``."""

from __future__ import annotations

import pytest

from react_agent import Usage, register_price
from react_agent.usage import PRICES, Price, price_for


@pytest.fixture(autouse=True)
def restore_prices():
    saved = dict(PRICES)
    yield
    PRICES.clear()
    PRICES.update(saved)


def test_cost_counts_cached_tokens_at_the_cached_rate():
    usage = Usage.of_request("gpt-4o", 1000, 100, 400, 25.0)
    # 600 fresh input at $2.50/M + 400 cached at $1.25/M + 100 output at $10/M
    assert usage.cost_usd == pytest.approx((600 * 2.50 + 400 * 1.25 + 100 * 10.00) / 1e6)
    assert (usage.requests, usage.total_tokens, usage.cached_tokens, usage.latency_ms) == (1, 1100, 400, 25.0)


def test_without_a_cached_rate_cached_tokens_cost_the_input_rate():
    register_price("house-model", 1.0, 2.0)
    assert Usage.of_request("house-model", 1000, 500, 600, 0).cost_usd == pytest.approx((1000 + 1000) / 1e6)


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
    ("gpt-5", "gpt-5"),
])
def test_dated_names_match_the_longest_prefix(model, expected):
    assert price_for(model) == PRICES[expected]


@pytest.mark.parametrize("model", ["llama-3-70b", "gpt-4omni", "scripted", "gpt-4"])
def test_unknown_models_have_no_cost(model):
    assert price_for(model) is None
    assert Usage.of_request(model, 10, 10, 0, 0).cost_usd is None


def test_register_price_adds_and_overrides():
    register_price("acme-llm", 1.0, 4.0, 0.5)
    assert price_for("acme-llm-2025-01-01") == Price(1.0, 4.0, 0.5)
    assert Usage.of_request("acme-llm", 2_000_000, 1_000_000, 1_000_000, 0).cost_usd == pytest.approx(5.5)
    register_price("gpt-4o-mini", 0.0, 0.0)
    assert Usage.of_request("gpt-4o-mini-2024-07-18", 1000, 1000, 0, 0).cost_usd == 0.0


def test_add_accumulates_and_unknown_cost_sticks():
    total = Usage()
    total.add(Usage.of_request("gpt-4o-mini", 100, 10, 0, 5.0))
    total.add(Usage.of_request("gpt-4o-mini", 200, 20, 50, 7.0))
    assert (total.requests, total.prompt_tokens, total.completion_tokens, total.cached_tokens) == (2, 300, 30, 50)
    assert total.latency_ms == 12.0
    assert total.cost_usd == pytest.approx((250 * 0.15 + 50 * 0.075 + 30 * 0.60) / 1e6)
    total.add(Usage.of_request("mystery", 1, 1, 0, 0))
    assert total.cost_usd is None
    total.add(Usage.of_request("gpt-4o-mini", 1, 1, 0, 0))
    assert total.cost_usd is None
    assert total.total_tokens == 334
