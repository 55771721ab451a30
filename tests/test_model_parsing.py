"""Parsing what OpenAI-compatible servers send, plain and streamed (no network: the functions alone)."""

from __future__ import annotations

import asyncio
import json

import httpx2
import openai
import pytest

from react_agent import Agent, ModelHTTPError, UnexpectedModelBehavior, tool
from react_agent.model import ModelResponse, OpenAIModel, RawToolCall, StreamAccumulator, parse_completion, sse_payloads


def completion(message: dict, usage: dict | None = None, finish_reason: str = "stop") -> dict:
    body = {"id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}]}
    if usage is not None:
        body["usage"] = usage
    return body


def chunk(delta: dict | None = None, *, usage: dict | None = None, finish_reason: str | None = None) -> dict:
    body: dict = {"object": "chat.completion.chunk", "choices": []}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    if usage is not None:
        body["usage"] = usage
    return body


def fold(*chunks: dict, position: int = 3) -> tuple[list[str], ModelResponse]:
    acc = StreamAccumulator("gpt-4o-mini", position)
    deltas = [acc.feed(c) for c in chunks]
    return deltas, acc.result(12.5)


# -- non-streamed -----------------------------------------------------------------------------------
def test_plain_answer_with_usage():
    body = completion({"content": "Hi!"}, {"prompt_tokens": 100, "completion_tokens": 20,
                                          "prompt_tokens_details": {"cached_tokens": 40}})
    response = parse_completion("gpt-4o-mini", body, 2, 50.0)
    assert (response.text, response.tool_calls, response.finish_reason) == ("Hi!", [], "stop")
    usage = response.usage
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (1, 100, 20, 40)
    assert usage.latency_ms == 50.0
    assert usage.cost_usd == pytest.approx((60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 1e6)


def test_tool_calls_without_id_or_type_and_with_object_arguments():
    body = completion({"content": None, "tool_calls": [
        {"function": {"name": "add", "arguments": {"a": 1, "b": 2}}},
        {"id": "call_x", "type": "function", "function": {"name": "mul", "arguments": '{"a": 3}'}},
        {"function": {"name": "now"}},
    ]}, finish_reason="tool_calls")
    response = parse_completion("m", body, 7, 0.0)
    assert response.tool_calls == [
        RawToolCall("call_7_0", "add", json.dumps({"a": 1, "b": 2})),
        RawToolCall("call_x", "mul", '{"a": 3}'),
        RawToolCall("call_7_2", "now", ""),
    ]
    assert response.text is None
    assert response.message()["content"] == ""  # always present beside tool calls
    assert [c["type"] for c in response.message()["tool_calls"]] == ["function"] * 3


def test_ids_for_missing_ids_are_deterministic():
    body = completion({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]})
    again = completion({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]})
    assert parse_completion("m", body, 4, 0.0).tool_calls == parse_completion("m", again, 4, 9.0).tool_calls
    assert parse_completion("m", body, 4, 0.0).tool_calls[0].id != parse_completion("m", body, 6, 0.0).tool_calls[0].id


def test_content_parts_are_joined():
    body = completion({"content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]})
    assert parse_completion("m", body, 0, 0.0).text == "Hello there"


def test_missing_usage_counts_zero_tokens():
    response = parse_completion("m", completion({"content": "ok"}), 0, 0.0)
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.requests) == (0, 0, 1)


@pytest.mark.parametrize("body", [
    {"id": "x", "object": "chat.completion"},
    {"choices": []},
    {"choices": None},
    ["not", "an", "object"],
    None,
], ids=["no-choices", "empty-choices", "null-choices", "list", "null"])
def test_a_body_without_choices_is_unexpected(body):
    with pytest.raises(UnexpectedModelBehavior, match=r"no choices\[0\]\.message") as info:
        parse_completion("m", body, 0, 0.0)
    assert info.value.body == body


def test_an_error_body_is_an_http_error():
    body = {"error": {"message": "model overloaded", "type": "server_error", "code": 503}}
    with pytest.raises(ModelHTTPError) as info:
        parse_completion("m", body, 0, 0.0)
    assert (info.value.status_code, info.value.code, info.value.message) == (503, 503, "model overloaded")
    assert str(info.value) == "model request failed (server error in response (code 503)): model overloaded"


# -- streamed ---------------------------------------------------------------------------------------
def test_stream_text_and_usage_in_a_final_chunk_without_choices():
    deltas, response = fold(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}, finish_reason="stop"),
        chunk(usage={"prompt_tokens": 10, "completion_tokens": 2}),
    )
    assert deltas == ["", "Hel", "lo", ""]
    assert (response.text, response.finish_reason) == ("Hello", "stop")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (10, 2)
    assert response.usage.latency_ms == 12.5


def test_stream_usage_on_a_content_chunk():
    _, response = fold(chunk({"content": "Hi"}, usage={"prompt_tokens": 7, "completion_tokens": 1}),
                       chunk({}, finish_reason="stop"))
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 1)
    assert response.finish_reason == "stop"


