"""OpenTelemetry spans by the GenAI semantic conventions, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from react_agent import Agent, ModelHTTPError, tool
from react_agent.fallback import FallbackModel
from react_agent.model import OpenAIModel
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls

EXPORTER = InMemorySpanExporter()


@pytest.fixture(autouse=True)
def spans(monkeypatch):
    """The global provider is set once per process (OpenTelemetry allows no more); each test reads its
    own spans."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    monkeypatch.delenv("REACT_AGENT_TRACING", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    EXPORTER.clear()
    return EXPORTER


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode() -> str:
    """Always fails."""
    raise ValueError("boom")


def by_name(spans, name):
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert found, [s.name for s in spans.get_finished_spans()]
    return found


async def test_a_run_is_a_span_with_chat_and_tool_spans_inside(store, spans):
    model = ScriptedModel([tool_calls([("add", {"a": 1, "b": 2}), ("explode", {})]), reply("3")], name="gpt-test")
    result = await Agent(name="calc", tools=[add, explode], model=model, store=store).run("1+2?")
    assert result.status == "completed"

    (run,) = by_name(spans, "invoke_agent calc")
    chats = by_name(spans, "chat gpt-test")
    (added,) = by_name(spans, "execute_tool add")
    (exploded,) = by_name(spans, "execute_tool explode")
    assert run.parent is None
    assert {s.parent.span_id for s in [*chats, added, exploded]} == {run.context.span_id}
    assert len({s.context.trace_id for s in spans.get_finished_spans()}) == 1

    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.agent.name"] == "calc"
    assert run.attributes["gen_ai.request.model"] == "gpt-test"
    assert run.attributes["gen_ai.usage.input_tokens"] == 40 and run.attributes["gen_ai.usage.output_tokens"] == 20
    assert len(chats) == 2
    for chat in chats:
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == "gpt-test"
        assert chat.attributes["gen_ai.usage.input_tokens"] == 20
        assert chat.attributes["gen_ai.usage.output_tokens"] == 10
        assert chat.kind == trace.SpanKind.CLIENT
        assert run.start_time <= chat.start_time <= chat.end_time <= run.end_time
    assert added.attributes["gen_ai.operation.name"] == "execute_tool"
    assert added.attributes["gen_ai.tool.name"] == "add"
    assert added.attributes["gen_ai.tool.call.id"] == result.steps[0].actions[0].id
    assert added.status.status_code == StatusCode.UNSET
    assert exploded.status.status_code == StatusCode.ERROR and "boom" in exploded.status.description
    # no content unless asked for
    every = {key for s in spans.get_finished_spans() for key in s.attributes}
    assert not {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.input.messages",
                "gen_ai.output.messages"} & every


async def test_content_is_captured_only_when_asked(store, spans, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")])
    await Agent(tools=[add], model=model, store=store).run("secret question")

    (added,) = by_name(spans, "execute_tool add")
    assert added.attributes["gen_ai.tool.call.arguments"] == '{"a": 1, "b": 2}'
    assert added.attributes["gen_ai.tool.call.result"] == "3"
    (run,) = by_name(spans, "invoke_agent agent")
    assert "secret question" in run.attributes["gen_ai.input.messages"]


async def test_a_nested_run_is_a_child_of_the_tool_call_that_started_it(store, spans):
    billing = Agent(name="billing", tools=[add], store=store,
                    model=ScriptedModel([tool_call("add", {"a": 40, "b": 2}), reply("42 dollars")]))
    front = Agent(name="front", tools=[billing.as_tool()], store=store,
                  model=ScriptedModel([tool_call("ask_billing", {"request": "refund?"}), reply("42 it is")]))
    result = await front.run("refund?")
    assert result.status == "completed" and result.children[0].output == "42 dollars"

    (outer,) = by_name(spans, "invoke_agent front")
    (asked,) = by_name(spans, "execute_tool ask_billing")
    (inner,) = by_name(spans, "invoke_agent billing")
    (added,) = by_name(spans, "execute_tool add")
    assert asked.parent.span_id == outer.context.span_id
    assert inner.parent.span_id == asked.context.span_id
    assert added.parent.span_id == inner.context.span_id
    assert asked.start_time <= inner.start_time <= inner.end_time <= asked.end_time


async def test_a_failed_run_has_an_error_status(store, spans):
    model = ScriptedModel([ModelHTTPError(503, None, "overloaded")])
    result = await Agent(model=model, store=store).run("hi")
    assert result.status == "error"

    (run,) = by_name(spans, "invoke_agent agent")
    assert run.status.status_code == StatusCode.ERROR and "overloaded" in run.status.description
    assert run.attributes["error.type"] == "ModelHTTPError"
    (chat,) = by_name(spans, "chat scripted")  # the request that failed is a span of its own
    assert chat.parent.span_id == run.context.span_id
    assert chat.status.status_code == StatusCode.ERROR and "overloaded" in chat.status.description
    assert chat.attributes["error.type"] == "ModelHTTPError"


def dead(name: str = "gpt-dead") -> OpenAIModel:
    """A model whose every request is refused at once (nothing listens on port 9): no network."""
    return OpenAIModel(name, base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0)


def summary(spans):
    return [(s.name, s.status.status_code.name) for s in spans.get_finished_spans()]


def assert_failed_chat(chat, run, model, error_type="ModelHTTPError", text="connection failed"):
    assert chat.parent.span_id == run.context.span_id and chat.kind == trace.SpanKind.CLIENT
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == model
    assert chat.attributes["error.type"] == error_type
    assert chat.status.status_code == StatusCode.ERROR and text in chat.status.description
    (event,) = [e for e in chat.events if e.name == "exception"]
    assert event.attributes["exception.type"] == error_type and text in event.attributes["exception.message"]
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    assert run.start_time <= chat.start_time <= chat.end_time <= run.end_time


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])  # the refused port 9 on loopback only
@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_a_request_that_failed_is_a_chat_span_with_an_error_status(store, spans, stream):
    agent = Agent(name="solo", model=dead(), store=store)
    if stream:
        events = [e async for e in agent.stream("hi")]
        result = events[-1].result
    else:
        result = await agent.run("hi")
    assert result.status == "error"

    assert summary(spans) == [("chat gpt-dead", "ERROR"), ("invoke_agent solo", "ERROR")]
    (run,) = by_name(spans, "invoke_agent solo")
    assert_failed_chat(by_name(spans, "chat gpt-dead")[0], run, "gpt-dead")


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])
@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_each_model_a_fallback_model_asked_is_a_chat_span(store, spans, stream):
    agent = Agent(name="fb", model=FallbackModel(dead(), ScriptedModel([reply("ok")])), store=store)
    if stream:
        result = [e async for e in agent.stream("hi")][-1].result
    else:
        result = await agent.run("hi")
    assert result.status == "completed" and result.output == "ok"

    assert summary(spans) == [("chat gpt-dead", "ERROR"), ("chat scripted", "UNSET"), ("invoke_agent fb", "UNSET")]
    (run,) = by_name(spans, "invoke_agent fb")
    (failed,) = by_name(spans, "chat gpt-dead")
    (answered,) = by_name(spans, "chat scripted")
    assert_failed_chat(failed, run, "gpt-dead")
    assert failed.end_time <= answered.start_time
    assert answered.attributes["gen_ai.usage.input_tokens"] == 20
    assert answered.attributes["gen_ai.usage.output_tokens"] == 10


