"""Fallback models (the next model after one fails for good) and per-run model settings."""

from __future__ import annotations

import pytest

from react_agent import Agent, Approve, IncompleteResponseError, ModelHTTPError, tool
from react_agent.fallback import FallbackModel, FallbackStep, stop_watching, watch_failures
from react_agent.model import OpenAIModel
from react_agent.resolve import resolve_model
from react_agent.testing import ScriptedModel, reply, tool_call


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _http(status: int | None) -> ModelHTTPError:
    return ModelHTTPError(status, None, "boom", url="http://model.test/v1/chat/completions")


@pytest.mark.parametrize("error", [
    _http(429), _http(500), _http(503), _http(None),
    IncompleteResponseError(None, None, "the stream ended early"),
], ids=["429", "500", "503", "connection", "incomplete"])
async def test_a_failed_model_hands_over_to_the_next(store, error):
    first = ScriptedModel([error, error], name="primary")  # each request starts at the first model
    second = ScriptedModel([tool_call("add", {"a": 2, "b": 3}), reply("5")], name="backup")
    agent = Agent(tools=[add], model=FallbackModel(first, second), store=store)

    result = await agent.run("2+3?")

    assert result.status == "completed" and result.output == "5"
    assert [step.model for step in result.steps] == ["backup", "backup"]
    assert len(first.requests) == 2 and len(second.requests) == 2
    assert [f.model for f in agent.model.failures] == ["primary", "primary"]


async def test_each_request_starts_at_the_first_model_and_usage_is_per_model(store):
    first = ScriptedModel([_http(502), reply("from primary")], name="primary")
    second = ScriptedModel([tool_call("add", {"a": 1, "b": 1})], name="backup")
    agent = Agent(tools=[add], model=FallbackModel(first, second), store=store)

    result = await agent.run("1+1?")

    assert result.status == "completed" and result.output == "from primary"
    assert [step.model for step in result.steps] == ["backup", "primary"]
    by_model = result.usage.by_model
    assert set(by_model) == {"primary", "backup"}
    assert by_model["primary"].requests == 1 and by_model["backup"].requests == 1
    assert by_model["backup"].prompt_tokens + by_model["primary"].prompt_tokens == result.usage.prompt_tokens


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_client_error_is_not_handed_over(store, status):
    first = ScriptedModel([_http(status)], name="primary")
    second = ScriptedModel([reply("should not be asked")], name="backup")
    result = await Agent(model=FallbackModel(first, second), store=store).run("hi")

    assert result.status == "error" and result.error_type == "ModelHTTPError"
    assert f"HTTP {status}" in (result.error or "")
    assert second.requests == []


async def test_the_last_models_failure_ends_the_run(store):
    first = ScriptedModel([_http(500)], name="primary")
    second = ScriptedModel([_http(None)], name="backup")
    result = await Agent(model=FallbackModel(first, second), store=store).run("hi")

    assert result.status == "error" and "connection failed" in (result.error or "")


async def test_watchers_hear_of_every_failed_model_with_its_times(store):
    first = ScriptedModel([_http(503)], name="primary")
    second = ScriptedModel([_http(400)], name="backup")
    model = FallbackModel(first, second)
    heard: list[FallbackStep] = []
    token = watch_failures(heard.append)
    try:
        assert watch_failures(heard.append) is None  # already watching: not twice
        result = await Agent(model=model, store=store).run("hi")
    finally:
        assert token is not None
        stop_watching(token)

    assert result.status == "error"
    assert [(f.model, f.error_type) for f in heard] == [("primary", "ModelHTTPError"), ("backup", "ModelHTTPError")]
    assert "HTTP 503" in heard[0].error and "HTTP 400" in heard[1].error
    assert 0 < heard[0].started_ns <= heard[0].ended_ns <= heard[1].started_ns <= heard[1].ended_ns
    assert [f.model for f in model.failures] == ["primary"]  # only the one another model was asked after


async def test_streaming_falls_back_before_any_text(store):
    first = ScriptedModel([_http(503)], name="primary")
    second = ScriptedModel([reply("hello there")], name="backup")
    agent = Agent(model=FallbackModel(first, second), store=store)

    texts = [e.text async for e in agent.stream("hi") if e.type == "text_delta"]

    assert "".join(texts) == "hello there"


def test_a_list_of_models_is_a_fallback_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = resolve_model(["gpt-4o-mini", "gpt-4.1-nano"], request_timeout=5, max_retries=1)

    assert isinstance(model, FallbackModel) and model.name == "gpt-4o-mini"
    assert [m.name for m in model.models] == ["gpt-4o-mini", "gpt-4.1-nano"]
    assert all(isinstance(m, OpenAIModel) and m.timeout == 5 and m.max_retries == 1 for m in model.models)
    assert isinstance(Agent(model=["gpt-4o-mini", "gpt-4.1-nano"]).model, FallbackModel)


async def test_run_settings_override_the_agents_for_one_run(store):
    model = ScriptedModel([reply("a"), reply("b")])
    agent = Agent(model=model, store=store, model_settings={"temperature": 0.7, "max_tokens": 100})

    await agent.run("one", model_settings={"temperature": 0.0})
    await agent.run("two")

    assert model.requests[0].settings == {"temperature": 0.0, "max_tokens": 100}
    assert model.requests[1].settings == {"temperature": 0.7, "max_tokens": 100}


async def test_run_settings_are_kept_for_a_resume(store):
    @tool(requires_approval=True)
    def pay(amount: int) -> str:
        """Pay."""
        return "paid"

    model = ScriptedModel([tool_call("pay", {"amount": 3}), reply("done")])
    agent = Agent(tools=[pay], model=model, store=store, model_settings={"temperature": 0.7})
    paused = await agent.run("pay 3", model_settings={"temperature": 0.1})
    assert paused.status == "awaiting_approval"

    done = await agent.resume(paused.run_id, {paused.pending[0].call_id: Approve()})

    assert done.status == "completed"
    assert [r.settings["temperature"] for r in model.requests] == [0.1, 0.1]
