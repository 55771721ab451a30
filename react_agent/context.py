"""The context window: a per-agent token budget over the history sent to the model.

History is cut into *units*: a user message, a plain assistant message, or an assistant message
with tool calls together with its tool results. Units are dropped whole, oldest first, so a tool
call is never separated from its result. The current task (last user message) is always kept;
what was dropped is replaced by one note (or a summary, when the agent asks for summaries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["estimate_tokens", "fit", "split_units", "truncate"]

CHARS_PER_TOKEN = 4  # a conservative average for English and JSON with BPE tokenizers


def truncate(text: str, limit: int) -> str:
    """Cut a tool output longer than ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}\n[... truncated: {cut} of {len(text)} characters cut ...]"


def estimate_tokens(message: dict[str, Any]) -> int:
    size = len(message.get("content") or "") + 16
    for call in message.get("tool_calls") or ():
        function = call["function"]
        size += len(function["name"]) + len(function["arguments"]) + 24
    return size // CHARS_PER_TOKEN + 1


def split_units(history: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    units: list[list[dict[str, Any]]] = []
    for message in history:
        if message["role"] == "tool" and units and units[-1][0].get("tool_calls"):
            units[-1].append(message)
        else:
            units.append([message])
    return units


@dataclass(slots=True)
class Fitted:
    messages: list[dict[str, Any]]
    dropped: list[dict[str, Any]]


def fit(history: list[dict[str, Any]], budget: int, fixed_tokens: int = 0) -> Fitted:
    """Keep the newest units (and the last user message) within ``budget`` tokens.

    ``fixed_tokens`` is what the system prompt and tool schemas already take.
    """
    units = split_units(history)
    last_user = max((i for i, u in enumerate(units) if u[0]["role"] == "user"), default=None)
    room = budget - fixed_tokens
    if last_user is not None:
        room -= sum(estimate_tokens(m) for m in units[last_user])
    keep: set[int] = set() if last_user is None else {last_user}
    for i in range(len(units) - 1, -1, -1):
        if i == last_user:
            continue
        cost = sum(estimate_tokens(m) for m in units[i])
        if cost > room and keep - {last_user}:  # the newest unit is kept even when it alone is too big
            break
        keep.add(i)
        room -= cost
    kept = [m for i, u in enumerate(units) if i in keep for m in u]
    dropped = [m for i, u in enumerate(units) if i not in keep for m in u]
    return Fitted(kept, dropped)
