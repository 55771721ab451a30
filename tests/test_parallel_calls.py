"""Several tool calls in one turn, at the HTTP level: a whole agent run against OpenAI's documented
response shapes, served by an httpx mock transport (no network, no cassette — a cassette must be
recorded from a real server, and the embedded model never makes parallel calls).

Where the shapes come from:

* Non-streamed: the ``chat.completion`` object of OpenAI's API reference (Chat Completions → "The chat
  completion object") with ``message.tool_calls`` holding several ``{"id", "type": "function",
  "function": {"name", "arguments"}}`` items, ``content: null``, ``refusal: null``, ``annotations: []``
  and ``finish_reason: "tool_calls"`` — the parallel function calling example of OpenAI's function
  calling guide (one ``get_weather`` call per city in one turn).
* Streamed: the ``chat.completion.chunk`` objects of the same reference and the guide's "Streaming"
  section: the first delta of a call carries ``index``, ``id``, ``type`` and ``function.name`` with
  ``arguments: ""``; the following deltas carry only ``index`` and an ``arguments`` fragment (the SDK's
  dump shows ``id``, ``type`` and ``name`` as ``null`` there); the last choice chunk has
  ``finish_reason: "tool_calls"`` and, with ``stream_options.include_usage``, a final chunk has empty
  ``choices`` and the ``usage``. OpenAI sends call 0 whole, then call 1; the format lets fragments of
  different indexes interleave (each delta names its ``index``), which other servers do — both orders
  are tested.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import openai
import pytest
from conftest import history_problems

from react_agent import Agent, RunResult, tool
from react_agent.model import OpenAIModel

TEMPERATURES = {"Paris, France": 14, "Tokyo, Japan": 21, "Bogotá, Colombia": 15}
CITIES = list(TEMPERATURES)
IDS = ["call_12345xyz", "call_67890abc", "call_99999def"]
ENVELOPE = {"id": "chatcmpl-AJr0mKm2m8ykN2xb7BqXUvOa7F1Tv", "created": 1729118116, "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_e2bde53e6e"}
USAGE = {"prompt_tokens": 82, "completion_tokens": 62, "total_tokens": 144,
         "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                       "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
ANSWER = "Paris 14°C, Tokyo 21°C, Bogotá 15°C."


def arguments(city: str) -> str:
    return json.dumps({"location": city})


def completion(message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {**ENVELOPE, "object": "chat.completion", "service_tier": "default", "usage": USAGE,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "refusal": None, "annotations": [], **message}}]}


PARALLEL = completion({"content": None, "tool_calls": [
    {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments(city)}}
    for call_id, city in zip(IDS, CITIES, strict=True)]}, "tool_calls")
FINAL = completion({"content": ANSWER}, "stop")


def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    body = {**ENVELOPE, "object": "chat.completion.chunk", "choices": choices,
            "usage": USAGE if delta is None else None}
    return f"data: {json.dumps(body)}\n\n".encode()


def call_start(i: int) -> dict[str, Any]:
    return {"index": i, "id": IDS[i], "type": "function", "function": {"name": "get_weather", "arguments": ""}}


def call_part(i: int, fragment: str) -> dict[str, Any]:
    return {"index": i, "id": None, "type": None, "function": {"name": None, "arguments": fragment}}


def fragments(i: int) -> list[str]:
    text = arguments(CITIES[i])
    return [text[:2], text[2:13], text[13:]]


def streamed_calls(interleaved: bool) -> bytes:
    """Three calls as chunks: OpenAI's order (each call whole, in turn) or fragments interleaved."""
    first = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call_start(0)]}
    parts: list[dict[str, Any]] = [first]
    if interleaved:
        parts += [{"tool_calls": [call_start(1)]}, {"tool_calls": [call_start(2)]}]
        parts += [{"tool_calls": [call_part(i, fragments(i)[n])]} for n in range(3) for i in (2, 0, 1)]
    else:
        for i in range(3):
            parts += [{"tool_calls": [call_start(i)]}] if i else []
            parts += [{"tool_calls": [call_part(i, piece)]} for piece in fragments(i)]
    return (b"".join(chunk(delta) for delta in parts) + chunk({}, "tool_calls") + chunk(None)
            + b"data: [DONE]\n\n")


def streamed_answer() -> bytes:
    words = ANSWER.split(" ")
    deltas = [{"role": "assistant", "content": "", "refusal": None}] + [
        {"content": word if i == 0 else " " + word} for i, word in enumerate(words)]
    return b"".join(chunk(d) for d in deltas) + chunk({}, "stop") + chunk(None) + b"data: [DONE]\n\n"


