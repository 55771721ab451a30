"""The context window: a hard per-request budget over what is sent to the model.

History is cut into *units*: a user message, a plain assistant message, or an assistant message
with tool calls together with its tool results. Units are dropped whole, oldest first, so a tool
call is never separated from its result. The current task (last user message) is always kept;
what was dropped is replaced by one note (or a summary, when the agent asks for summaries). Tool
results of the newest turn that do not fit are cut, fairly, with a marker saying how much was cut.
Sizes are the bytes of the JSON body the OpenAI SDK sends, escapes included; a token is
``CHARS_PER_TOKEN`` of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ContextBudgetExceeded
from .windows import default_budget

if TYPE_CHECKING:
    from .agent import Agent
    from .model import Model, ModelResponse
    from .prompts import Prompts
    from .usage import Usage

__all__ = ["ContextWindow", "cut_to_size", "estimate_tokens", "fair_shares", "fit", "json_size", "split_units",
           "summarize", "text_size", "truncate"]

CHARS_PER_TOKEN = 4  # a conservative average for English and JSON with BPE tokenizers
SUMMARY_TOKENS = 256  # the most a summary of left-out messages may take (its request's max_tokens)
SUMMARY_SETTINGS = {"max_tokens": SUMMARY_TOKENS, "temperature": 0.0}
SUMMARY_HEADER = "\n\nSummary of the earlier conversation (left out to fit the context budget):\n"

_SHORT_ESCAPES = '"\\\n\r\t\b\f'  # sent as two characters: \" \\ \n \r \t \b \f
_CONTROL = re.compile(r"[\x00-\x07\x0b\x0e-\x1f]")  # the other control characters: sent as \u00XX
_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # any character sent escaped: the quote, the backslash, controls
_MARKER = re.compile(r"\n\[\.\.\. truncated: (\d+) of (\d+) characters cut \.\.\.\]\Z")


def _marker(cut: int, total: int) -> str:
    return f"\n[... truncated: {cut} of {total} characters cut ...]"


def truncate(text: str, limit: int) -> str:
    """Cut a tool output longer than ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + _marker(len(text) - limit, len(text))


def text_size(text: str) -> int:
    """Bytes ``text`` takes between the quotes of a JSON string as the SDK sends it (UTF-8 with
    ``ensure_ascii=False``): two for each of ``" \\ \\n \\r \\t \\b \\f``, six for other control characters."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if _ESCAPED.search(text) is None:  # most keys and values: one scan instead of one per escape
        return size
    size += sum(text.count(c) for c in _SHORT_ESCAPES)
    if _CONTROL.search(text):
        size += 5 * len(_CONTROL.findall(text))
    return size


def json_size(value: Any) -> int:
    """Exactly how many bytes ``value`` takes in the request body — ``json.dumps(value,
    ensure_ascii=False, separators=(",", ":")).encode()``, the OpenAI SDK's serialization — without
    building it."""
    if isinstance(value, str):
        return text_size(value) + 2
    if isinstance(value, dict):  # {"key":value,...}: quotes and colon per key, commas, braces
        size = 1 + len(value) if value else 2
        for key, item in value.items():
            size += text_size(key if isinstance(key, str) else _json_key(key)) + 3 + json_size(item)
        return size
    if isinstance(value, list | tuple):
        return 1 + len(value) + sum(json_size(item) for item in value) if value else 2
    if value is None or value is True:
        return 4
    return len(str(value))  # False, int, float: str() spells them as json.dumps does ("False" is 5 long)


def _json_key(key: Any) -> str:
    """How ``json.dumps`` spells a key that is not a string."""
    if key is None or isinstance(key, bool):
        return "null" if key is None else str(key).lower()
    return str(key)


def cut_to_size(text: str, size: int) -> str | None:
    """``text`` cut to at most ``size`` bytes (``text_size``), ending with the truncation marker; a
    text ``truncate`` cut before keeps one marker, counting from its original length. ``None`` when
    not even the marker fits."""
    if text_size(text) <= size:
        return text
    found = _MARKER.search(text)
    body, total = (text[:found.start()], int(found.group(2))) if found else (text, len(text))
    room = size - text_size(_marker(total, total))  # the cut count has at most as many digits as the total
    if room < 0:
        return None
    low, high = 0, min(len(body), room)  # every character takes at least one byte
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if text_size(body[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return body[:low] + _marker(total - low, total)


def fair_shares(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over parts wanting ``sizes``: the small parts get what they want, the big ones
    an equal share of the rest (each share at most what its part wants)."""
    shares = list(sizes)
    left = total
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for n, i in enumerate(order):
        even = left // (len(order) - n)
        if sizes[i] > even:
            for j in order[n:]:
                shares[j] = even
            break
        left -= sizes[i]
    return shares


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
    cost: int = 0  # of the kept messages


