"""``ScriptedModel``: plays back a list of replies and records every request it got.

Use it for unit tests of agents and tools — no network, no fakes that branch on message counts::

    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")])
    result = await Agent(tools=[add], model=model).run("1+2?")
    assert model.requests[1].messages[-1]["content"] == "3"
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from .errors import RunError, UnexpectedModelBehavior
from .model import ModelResponse, RawToolCall
from .usage import Usage

__all__ = ["Request", "ScriptedModel", "reply", "tool_call", "tool_calls"]


@dataclass(frozen=True, slots=True)
class Request:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    settings: dict[str, Any]

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]


def _usage(prompt: int, completion: int) -> Usage:
    return Usage.of_request("scripted", prompt, completion, 0, 0.0)


def reply(text: str, *, prompt_tokens: int = 20, completion_tokens: int = 10) -> ModelResponse:
    """A plain assistant answer."""
    return ModelResponse(text, [], _usage(prompt_tokens, completion_tokens), "stop")


def tool_calls(
    calls: list[tuple[str, dict[str, Any] | str]], *, thought: str | None = None,
    prompt_tokens: int = 20, completion_tokens: int = 10,
) -> ModelResponse:
    """Several tool calls in one turn. Arguments given as a string are sent as-is (e.g. broken JSON)."""
    raw = [RawToolCall("", name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls]
    return ModelResponse(thought, raw, _usage(prompt_tokens, completion_tokens), "tool_calls")


def tool_call(name: str, arguments: dict[str, Any] | str, *, thought: str | None = None,
              prompt_tokens: int = 20, completion_tokens: int = 10) -> ModelResponse:
    """One tool call."""
    return tool_calls([(name, arguments)], thought=thought, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens)


Script = ModelResponse | str | Exception | Callable[[Request], "ModelResponse | str"]


class ScriptExhaustedError(UnexpectedModelBehavior):
    pass


class ScriptedModel:
    """A ``Model`` that answers from a script. ``requests`` holds deep copies of what it was sent."""

    def __init__(self, script: list[Script], *, name: str = "scripted") -> None:
        self.name = name
        self.script = list(script)
        self.requests: list[Request] = []
        self._ids = 0

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> ModelResponse:
        request = Request(copy.deepcopy(messages), copy.deepcopy(tools), dict(settings))
        self.requests.append(request)
        if not self.script:
            raise ScriptExhaustedError(f"ScriptedModel has no reply left for request #{len(self.requests)}")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            if isinstance(item, RunError):
                raise item
            raise item
        answer = item(request) if callable(item) else item
        response = reply(answer) if isinstance(answer, str) else copy.deepcopy(answer)
        for call in response.tool_calls:
            if not call.id:
                self._ids += 1
                call.id = f"call_{self._ids}"
        return response

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> AsyncIterator[str | ModelResponse]:
        response = await self.complete(messages, tools, settings)
        text = response.text or ""
        for start in range(0, len(text), 4):
            yield text[start:start + 4]
        yield response
