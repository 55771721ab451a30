"""The context window: a per-agent token budget over the history sent to the model.

History is cut into *units*: a user message, a plain assistant message, or an assistant message
with tool calls together with its tool results. Units are dropped whole, oldest first, so a tool
call is never separated from its result. The current task (last user message) is always kept;
what was dropped is replaced by one note (or a summary, when the agent asks for summaries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import Model, ModelResponse
    from .prompts import Prompts

__all__ = ["estimate_tokens", "fit", "json_size", "split_units", "summarize", "truncate"]

CHARS_PER_TOKEN = 4  # a conservative average for English and JSON with BPE tokenizers
SUMMARY_TOKENS = 256  # the most a summary of left-out messages may take (its request's max_tokens)


def truncate(text: str, limit: int) -> str:
    """Cut a tool output longer than ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return f"{text[:limit]}\n[... truncated: {cut} of {len(text)} characters cut ...]"


def json_size(value: Any) -> int:
    """About how many bytes ``value`` takes in the request body (compact JSON, as the SDK sends it),
    without serializing it: UTF-8 string lengths plus quotes, the usual escapes (quote, backslash,
    newline, tab, CR) and the JSON punctuation. Rarer escapes (other control characters) are not counted."""
    if isinstance(value, str):
        size = len(value) if value.isascii() else len(value.encode())
        escaped = value.count('"') + value.count("\\") + value.count("\n") + value.count("\t") + value.count("\r")
        return size + 2 + escaped
    if isinstance(value, dict):  # {"key":value,...}: quotes and colon per key, commas, braces
        size = 1 + len(value) if value else 2
        for key, item in value.items():
            size += len(key) + 3 + json_size(item)
        return size
    if isinstance(value, list):
        return 1 + len(value) + sum(json_size(item) for item in value) if value else 2
    if value is None or value is True:
        return 4
    return len(str(value))


def estimate_tokens(message: dict[str, Any]) -> int:
    """Tokens a message costs in the request, at ``CHARS_PER_TOKEN`` bytes of its JSON per token."""
    return -(-json_size(message) // CHARS_PER_TOKEN)


def unit_starts(history: list[dict[str, Any]]) -> list[int]:
    """Where each unit begins: a tool message belongs to the unit of the tool calls before it."""
    starts: list[int] = []
    for i, message in enumerate(history):
        if not (message["role"] == "tool" and starts and history[starts[-1]].get("tool_calls")):
            starts.append(i)
    return starts


def split_units(history: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    starts = unit_starts(history)
    return [history[a:b] for a, b in zip(starts, [*starts[1:], len(history)], strict=True)]


@dataclass(slots=True)
class Fitted:
    messages: list[dict[str, Any]]
    dropped: list[dict[str, Any]]


def fit(history: list[dict[str, Any]], budget: int, fixed_tokens: int = 0,
        costs: Sequence[int] | None = None) -> Fitted:
    """Keep the newest units (and the last user message) within ``budget`` tokens.

    ``fixed_tokens`` is what the system prompt and tool schemas already take; ``costs`` are the
    messages' ``estimate_tokens`` when the caller keeps them (computed here otherwise).
    """
    if costs is None:
        costs = [estimate_tokens(m) for m in history]
    bounds = unit_starts(history)
    ends = [*bounds[1:], len(history)]
    last_user = next((u for u in range(len(bounds) - 1, -1, -1) if history[bounds[u]]["role"] == "user"), None)
    room = budget - fixed_tokens
    if last_user is not None:
        room -= sum(costs[bounds[last_user]:ends[last_user]])
    first = len(bounds)  # units[first:] are kept, and the last user unit wherever it is
    kept_any = False
    for u in range(len(bounds) - 1, -1, -1):
        if u == last_user:
            first = u
            continue
        cost = sum(costs[bounds[u]:ends[u]])
        if cost > room and kept_any:  # the newest unit is kept even when it alone is too big
            break
        first, kept_any = u, True
        room -= cost
    if first == 0:
        return Fitted(list(history), [])
    start = bounds[first] if first < len(bounds) else len(history)
    if last_user is not None and last_user < first:
        task = history[bounds[last_user]:ends[last_user]]
        dropped = history[:bounds[last_user]] + history[ends[last_user]:start]
        return Fitted(task + history[start:], dropped)
    return Fitted(history[start:], history[:start])


def transcript(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as plain ``role``/``text`` lines for the summary prompt (tool calls spelled out)."""
    lines = []
    for message in messages:
        text = str(message.get("content") or "")
        calls = [f"{c['function']['name']}({c['function']['arguments']})" for c in message.get("tool_calls") or ()]
        if calls:
            text = f"{text} [called {', '.join(calls)}]".strip()
        lines.append({"role": message["role"], "text": text})
    return lines


async def summarize(model: Model, prompts: Prompts, template: str, previous: str | None,
                    messages: list[dict[str, Any]]) -> ModelResponse:
    """Ask the model to fold ``messages`` into ``previous`` (a summary), with the ``template`` prompt."""
    prompt = prompts.render(template, previous=previous, messages=transcript(messages))
    return await model.complete([{"role": "user", "content": prompt}], [],
                                {"max_tokens": SUMMARY_TOKENS, "temperature": 0.0})