def fit(history: list[dict[str, Any]], budget: int, fixed: int = 0, costs: Sequence[int] | None = None) -> Fitted:
    """Keep the newest units (and the last user message) within ``budget``.

    ``fixed`` is what the request takes besides the history; ``costs`` what each message takes (the
    messages' ``estimate_tokens`` unless given: then all three are tokens). A unit newer than the
    last user message is kept even when it alone is too big (the caller cuts it); older units are
    kept newest first while they fit.
    """
    if costs is None:
        costs = [estimate_tokens(m) for m in history]
    bounds = unit_starts(history)
    ends = [*bounds[1:], len(history)]
    last_user = next((u for u in range(len(bounds) - 1, -1, -1) if history[bounds[u]]["role"] == "user"), -1)
    newest = len(bounds) - 1 if len(bounds) - 1 > last_user else None
    room = budget - fixed
    if last_user >= 0:
        room -= costs[bounds[last_user]]
    first = len(bounds)  # units[first:] are kept, and the last user unit wherever it is
    for u in range(len(bounds) - 1, -1, -1):
        if u == last_user:
            first = u
            continue
        cost = sum(costs[bounds[u]:ends[u]])
        if cost > room and u != newest:
            break
        first = u
        room -= cost
    kept = budget - fixed - room
    if first == 0:
        return Fitted(list(history), [], kept)
    start = bounds[first] if first < len(bounds) else len(history)
    if 0 <= last_user < first:
        task = history[bounds[last_user]:ends[last_user]]
        dropped = history[:bounds[last_user]] + history[ends[last_user]:start]
        return Fitted(task + history[start:], dropped, kept)
    return Fitted(history[start:], history[:start], kept)


@dataclass
class ContextWindow:
    """One run's view of the context budget: what each message costs (bytes, measured once) and the
    running summary of what was left out (``summarize_dropped=True``)."""

    costs: list[int] = field(default_factory=list)  # bytes history[i] adds to the request: its JSON and a comma
    fixed: int | None = None  # bytes of the request without history: system prompt, tools, settings
    budget: int = 0  # tokens: the agent's context_budget, else its model's default
    summary: str | None = None
    summarized: int = 0  # how many of the left-out messages the summary covers

    async def messages(self, system: str, history: list[dict[str, Any]], agent: Agent,
                       usage: Usage) -> list[dict[str, Any]]:
        """The messages to send: ``system`` then as much of ``history`` as fits (usage gains the
        summary requests). Raises ``ContextBudgetExceeded`` when even the smallest request is too big."""
        if self.fixed is None:
            self.budget, self.fixed = _measure(system, agent)
        fixed, costs, limit = self.fixed, self.costs, self.budget * CHARS_PER_TOKEN
        if len(costs) < len(history):  # history only grows: measure each message once
            costs.extend(json_size(m) + 1 for m in history[len(costs):])
        if fixed + sum(costs) <= limit:
            return [{"role": "system", "content": system}, *history]
        question = next((i for i in range(len(history) - 1, -1, -1) if history[i]["role"] == "user"), None)
        if question is not None and fixed + costs[question] > limit:
            raise ContextBudgetExceeded(self.budget, _tokens(fixed + costs[question]),
                                        "the question, the system prompt and the tool schemas")
        note_room = text_size(_dropped_note(10**9))
        if agent.summarize_dropped:
            note_room = max(note_room, text_size(SUMMARY_HEADER) + SUMMARY_TOKENS * CHARS_PER_TOKEN)
        fitted = fit(history, limit, fixed + note_room, costs)
        messages, used = fitted.messages, fixed + fitted.cost + (note_room if fitted.dropped else 0)
        newest = unit_starts(history)[-1]
        if used > limit and (question is None or newest > question) and history[newest].get("tool_calls"):
            room = limit - used + sum(costs[newest:])
            messages = messages[:len(messages) - len(history) + newest] + _cut_unit(
                history[newest:], costs[newest:], room, self.budget, limit - room)
        elif used > limit and fitted.dropped and used - note_room <= limit:
            return [{"role": "system", "content": system}, *messages]  # no room for the note
        elif used > limit:
            raise ContextBudgetExceeded(self.budget, _tokens(used), "the question and the newest messages")
        if fitted.dropped:
            system += await self._note(fitted.dropped, agent, usage, limit)
        return [{"role": "system", "content": system}, *messages]

    async def _note(self, dropped: list[dict[str, Any]], agent: Agent, usage: Usage, limit: int) -> str:
        """What the system prompt says of the left-out messages: a count, or the running summary
        (one model call each time more is left out, counted in usage)."""
        if agent.summarize_dropped and len(dropped) > self.summarized:
            response = await summarize(agent.model, agent.prompts, agent.summary_template, self.summary,
                                       dropped[self.summarized:], limit=limit)
            usage.add(response.usage)
            text = (response.text or "").strip()
            self.summary = cut_to_size(text, SUMMARY_TOKENS * CHARS_PER_TOKEN) if text else self.summary
            self.summarized = len(dropped)
        if agent.summarize_dropped and self.summary:
            return SUMMARY_HEADER + self.summary
        return _dropped_note(len(dropped))


