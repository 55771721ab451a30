"""OpenTelemetry spans by the GenAI semantic conventions, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from react_agent import Agent, ModelHTTPError, tool
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


async def test_tracing_off_by_switch(store, spans, monkeypatch):
    monkeypatch.setenv("REACT_AGENT_TRACING", "0")
    await Agent(model=ScriptedModel([reply("hi")]), store=store).run("hi")
    assert spans.get_finished_spans() == ()
