"""``OpenAIModel`` against real HTTP responses (httpx mock transport, no network): streams that stop
early, ``error`` objects from the server, finish reasons, and the agent's timeout / retry settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from react_agent import Agent, IncompleteResponseError, ModelHTTPError
from react_agent.local import LocalModel
from react_agent.model import ModelResponse, OpenAIModel
from react_agent.testing import ScriptedModel

SSE = {"content-type": "text/event-stream"}
MESSAGES = [{"role": "user", "content": "Can I get a refund?"}]


def data(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


def text_chunk(text: str, finish_reason: str | None = None) -> dict:
    return {"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}]}


ROLE = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
CALL_START = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [
    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"or'}}]}}]}


class Parts(httpx2.AsyncByteStream):
    """A response body sent part by part; ``then`` (if given) is raised after the last part."""

    def __init__(self, *parts: bytes, then: Exception | None = None) -> None:
        self.parts, self.then = parts, then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        if self.then is not None:
            raise self.then


class Server:
    """Answers request n with ``answers[n]`` (the last one again when they run out) and counts requests."""

    def __init__(self, *answers: httpx2.Response | Parts | bytes) -> None:
        self.answers = answers
        self.requests: list[dict] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, httpx2.Response):
            return answer
        if isinstance(answer, Parts):
            return httpx2.Response(200, headers=SSE, stream=answer)
        return httpx2.Response(200, headers=SSE, content=answer)


@pytest.fixture
def serve(monkeypatch):
    """``serve(*answers, max_retries=n)`` → (model, server): an ``OpenAIModel`` whose HTTP goes to ``server``."""
    real_client = openai.AsyncOpenAI

    def start(*answers: httpx2.Response | Parts | bytes, max_retries: int = 2) -> tuple[OpenAIModel, Server]:
        server = Server(*answers)
        monkeypatch.setattr(openai, "AsyncOpenAI", lambda **kwargs: real_client(
            **{**kwargs, "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(server))}))
        model = OpenAIModel("gpt-4o-mini", base_url="http://mock/v1", api_key="x", max_retries=max_retries)
        model.retry_backoff = 0.0
        return model, server

    return start


async def collect(model: OpenAIModel) -> tuple[list[str], ModelResponse]:
    deltas: list[str] = []
    response = None
    async for item in model.stream(MESSAGES, [], {}):
        if isinstance(item, str):
            deltas.append(item)
        else:
            response = item
    assert response is not None
    return deltas, response


# -- a stream that closes before the answer is complete ----------------------------------------------
async def test_a_stream_closed_early_is_asked_again_then_fails_clearly(serve):
    model, server = serve(data(ROLE) + data(CALL_START), max_retries=2)
    with pytest.raises(IncompleteResponseError) as info:
        await collect(model)
    assert len(server.requests) == 3  # the first attempt and max_retries more
    assert isinstance(info.value, ModelHTTPError)
    assert (info.value.attempts, info.value.streamed_chars) == (3, 0)
    assert "the stream ended before the response was complete" in str(info.value)
    assert "after 3 attempts" in str(info.value) and "connection failed" not in str(info.value)


async def test_a_stream_closed_early_then_complete_succeeds(serve):
    model, server = serve(data(ROLE) + data(CALL_START),
                          data(ROLE) + data(text_chunk("No, ")) + data(text_chunk("sorry.", "stop")))
    deltas, response = await collect(model)
    assert len(server.requests) == 2 and server.requests[0] == server.requests[1]
    assert deltas == ["No, ", "sorry."]
    assert (response.text, response.finish_reason) == ("No, sorry.", "stop")
    assert response.tool_calls == []  # nothing of the abandoned attempt's tool call is kept


async def test_a_stream_closed_early_after_text_fails_at_once(serve):
    model, server = serve(data(text_chunk("The refund ")) + data(text_chunk("is not")),
                          data(text_chunk("Whole answer.", "stop")), max_retries=2)
    deltas: list[str] = []
    with pytest.raises(IncompleteResponseError) as info:
        async for item in model.stream(MESSAGES, [], {}):
            deltas.append(item)
    assert deltas == ["The refund ", "is not"]  # no second answer streamed after the first
    assert len(server.requests) == 1
    assert (info.value.attempts, info.value.streamed_chars) == (1, len("The refund is not"))
    assert "17 characters had already been streamed" in str(info.value)


async def test_a_run_whose_stream_closes_mid_answer_ends_in_error_not_with_half_an_answer(serve):
    model, server = serve(data(text_chunk("The refund is not")), max_retries=1)
    events = [event async for event in Agent(model=model).stream("Can I get a refund?")]
    result = events[-1].result
    assert (result.status, result.output, result.error_type) == ("error", None, "IncompleteResponseError")
    assert "the stream ended before the response was complete" in result.error
    assert len(server.requests) == 1


async def test_a_stream_broken_off_before_any_text_is_asked_again(serve):
    model, server = serve(Parts(data(ROLE), then=httpx2.ReadError("connection reset by peer")),
                          data(text_chunk("Yes.", "stop")))
    deltas, response = await collect(model)
    assert len(server.requests) == 2
    assert (deltas, response.text) == (["Yes."], "Yes.")


async def test_a_stream_broken_off_every_time_fails_as_a_connection_error(serve):
    model, server = serve(Parts(then=httpx2.ReadError("connection reset by peer")), max_retries=1)
    with pytest.raises(ModelHTTPError) as info:
        await collect(model)
    assert len(server.requests) == 2
    assert type(info.value) is ModelHTTPError
    assert "connection failed" in str(info.value) and "the stream broke off" in str(info.value)


@pytest.mark.parametrize("body", [
    data(text_chunk("Done.", "stop")),  # finish_reason without [DONE]: some servers omit it
    data(text_chunk("Done.")) + data("[DONE]"),  # [DONE] without finish_reason
], ids=["finish-reason-only", "done-only"])
async def test_either_end_marker_makes_a_stream_complete(serve, body):
    model, server = serve(body, max_retries=2)
    deltas, response = await collect(model)
    assert (deltas, response.text, len(server.requests)) == (["Done."], "Done.", 1)


# -- error objects from the server ------------------------------------------------------------------
def openrouter_error(code: int | str, message: str) -> dict:
    """OpenRouter's mid-stream error: an ``error`` object in a chunk that also has ``choices``."""
    return {"id": "gen-1", "object": "chat.completion.chunk", "error": {"code": code, "message": message},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}