def _measure(system: str, agent: Agent) -> tuple[int, int]:
    """The budget (tokens) and the bytes of the request without history, as ``OpenAIModel`` sends it
    (streamed: the stream options are counted too)."""
    settings = {**getattr(agent.model, "default_settings", {}), **agent.model_settings}
    models = getattr(agent.model, "models", None) or [agent.model]  # fallback models: the smallest window
    budget = agent.context_budget if agent.context_budget is not None else min(
        default_budget(model.name, settings) for model in models)
    skeleton: dict[str, Any] = {"model": agent.model.name, "messages": [{"role": "system", "content": system}],
                                **settings}
    if agent.tool_schemas:
        skeleton["tools"] = agent.tool_schemas
        skeleton.setdefault("tool_choice", "auto")
    skeleton |= {"stream": True, "stream_options": {"include_usage": True}}
    return budget, json_size(skeleton)


def _cut_unit(unit: list[dict[str, Any]], costs: list[int], room: int, budget: int,
              rest: int) -> list[dict[str, Any]]:
    """The newest turn within ``room`` bytes: its tool results cut by ``fair_shares`` of what is left
    after the calls and the messages' JSON. ``rest`` is what the request takes besides the turn."""
    results = [i for i, m in enumerate(unit) if m["role"] == "tool" and isinstance(m.get("content"), str)]
    sizes = [text_size(unit[i]["content"]) for i in results]
    overhead = sum(costs) - sum(sizes)
    shares = fair_shares(sizes, room - overhead)
    out = list(unit)
    for i, size, share in zip(results, sizes, shares, strict=True):
        if share < size:
            content = cut_to_size(unit[i]["content"], share)
            if content is None:
                least = overhead + sum(min(s, text_size(_marker(s, s))) for s in sizes)
                raise ContextBudgetExceeded(budget, _tokens(rest + least),
                                            "the question and the newest tool calls (their results cut to nothing)")
            out[i] = {**unit[i], "content": content}
    return out


def _tokens(size: int) -> int:
    return -(-size // CHARS_PER_TOKEN)


def _dropped_note(count: int) -> str:
    return f"\n\n[{count} earlier messages of this conversation were left out to fit the context budget.]"


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
                    messages: list[dict[str, Any]], *, limit: int | None = None) -> ModelResponse:
    """Ask the model to fold ``messages`` into ``previous`` (a summary), with the ``template`` prompt.
    With ``limit`` (bytes) the request stays within it: the messages' texts are cut fairly."""
    lines = transcript(messages)

    def request(texts: list[dict[str, str]]) -> tuple[list[dict[str, Any]], int]:
        prompt = [{"role": "user", "content": prompts.render(template, previous=previous, messages=texts)}]
        return prompt, json_size({"model": model.name, "messages": prompt, **SUMMARY_SETTINGS})

    prompt, size = request(lines)
    if limit is not None and size > limit:
        sizes = [text_size(line["text"]) for line in lines]
        _, empty = request([{**line, "text": ""} for line in lines])
        room = limit - empty
        for _ in range(3):  # a template need not be additive (render strips): take off any excess, again
            shares = fair_shares(sizes, room)
            cut = [{**line, "text": cut_to_size(line["text"], share) or ""} if share < want else line
                   for line, want, share in zip(lines, sizes, shares, strict=True)]
            prompt, size = request(cut)
            if size <= limit:
                break
            room -= size - limit
        else:
            raise ContextBudgetExceeded(_tokens(limit), _tokens(size), "the summary prompt")
    return await model.complete(prompt, [], dict(SUMMARY_SETTINGS))
