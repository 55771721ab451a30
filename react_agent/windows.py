"""Context windows: how many tokens a model takes in one request, prompt and answer together.

The default ``context_budget`` of an agent comes from here: the window less what is kept free for the
answer. Extend the table with ``register_context_window``; a model not in it gets ``UNKNOWN_WINDOW``,
small enough for any chat model, so that no run grows its requests without bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .usage import by_model_name

__all__ = ["CONTEXT_WINDOWS", "UNKNOWN_WINDOW", "Window", "context_window", "default_budget",
           "register_context_window"]


@dataclass(frozen=True, slots=True)
class Window:
    tokens: int  # prompt and answer together
    reserve: int  # kept free for the answer: the model's largest answer (max output tokens)


# Published limits (tokens). A dated name (``gpt-4o-2024-08-06``) finds its family by prefix.
CONTEXT_WINDOWS: dict[str, Window] = {
    "gpt-4o": Window(128_000, 16_384),
    "gpt-4o-mini": Window(128_000, 16_384),
    "gpt-4.1": Window(1_047_576, 32_768),
    "gpt-4.1-mini": Window(1_047_576, 32_768),
    "gpt-4.1-nano": Window(1_047_576, 32_768),
    "o3": Window(200_000, 100_000),
    "o3-mini": Window(200_000, 100_000),
    "o4-mini": Window(200_000, 100_000),
    "gpt-5": Window(400_000, 128_000),  # 272,000 tokens of input at most: the window less the reserve
    "gpt-5-mini": Window(400_000, 128_000),
    "gpt-5-nano": Window(400_000, 128_000),
    "gpt-5-chat-latest": Window(128_000, 16_384),
    "local": Window(4_096, 384),  # the embedded llama.cpp server's n_ctx; 384 = LocalModel's max_tokens
}
UNKNOWN_WINDOW = Window(8_192, 1_024)


def register_context_window(model: str, tokens: int, reserve: int = 1_024) -> None:
    """Add or override a model's context window (tokens) and how much of it to keep for the answer."""
    CONTEXT_WINDOWS[model] = Window(tokens, reserve)


def context_window(model: str) -> Window:
    return by_model_name(CONTEXT_WINDOWS, model) or UNKNOWN_WINDOW


def default_budget(model: str, settings: Mapping[str, Any]) -> int:
    """Tokens a request may take: the model's window less the larger of its reserve and the answer
    length the settings ask for (``max_tokens`` / ``max_completion_tokens``)."""
    window = context_window(model)
    asked = max(int(settings.get(key) or 0) for key in ("max_tokens", "max_completion_tokens"))
    return window.tokens - max(window.reserve, asked)
