"""OpenTelemetry traces by the GenAI semantic conventions (the ``otel`` extra).

A subscriber to the run's events, like any hook — the loop knows nothing of it. Each run is a span
``invoke_agent AGENT``; each model request ``chat MODEL`` (from the step's usage and latency, with its
real start and end times); each tool call ``execute_tool TOOL``. A request that failed is a ``chat`` span
with an error status, ``error.type`` and an ``exception`` event: each model a ``FallbackModel`` gave up
on (it tells ``fallback.watch_failures``, with the times), and the request whose failure ended the run
(from the run's end: it began when the step before it ended). A run started inside a tool call (an
agent used as a tool, a router's specialist) is a child span: of that tool call's span when it is the
only call of its parent running, else of the parent run's span. Errors set the span status.

On when ``opentelemetry`` is installed and configured the standard way: a ``TracerProvider`` set by the
program (``trace.set_tracer_provider``), or the ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_TRACES_EXPORTER=otlp``: an SDK provider with the OTLP/HTTP exporter is set up once).
``REACT_AGENT_TRACING=0`` turns it off. Prompts, arguments and results are recorded only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .fallback import FallbackStep, stop_watching, watch_failures
from .steps import Event, RunEnd, RunResult, RunStart, StepEnd, ToolEnd, ToolStart

__all__ = ["Tracer", "tracing_hooks"]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_FAILED = {"invalid_arguments", "unknown_tool", "tool_error", "timeout", "interrupted"}
# errors that end a run while no model request is under way
_NOT_A_REQUEST = {"HookError", "ToolRetriesExceeded", "ContextBudgetExceeded"}


@dataclass(eq=False)
class _RunSpans:
    run_id: str
    span: Any
    tools: dict[str, Any] = field(default_factory=dict)  # call id -> its open span
    token: contextvars.Token[_RunSpans | None] | None = None
    watching: contextvars.Token[Any] | None = None  # of fallback.watch_failures
    asking_since: int | None = None  # time_ns a model request may have begun (None: a tool step is under way)
    failed: FallbackStep | None = None  # the last failure a FallbackModel told of since then


_current: contextvars.ContextVar[_RunSpans | None] = contextvars.ContextVar("react_agent_run_span", default=None)


def _capture() -> bool:
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in ("1", "true", "yes")


class Tracer:
    """The hook that turns events into spans. ``tracer``: an OpenTelemetry ``Tracer`` (default: the
    global provider's ``react_agent`` tracer)."""

    def __init__(self, tracer: Any = None) -> None:
        from opentelemetry import trace  # noqa: PLC0415

        self._trace = trace
        self._tracer = tracer or trace.get_tracer("react_agent")
        self._runs: dict[str, _RunSpans] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStart):
            self._run_start(event)
        elif isinstance(event, ToolStart):
            self._tool_start(event)
        elif isinstance(event, ToolEnd):
            self._tool_end(event)
        elif isinstance(event, StepEnd):
            self._step_end(event)
        elif isinstance(event, RunEnd):
            self._run_end(event)

    def _run_start(self, event: RunStart) -> None:
        parent = _current.get()
        context = None
        if parent is not None:  # a nested run: inside its parent's only running call, or its run
            holder = next(iter(parent.tools.values())) if len(parent.tools) == 1 else parent.span
            context = self._trace.set_span_in_context(holder)
        attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": event.agent,
                                      "gen_ai.conversation.id": event.session or "", "react_agent.run_id": event.run_id}
        if _capture():
            attributes["gen_ai.input.messages"] = json.dumps([{"role": "user", "content": event.input}])
        span = self._tracer.start_span(f"invoke_agent {event.agent}", context=context, attributes=attributes)
        run = _RunSpans(event.run_id, span, asking_since=time.time_ns())
        run.token = _current.set(run)  # tool tasks (and the runs they start) are created after this
        run.watching = watch_failures(self._request_failed)
        self._runs[event.run_id] = run

    def _run_of(self, event: Event | None) -> _RunSpans | None:
        run = _current.get()
        return run if run is not None and self._runs.get(run.run_id) is run else None

    def _tool_start(self, event: ToolStart) -> None:
        run = self._run_of(event)
        if run is None:
            return
        run.asking_since = None
        call = event.call
        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name,
                                      "gen_ai.tool.call.id": call.id, "gen_ai.tool.type": "function"}
        if _capture():
            attributes["gen_ai.tool.call.arguments"] = call.arguments
        run.tools[call.id] = self._tracer.start_span(
            f"execute_tool {call.name}", context=self._trace.set_span_in_context(run.span), attributes=attributes)

    def _tool_end(self, event: ToolEnd) -> None:
        run = self._run_of(event)
        if run is None:
            return
        run.asking_since = None
        obs = event.observation
        span = run.tools.pop(obs.call_id, None)
        if span is None:  # answered without running (e.g. the answer tool): a span of its own
            span = self._tracer.start_span(
                f"execute_tool {obs.tool}", context=self._trace.set_span_in_context(run.span),
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": obs.tool,
                            "gen_ai.tool.call.id": obs.call_id, "gen_ai.tool.type": "function"})
        span.set_attribute("react_agent.outcome", obs.kind)
        if _capture():
            span.set_attribute("gen_ai.tool.call.result", obs.content)
        if obs.kind in _FAILED:
            span.set_attribute("error.type", obs.kind)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, obs.content[:500]))
        span.end()

    def _step_end(self, event: StepEnd) -> None:
        run = self._run_of(event)
        step = event.step
        if run is None:
            return
        # a step that answered ends the run (unless its answer was sent back): no request after it
        now, failed = time.time_ns(), run.failed
        run.asking_since = now if step.answer is None or step.note is not None else None
        run.failed = None
        if not step.usage.requests:
            return
        if failed is not None:  # the request that answered began when the model before it failed
            start_ns = failed.ended_ns
            end_ns = min(start_ns + int(step.usage.latency_ms * 1e6), now)
        else:
            end_ns = now - int(max(step.ms - step.usage.latency_ms, 0.0) * 1e6)
            start_ns = end_ns - int(step.usage.latency_ms * 1e6)
        model = step.model or ""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": step.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": step.usage.completion_tokens,
        }
        if step.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [step.finish_reason]
        if _capture() and (step.answer or step.thought):
            attributes["gen_ai.output.messages"] = json.dumps(
                [{"role": "assistant", "content": step.answer or step.thought}])
        span = self._tracer.start_span(f"chat {model}", context=self._trace.set_span_in_context(run.span),
                                       kind=self._trace.SpanKind.CLIENT, attributes=attributes, start_time=start_ns)
        span.end(end_time=max(end_ns, start_ns))

    def _request_failed(self, failure: FallbackStep) -> None:
        """A model of a ``FallbackModel`` failed (told by ``fallback.watch_failures``)."""
        run = self._run_of(None)
        if run is None:
            return
        run.failed = failure
        self._failed_chat(run, failure)

    def _failed_chat(self, run: _RunSpans, failure: FallbackStep) -> None:
        error_type = failure.error_type or "error"
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": failure.model,
                                      "error.type": error_type}
        span = self._tracer.start_span(
            f"chat {failure.model}", context=self._trace.set_span_in_context(run.span),
            kind=self._trace.SpanKind.CLIENT, attributes=attributes, start_time=failure.started_ns)
        end_ns = max(failure.ended_ns, failure.started_ns)
        span.add_event("exception", {"exception.type": error_type, "exception.message": failure.error},
                       timestamp=end_ns)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, failure.error[:500]))
        span.end(end_time=end_ns)

    def _request_failure_ended(self, run: _RunSpans, result: RunResult) -> None:
        """The run ended in the failure of a model request under way: a ``chat`` span for it, unless a
        ``FallbackModel`` told of that failure already."""
        if (result.status != "error" or run.asking_since is None or result.error_type in _NOT_A_REQUEST
                or (run.failed is not None and result.error == run.failed.error)):
            return
        self._failed_chat(run, FallbackStep(result.model, result.error or "", result.error_type or "",
                                            run.asking_since, time.time_ns()))

    def _run_end(self, event: RunEnd) -> None:
        result = event.result
        run = self._runs.pop(result.run_id, None)
        if run is None:
            return
        self._request_failure_ended(run, result)
        if run.watching is not None:
            stop_watching(run.watching)
        for span in run.tools.values():  # calls the run ended without an answer
            span.end()
        span = run.span
        span.set_attribute("gen_ai.request.model", result.model)
        span.set_attribute("gen_ai.usage.input_tokens", result.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", result.usage.completion_tokens)
        span.set_attribute("react_agent.status", result.status)
        if _capture() and result.output is not None:
            span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "content": str(result.output)}]))
        if result.status == "error":
            span.set_attribute("error.type", result.error_type or "error")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, result.error or ""))
        span.end()
        if run.token is not None:
            try:
                _current.reset(run.token)
            except ValueError:  # ended in another context (a stream closed elsewhere): just clear it
                _current.set(None)


_state: dict[str, Tracer | None] = {}


def _configured() -> bool:
    """A provider is set, or the OTEL_* variables ask for the OTLP exporter (set up here, once)."""
    from opentelemetry import trace  # noqa: PLC0415

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if wanted == "none" or not (wanted == "otlp" or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    except ImportError:
        return False
    provider = TracerProvider()  # service name and resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def tracing_hooks() -> list[Tracer]:
    """``[Tracer()]`` when tracing is on (see the module's docstring), else ``[]`` — decided once a
    provider is there; cheap after the first call."""
    if os.environ.get("REACT_AGENT_TRACING", "").strip() in ("0", "false", "off"):
        return []
    found = _state.get("tracer")
    if found is not None:
        return [found]
    if "missing" in _state:
        return []
    try:
        import opentelemetry.trace  # noqa: PLC0415, F401
    except ImportError:
        _state["missing"] = None
        return []
    if not _configured():
        return []
    _state["tracer"] = tracer = Tracer()
    return [tracer]