async def test_when_every_fallback_model_fails_each_is_a_chat_span(store, spans):
    first = ScriptedModel([ModelHTTPError(500, None, "primary down")], name="primary")
    second = ScriptedModel([ModelHTTPError(503, None, "backup down")], name="backup")
    result = await Agent(name="fb", model=FallbackModel(first, second), store=store).run("hi")
    assert result.status == "error"

    assert summary(spans) == [("chat primary", "ERROR"), ("chat backup", "ERROR"), ("invoke_agent fb", "ERROR")]
    (run,) = by_name(spans, "invoke_agent fb")
    assert_failed_chat(by_name(spans, "chat primary")[0], run, "primary", text="primary down")
    assert_failed_chat(by_name(spans, "chat backup")[0], run, "backup", text="backup down")


class Answer(BaseModel):
    value: int


async def test_only_a_request_that_failed_gets_an_error_chat_span(store, spans):
    # a request failing after a tool step: one chat span answered, one failed
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), ModelHTTPError(None, None, "gone")], name="m")
    assert (await Agent(name="late", tools=[add], model=model, store=store).run("1+2?")).status == "error"
    assert summary(spans) == [("execute_tool add", "UNSET"), ("chat m", "UNSET"), ("chat m", "ERROR"),
                              ("invoke_agent late", "ERROR")]

    # runs that failed after their model answered: no request failed, so no failed chat span
    EXPORTER.clear()
    rejected = Agent(name="rejected", output_type=Answer, output_retries=0, store=store,
                     model=ScriptedModel([reply("not json")], name="m"))
    assert (await rejected.run("hi")).error_type == "UnexpectedModelBehavior"
    @tool
    def fail(n: int) -> str:
        """Always fails."""
        raise ValueError(f"boom {n}")

    retries = Agent(name="retries", tools=[fail], store=store,
                    model=ScriptedModel([tool_call("fail", {"n": n}) for n in range(4)], name="m"))
    assert (await retries.run("hi")).error_type == "ToolRetriesExceeded"

    def failing_hook(event):
        if event.type == "step_end":
            raise RuntimeError("hook broke")

    hooked = Agent(name="hooked", tools=[add], store=store, hooks=[failing_hook],
                   model=ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")], name="m"))
    assert (await hooked.run("hi")).error_type == "HookError"
    statuses = [status for name, status in summary(spans) if name.startswith("chat")]
    assert statuses == ["UNSET"] * 6, summary(spans)


async def test_tracing_off_by_switch(store, spans, monkeypatch):
    monkeypatch.setenv("REACT_AGENT_TRACING", "0")
    await Agent(model=ScriptedModel([reply("hi")]), store=store).run("hi")
    assert spans.get_finished_spans() == ()