def test_stream_tool_calls_are_assembled_by_index():
    deltas, response = fold(
        chunk({"content": "Let me check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "add", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "now", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, finish_reason="tool_calls"),
    )
    assert deltas[0] == "Let me check."
    assert response.text == "Let me check."
    assert response.tool_calls == [RawToolCall("call_a", "add", '{"a": 1}'), RawToolCall("call_b", "now", "{}")]
    assert response.finish_reason == "tool_calls"


def test_stream_tool_calls_without_index_id_or_type():
    _, response = fold(
        chunk({"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"x":'}}]}),
        chunk({"tool_calls": [{"function": {"arguments": " 1}"}}]}),
        chunk({"tool_calls": [{"id": "c2", "function": {"name": "g", "arguments": {"y": 2}}}]}),
        chunk({"tool_calls": [{"index": 5, "function": {"name": "h", "arguments": "{}"}}]}),
    )
    assert response.tool_calls == [
        RawToolCall("c1", "f", '{"x": 1}'), RawToolCall("c2", "g", '{"y": 2}'), RawToolCall("call_3_2", "h", "{}"),
    ]


def test_an_error_inside_a_stream_is_an_http_error():
    acc = StreamAccumulator("m", 0)
    acc.feed(chunk({"content": "partial"}))
    with pytest.raises(ModelHTTPError) as info:
        acc.feed({"error": {"message": "upstream timed out", "code": "timeout"}})
    assert info.value.status_code is None
    assert info.value.message == "upstream timed out"
    with pytest.raises(ModelHTTPError, match="rate limited"):
        StreamAccumulator("m", 0).feed({"error": "rate limited"})


@pytest.mark.parametrize(("line", "payload"), [
    ('data: {"a": 1}', '{"a": 1}'),
    ('data:{"a": 1}', '{"a": 1}'),
    ("data: [DONE]", "[DONE]"),
    (": OPENROUTER PROCESSING", None),
    (":", None),
    ("", None),
    ("event: message", None),
    ("id: 7", None),
    ("data: ", None),
])
def test_sse_lines(line, payload):
    assert sse_payloads(line) == payload


def test_request_body():
    model = OpenAIModel("gpt-4o-mini", stream_usage=True)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    body = model._body([{"role": "user", "content": "hi"}], tools, {"temperature": 0}, stream=True)
    assert body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
                    "tools": tools, "tool_choice": "auto", "stream": True, "stream_options": {"include_usage": True}}
    assert "tools" not in model._body([], [], {}, stream=False)
    assert "stream" not in model._body([], [], {}, stream=False)


def test_each_event_loop_gets_its_own_client_and_run_sync_keeps_one(monkeypatch):
    """``AsyncOpenAI`` is bound to the loop it first ran on: a second ``asyncio.run`` (a new loop) must
    not reuse it ("Event loop is closed") — the mock transport fails the same way if used from another
    loop — and ``run_sync`` keeps one loop, so one client, for all its calls."""
    real_client = openai.AsyncOpenAI
    created: list[asyncio.AbstractEventLoop] = []

    def client_on_this_loop(**kwargs):
        loop = asyncio.get_running_loop()
        created.append(loop)

        def handler(request: httpx2.Request) -> httpx2.Response:
            if asyncio.get_running_loop() is not loop or loop.is_closed():
                raise RuntimeError("Event loop is closed")
            done = sum(m["role"] == "tool" for m in json.loads(request.content)["messages"])
            call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
            message = {"content": "3"} if done else {"content": None, "tool_calls": [call]}
            return httpx2.Response(200, json=completion(message, {"prompt_tokens": 5, "completion_tokens": 1}))

        return real_client(**{**kwargs, "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(handler))})

    monkeypatch.setattr(openai, "AsyncOpenAI", client_on_this_loop)

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    agent = Agent(tools=[add], model=OpenAIModel("gpt-4o-mini", base_url="http://mock/v1", api_key="x", max_retries=0))
    first = asyncio.run(agent.run("1 + 2?"))
    second = asyncio.run(agent.run("1 + 2 again?"))
    assert (first.status, first.output, second.status, second.output) == ("completed", "3", "completed", "3")
    assert len(created) == 2 and created[0] is not created[1]  # one client per loop, not one per request
    assert list(agent.model._clients) == [created[1]]  # the closed loop's client was dropped

    outputs = [agent.run_sync(f"1 + 2, call {n}?").output for n in range(3)]
    assert outputs == ["3", "3", "3"]
    assert len(created) == 3  # one more loop, kept by run_sync: one more client
    agent.close()


def _model_with_transport(monkeypatch, handler) -> OpenAIModel:
    real_client = openai.AsyncOpenAI
    monkeypatch.setattr(openai, "AsyncOpenAI", lambda **kwargs: real_client(
        **{**kwargs, "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(handler))}))
    return OpenAIModel("gpt-4o-mini", base_url="http://mock/v1", api_key="x", max_retries=0)


class _BreakingStream(httpx2.AsyncByteStream):
    """Sends one good chunk, then the connection breaks."""

    async def __aiter__(self):
        yield b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
        raise httpx2.ReadError("connection reset by peer")


async def test_a_stream_that_breaks_off_ends_the_run_with_an_api_error(monkeypatch):
    model = _model_with_transport(monkeypatch, lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_BreakingStream()))
    deltas, result = [], None
    async for event in Agent(model=model).stream("hi"):
        if event.type == "text_delta":
            deltas.append(event.text)
        elif event.type == "run_end":
            result = event.result
    assert deltas == ["Hel"]
    assert result.status == "error" and result.error_type == "ModelHTTPError"
    assert "the stream broke off" in result.error and "connection reset" in result.error


async def test_an_empty_stream_is_an_unexpected_model_behavior(monkeypatch):
    model = _model_with_transport(monkeypatch, lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=b": keep-alive\n\ndata: [DONE]\n\n"))
    events = [event async for event in Agent(model=model).stream("hi")]
    result = events[-1].result
    assert result.status == "error" and result.error_type == "UnexpectedModelBehavior"
    assert result.error == "the stream ended before the model said anything"


async def test_an_empty_stream_without_done_is_incomplete(monkeypatch):
    model = _model_with_transport(monkeypatch, lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=b": keep-alive\n\n"))
    events = [event async for event in Agent(model=model).stream("hi")]
    result = events[-1].result
    assert result.status == "error" and result.error_type == "IncompleteResponseError"
    assert "the stream ended before the response was complete" in result.error