class Server:
    """Answers the first request with the parallel calls, the second with the answer."""

    def __init__(self, first: dict[str, Any] | bytes, second: dict[str, Any] | bytes) -> None:
        self.answers = [first, second]
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/chat/completions"
        self.requests.append(json.loads(request.content))
        answer = self.answers[len(self.requests) - 1]
        if isinstance(answer, bytes):
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=answer)
        return httpx2.Response(200, json=answer)


@pytest.fixture
def weather_agent(monkeypatch: pytest.MonkeyPatch):
    """``weather_agent(first, second)`` → (agent, server, started): the agent's HTTP goes to ``server``;
    its ``get_weather`` tool waits until all three calls have started, so it passes only if the calls run
    concurrently."""
    real_client = openai.AsyncOpenAI

    def make(first: dict[str, Any] | bytes, second: dict[str, Any] | bytes) -> tuple[Agent, Server, list[str]]:
        server = Server(first, second)
        monkeypatch.setattr(openai, "AsyncOpenAI", lambda **kwargs: real_client(
            **{**kwargs, "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(server))}))
        started: list[str] = []
        all_started = asyncio.Event()

        @tool
        async def get_weather(location: str) -> str:
            """Get the current temperature for a location.

            Args:
                location: city and country, e.g. Bogotá, Colombia.
            """
            started.append(location)
            if len(started) == len(CITIES):
                all_started.set()
            await asyncio.wait_for(all_started.wait(), timeout=5)
            return f"{location}: {TEMPERATURES[location]}°C"

        model = OpenAIModel("gpt-4o-mini", base_url="http://mock/v1", api_key="x", max_retries=0)
        return Agent("weather", tools=[get_weather], model=model), server, started

    return make


def assert_parallel_turn(result: RunResult, server: Server, started: list[str]) -> None:
    assert result.status == "completed" and result.output == ANSWER
    step = result.steps[0]
    assert [a.id for a in step.actions] == IDS, "calls in index order, with the server's ids"
    assert [json.loads(a.arguments) for a in step.actions] == [{"location": c} for c in CITIES]
    assert [o.call_id for o in step.observations] == IDS and all(o.ok for o in step.observations)
    assert [o.content for o in step.observations] == ["Paris, France: 14°C", "Tokyo, Japan: 21°C",
                                                       "Bogotá, Colombia: 15°C"]
    assert sorted(started) == sorted(CITIES)
    assert result.usage.requests == 2 and result.usage.prompt_tokens == 2 * USAGE["prompt_tokens"]
    # what the server got back: the assistant turn with the three calls, then one tool message each, in order
    messages = server.requests[1]["messages"]
    assert history_problems(messages) == []
    turn = next(m for m in messages if m.get("tool_calls"))
    assert [c["id"] for c in turn["tool_calls"]] == IDS
    assert [c["function"]["arguments"] for c in turn["tool_calls"]] == [arguments(c) for c in CITIES]
    tool_messages = [m for m in messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == IDS
    assert [m["content"] for m in tool_messages] == [o.content for o in step.observations]


async def test_parallel_calls_in_a_completion_run_concurrently_and_answer_in_order(weather_agent) -> None:
    agent, server, started = weather_agent(PARALLEL, FINAL)
    result = await agent.run("What's the weather like in Paris, Tokyo and Bogotá today?")
    assert_parallel_turn(result, server, started)
    assert "stream" not in server.requests[0] and server.requests[0]["tool_choice"] == "auto"


@pytest.mark.parametrize("interleaved", [False, True], ids=["openai-order", "interleaved"])
async def test_parallel_calls_in_a_stream_are_assembled_by_index(weather_agent, interleaved: bool) -> None:
    agent, server, started = weather_agent(streamed_calls(interleaved), streamed_answer())
    events = [event async for event in agent.stream("What's the weather like in Paris, Tokyo and Bogotá today?")]
    result = events[-1].result  # type: ignore[union-attr]
    assert_parallel_turn(result, server, started)
    assert server.requests[0]["stream"] is True
    kinds = [e.type for e in events]
    assert kinds.count("tool_start") == 3 and kinds.count("tool_end") == 3
    assert "".join(e.text for e in events if e.type == "text_delta") == ANSWER  # type: ignore[union-attr]
