"""Tokens, latency and cost. Cost comes from a price table the user can extend; an unknown model
has cost ``None`` — never a guess."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .stores.base import RunRecord

__all__ = [
    "PRICES", "ModelUsage", "Price", "Usage", "UserTotals", "by_model_name", "format_cost", "price_for",
    "register_price", "sum_costs", "totals_by_user",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None


# Published list prices (USD per 1M tokens). Extend with ``register_price``.
PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "local": Price(0.0, 0.0, 0.0),  # the embedded llama.cpp model runs on this machine
}


def register_price(model: str, input: float, output: float, cached_input: float | None = None) -> None:
    """Add or override a model's price (USD per million tokens)."""
    PRICES[model] = Price(input, output, cached_input)


def by_model_name(table: dict[str, T], model: str) -> T | None:
    """Exact name first, then the longest known prefix (``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``)."""
    if model in table:
        return table[model]
    best = max((name for name in table if model.startswith(name + "-")), key=len, default=None)
    return table[best] if best else None


def price_for(model: str) -> Price | None:
    return by_model_name(PRICES, model)


def sum_costs(costs: Iterable[float | None]) -> float | None:
    """The total, or ``None`` as soon as one part is unknown (an unknown price is not zero)."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


def format_cost(cost: float | None) -> str:
    return "n/a" if cost is None else f"${cost:.4f}"


class ModelUsage(BaseModel):
    """One model's share of a ``Usage`` (with fallback models, a run's requests may go to several)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0

    def add(self, other: ModelUsage) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd = sum_costs((self.cost_usd, other.cost_usd))


class Usage(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0  # reasoning tokens included: they are billed as output
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # of completion_tokens, the model's hidden reasoning (o-series, gpt-5)
    latency_ms: float = 0.0
    cost_usd: float | None = 0.0
    by_model: dict[str, ModelUsage] = Field(default_factory=dict)  # the same, per model that answered

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of_request(
        cls, model: str, prompt: int, completion: int, cached: int, latency_ms: float, *, reasoning: int = 0
    ) -> Usage:
        price = price_for(model)
        cost = None
        if price is not None:
            cached_rate = price.cached_input if price.cached_input is not None else price.input
            cost = ((prompt - cached) * price.input + cached * cached_rate + completion * price.output) / 1e6
        return cls(
            requests=1, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
            reasoning_tokens=reasoning, latency_ms=latency_ms, cost_usd=cost,
        )

    def answered_by(self, model: str) -> Usage:
        """This usage, attributed to ``model`` in ``by_model`` (the loop does this for every request)."""
        share = ModelUsage(requests=self.requests, prompt_tokens=self.prompt_tokens,
                           completion_tokens=self.completion_tokens, cost_usd=self.cost_usd)
        return self.model_copy(update={"by_model": {model: share}})

    def add(self, other: Usage) -> None:
        """Accumulate in place; cost stays ``None`` once any part of it is unknown."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.latency_ms += other.latency_ms
        self.cost_usd = sum_costs((self.cost_usd, other.cost_usd))
        for model, share in other.by_model.items():
            mine = self.by_model.get(model)
            if mine is None:
                self.by_model[model] = share.model_copy()
            else:
                mine.add(share)


@dataclass(slots=True)
class UserTotals:
    """What one user's runs cost: ``user_id`` ``None`` for runs started without one."""

    user_id: str | None
    sessions: int = 0
    runs: int = 0
    usage: Usage = field(default_factory=Usage)


def totals_by_user(records: Iterable[RunRecord]) -> list[UserTotals]:
    """Sessions, runs, tokens and cost per user, from run records (each keeps its own usage; the runs
    an agent delegated to are records of their own, under the same user and a ``parent/agent``
    session, so they count toward the user's runs and usage but not as more sessions). Users in
    order of first appearance."""
    totals: dict[str | None, UserTotals] = {}
    sessions: dict[str | None, set[str]] = {}
    for record in records:
        entry = totals.setdefault(record.user_id, UserTotals(record.user_id))
        sessions.setdefault(record.user_id, set()).add(record.session.split("/", 1)[0])
        entry.runs += 1
        entry.usage.add(Usage.model_validate(record.usage or {}))
        entry.sessions = len(sessions[record.user_id])
    return list(totals.values())