@pytest.mark.parametrize(("code", "status"), [(502, 502), ("502", 502), ("rate_limit_exceeded", None)])
async def test_an_error_in_a_chunk_with_choices_is_an_http_error(serve, code, status):
    model, server = serve(data(ROLE) + data(openrouter_error(code, "Provider disconnected")) + data("[DONE]"))
    with pytest.raises(ModelHTTPError) as info:
        await collect(model)
    error = info.value
    assert (error.status_code, error.code, error.message, error.reported_in) == (
        status, code, "Provider disconnected", "stream")
    assert str(error) == (f"model request to http://mock/v1/chat/completions failed (server error in stream "
                          f"(code {code})): Provider disconnected")
    assert len(server.requests) == 1  # the server said what went wrong: not asked again here


async def test_an_error_in_a_plain_body_with_choices_is_an_http_error(serve):
    body = {"error": {"code": "rate_limit_exceeded", "message": "slow down"},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}
    model, _ = serve(httpx2.Response(200, json=body))
    with pytest.raises(ModelHTTPError) as info:
        await model.complete(MESSAGES, [], {})
    assert (info.value.status_code, info.value.code, info.value.reported_in) == (None, "rate_limit_exceeded",
                                                                                 "response")
    assert str(info.value) == ("model request to http://mock/v1/chat/completions failed (server error in response "
                               "(code rate_limit_exceeded)): slow down")


def test_only_a_real_connection_failure_says_connection_failed():
    assert "connection failed" in str(ModelHTTPError(None, None, "ConnectTimeout: timed out"))
    assert "HTTP 503" in str(ModelHTTPError(503, None, "overloaded"))
    reported = ModelHTTPError(None, {"error": "boom"}, "boom", reported_in="stream")
    assert str(reported) == "model request failed (server error in stream): boom"


# -- finish reasons ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["length", "content_filter"])
async def test_finish_reason_is_kept_when_streamed(serve, reason):
    model, _ = serve(data(text_chunk("The refund is")) + data(text_chunk("", reason))
                     + data({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}))
    _, response = await collect(model)
    assert (response.text, response.finish_reason, response.usage.completion_tokens) == ("The refund is", reason, 4)


@pytest.mark.parametrize("reason", ["length", "content_filter"])
async def test_finish_reason_is_kept_when_not_streamed(serve, reason):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "The refund is"},
                         "finish_reason": reason}]}
    model, _ = serve(httpx2.Response(200, json=body))
    response = await model.complete(MESSAGES, [], {})
    assert (response.text, response.finish_reason) == ("The refund is", reason)


# -- request timeout and retries per agent ----------------------------------------------------------
def test_request_timeout_and_max_retries_reach_the_openai_client():
    agent = Agent(model="gpt-4o-mini", base_url="http://mock/v1", api_key="x", request_timeout=7.5, max_retries=5)
    assert (agent.request_timeout, agent.max_retries) == (7.5, 5)
    client = agent.model.client
    assert (client.timeout, client.max_retries) == (7.5, 5)


def test_unset_timeout_and_retries_keep_the_models_defaults():
    client = Agent(model="gpt-4o-mini", base_url="http://mock/v1", api_key="x").model.client
    assert (client.timeout, client.max_retries) == (120.0, 2)
    local = Agent(model="local").model
    assert isinstance(local, LocalModel) and (local.timeout, local.max_retries) == (300.0, 0)


def test_the_local_model_takes_the_agents_timeout_and_retries():
    model = Agent(model="local", request_timeout=30.0, max_retries=1).model
    assert isinstance(model, LocalModel) and (model.timeout, model.max_retries) == (30.0, 1)


def test_a_model_instance_is_used_as_it_is():
    given = ScriptedModel([])
    assert Agent(model=given, request_timeout=1.0, max_retries=9).model is given
