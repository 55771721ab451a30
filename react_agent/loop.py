"""The ReAct loop. ``run_loop`` is the whole algorithm; each turn ends in a typed next step.

Thought = the assistant's text beside its tool calls; Action = each tool call; Observation = each
tool result. Model mistakes become observations; limits end the run with a status; framework bugs
raise. The history sent to the model is always valid: every tool call gets exactly one tool message.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .agent import DelegationReport
from .context import ContextWindow, truncate
from .errors import ReactAgentError, RunError, ToolRetriesExceeded
from .model import ModelResponse, RawToolCall
from .steps import (
    Event,
    Observation,
    RunEnd,
    RunResult,
    RunStart,
    RunStatus,
    Step,
    StepEnd,
    TextDelta,
    ToolCall,
    ToolEnd,
    ToolStart,
)
from .tools import Tool, ToolContext, ToolOutcome, describe_validation_error
from .usage import Usage

if TYPE_CHECKING:
    from .agent import Agent
    from .memory import Store

__all__ = ["RunState", "close_interrupted", "run_loop"]


@dataclass(slots=True)
class RunAgain:
    """The model acted; ask it again with the observations."""


@dataclass(slots=True)
class FinalOutput:
    output: Any


@dataclass(slots=True)
class Stop:
    status: RunStatus
    error: ReactAgentError | None = None
    output: Any = None


NextStep = RunAgain | FinalOutput | Stop
_NO_ANSWER: Any = object()


@dataclass
class RunState:
    agent: Agent
    run_id: str
    session: str
    store: Store
    system: str
    history: list[dict[str, Any]]
    steps: list[Step]
    depth: int = 0
    usage: Usage = field(default_factory=Usage)
    failures: dict[str, int] = field(default_factory=dict)  # consecutive failures per tool name
    streaks: dict[str, int] = field(default_factory=dict)  # call signature -> turns in a row it was made
    final: Any = _NO_ANSWER  # set when the model calls the answer tool with valid arguments
    output_retries: int = 0
    children: list[RunResult] = field(default_factory=list)  # nested runs of agents called as tools
    started: float = field(default_factory=time.perf_counter)
    context: ContextWindow = field(default_factory=ContextWindow)  # what of history each request sends

    unsaved: list[dict[str, Any]] = field(default_factory=list)  # appended to history, not yet stored
    held: list[Event] = field(default_factory=list)  # the last ToolEnd of a step: sent once it is journaled

    @property
    def tokens_spent(self) -> int:
        """What ``max_tokens_total`` limits: this run's tokens and those of the runs it delegated to."""
        return self.usage.total_tokens + sum(child.total_usage.total_tokens for child in self.children)

    def append(self, message: dict[str, Any]) -> None:
        """Add to history; stored by the next ``flush`` (before any tool runs) or ``record``."""
        self.history.append(message)
        self.unsaved.append(message)

    def flush(self) -> None:
        if self.unsaved:
            self.store.append_many(self.session, self.unsaved)
            self.unsaved = []

    def record(self, step: Step) -> None:
        """Journal the step (before the next model call) so a crashed run can resume: its messages,
        the step and the run's counters in one transaction."""
        self.steps.append(step)
        store = self.store
        with store.transaction():
            self.flush()
            store.add_step(self.run_id, step.index, step.model_dump())
            store.set_progress(self.run_id, steps=len(self.steps), usage=self.usage.model_dump())


async def run_loop(  # noqa: PLR0912 - the whole algorithm is one function on purpose (README)
    state: RunState, *, stream: bool = False, resume: bool = False
) -> AsyncIterator[Event]:
    agent = state.agent
    state.flush()  # the new question (and answers to calls a crash left open) before anything else
    yield RunStart(state.run_id, agent.name, state.session, _last_user_text(state.history))
    next_step: NextStep = RunAgain()
    pending = _pending_calls(state.history) if resume else None
    if pending:  # resuming after a crash: run the calls that have no stored result, then go on
        step = Step(index=len(state.steps), thought=state.history[-1 - pending[1]].get("content") or None,
                    actions=[ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in pending[0]])
        async for event in _act(state, step, pending[0], run=True, resumed=True):
            yield event
        next_step = _after_actions(state, step)
        state.record(step)
        for event in _journaled(state):
            yield event
        yield StepEnd(step)
    while isinstance(next_step, RunAgain):
        if limit := _limit_reached(state):
            next_step = limit
            break
        step = Step(index=len(state.steps))
        started = time.perf_counter()
        response: ModelResponse | None = None
        try:
            async for item in _ask_model(state, stream):
                if isinstance(item, str):
                    yield TextDelta(item, step.index)
                else:
                    response = item
        except RunError as exc:
            next_step = Stop("error", exc, _best_partial(state))
            break
        assert response is not None, "a model stream must end with a ModelResponse"
        step.usage = response.usage
        state.usage.add(response.usage)
        if response.tool_calls:
            step.thought = response.text or None
            step.actions = [ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in response.tool_calls]
            state.append(response.message())
            over_budget = agent.max_tokens_total is not None and state.tokens_spent > agent.max_tokens_total
            async for event in _act(state, step, response.tool_calls, run=not over_budget):
                yield event
            if over_budget:
                next_step = Stop("token_budget", output=_best_partial(state, step))
            else:
                next_step = _after_actions(state, step)
        else:
            next_step = _conclude(state, step, response)
        step.ms = (time.perf_counter() - started) * 1000
        state.record(step)
        for event in _journaled(state):
            yield event
        yield StepEnd(step)
    assert not isinstance(next_step, RunAgain)
    yield RunEnd(_result(state, next_step))


def _limit_reached(state: RunState) -> Stop | None:
    agent = state.agent
    if len(state.steps) >= agent.max_steps:
        return Stop("max_steps", output=_best_partial(state))
    if agent.max_tokens_total is not None and state.tokens_spent >= agent.max_tokens_total:
        return Stop("token_budget", output=_best_partial(state))
    return None


async def _ask_model(state: RunState, stream: bool) -> AsyncIterator[str | ModelResponse]:
    agent = state.agent
    messages = await _request_messages(state)
    settings = {**getattr(agent.model, "default_settings", {}), **agent.model_settings}
    if stream:
        async for item in agent.model.stream(messages, agent.tool_schemas, settings):
            yield item
    else:
        yield await agent.model.complete(messages, agent.tool_schemas, settings)


async def _request_messages(state: RunState) -> list[dict[str, Any]]:
    return await state.context.messages(state.system, state.history, state.agent, state.usage)


def _journaled(state: RunState) -> list[Event]:
    held, state.held = state.held, []
    return held


async def _act(state: RunState, step: Step, calls: list[RawToolCall], *, run: bool,
               resumed: bool = False) -> AsyncIterator[Event]:
    """Run the turn's tool calls (concurrently unless a tool is sequential) and answer each one.

    Stored results are only looked up for the calls of a resumed step: a fresh call whose id happens
    to repeat an earlier one (servers that omit ids, a new ``ScriptedModel``) must still run."""
    agent = state.agent
    context = ToolContext(state.run_id, state.session, agent.name, step.index, state.depth)
    outcomes: dict[int, ToolOutcome] = {}
    runnable: list[tuple[int, RawToolCall, Tool]] = []
    streaks = _update_streaks(state, calls)
    for i, call in enumerate(calls):
        yield ToolStart(step.actions[i], step.index)
        stored = state.store.tool_result(state.session, call.id) if resumed else None
        if stored is not None:  # resumed run: this call already ran before the crash
            outcomes[i] = ToolOutcome(stored["kind"], stored["content"])
        elif not run:
            outcomes[i] = ToolOutcome("skipped", "Not run: the run stopped (token budget or interruption).")
        elif isinstance(found := _runnable(state, step, call, streaks[i]), Tool):
            runnable.append((i, call, found))
        else:
            outcomes[i] = found

    unsaved = len(runnable)
    lock = threading.Lock()

    def keeper(call: RawToolCall) -> Callable[[ToolOutcome], None]:
        def keep(outcome: ToolOutcome) -> None:
            """Save a result the moment its tool finishes (in the tool's thread for sync tools). The
            turn's last result needs no write of its own: the step is journaled (with every tool
            message) before anything else runs, and its ``ToolEnd`` is held until then."""
            nonlocal unsaved
            with lock:
                unsaved -= 1
                last = unsaved == 0
            if not last:
                content = truncate(outcome.content, agent.max_tool_output)  # as the model will see it
                state.store.save_tool_result(state.session, call.id, {"kind": outcome.kind, "content": content})
        return keep

    async def invoke(i: int, call: RawToolCall, tool: Tool) -> tuple[int, ToolOutcome]:
        outcome = await tool.invoke(call.arguments, context, keeper(call))
        if isinstance(outcome.value, DelegationReport) and outcome.value.run is not None:
            state.children.append(outcome.value.run)
        outcome.content = truncate(outcome.content, agent.max_tool_output)
        return i, outcome

    left = len(runnable)

    def finished(i: int, outcome: ToolOutcome) -> ToolEnd | None:
        """Record a finished call; the turn's last ``ToolEnd`` waits until the step is journaled."""
        nonlocal left
        left -= 1
        outcomes[i] = outcome
        event = ToolEnd(_observation(calls[i], outcome), step.index)
        if left == 0:
            state.held.append(event)
            return None
        return event

    if len(runnable) > 1:
        # Results are saved as each tool finishes, so the calls they answer must be on disk first. A
        # lone call needs no write of its own: if it dies with the process, a resumed run asks the
        # model again (the call never had a result to keep); one SQLite transaction a step saved.
        state.flush()
    parallel = [invoke(i, c, t) for i, c, t in runnable if not t.sequential]
    for next_done in asyncio.as_completed(parallel):
        if (event := finished(*await next_done)) is not None:
            yield event
    for i, call, known in runnable:
        if known.sequential and (event := finished(*await invoke(i, call, known))) is not None:
            yield event
    _answer_calls(state, step, calls, outcomes)


def _answer_calls(state: RunState, step: Step, calls: list[RawToolCall], outcomes: dict[int, ToolOutcome]) -> None:
    """One tool message per call, in call order (so requests are deterministic); count failures."""
    for i, call in enumerate(calls):
        outcome = outcomes[i]
        step.observations.append(_observation(call, outcome))
        state.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
        if outcome.ok:
            state.failures.pop(call.name, None)
        elif outcome.kind not in ("skipped", "loop"):
            state.failures[call.name] = state.failures.get(call.name, 0) + 1


def _runnable(state: RunState, step: Step, call: RawToolCall, streak: int) -> Tool | ToolOutcome:
    """The tool to run for ``call``, or the outcome that answers it without running anything."""
    agent = state.agent
    if streak >= agent.loop_limit:
        return ToolOutcome("loop", f"Not run: {call.name} was called with the same arguments in "
                                   f"{streak} turns in a row.")
    answer_tool = agent.answer_tool
    if answer_tool is not None and call.name == answer_tool.name:
        return _take_answer(state, step, answer_tool, call)
    if (known := agent.tools.get(call.name)) is None:
        return ToolOutcome("unknown_tool", (
            f"There is no tool named {call.name!r}. Available tools: {', '.join(agent.tools) or 'none'}."))
    return known


def _observation(call: RawToolCall, outcome: ToolOutcome) -> Observation:
    return Observation(call_id=call.id, tool=call.name, kind=outcome.kind, content=outcome.content, ms=outcome.ms)


def _update_streaks(state: RunState, calls: list[RawToolCall]) -> list[int]:
    """For each call, in how many consecutive turns (this one included) the same call was made.
    Identical calls inside one turn count once: a turn may fan out the same call on purpose."""
    signatures = [f"{c.name}:{_normal_arguments(c.arguments)}" for c in calls]
    state.streaks = {sig: state.streaks.get(sig, 0) + 1 for sig in set(signatures)}
    return [state.streaks[sig] for sig in signatures]


def _normal_arguments(raw: str) -> str:
    try:
        return json.dumps(json.loads(raw or "{}"), sort_keys=True)
    except ValueError:
        return raw


def _take_answer(state: RunState, step: Step, answer_tool: Tool, call: RawToolCall) -> ToolOutcome:
    """The model called the answer tool: its validated arguments are the run's output."""
    try:
        parsed = answer_tool.validate(call.arguments)
    except ValidationError as exc:
        return ToolOutcome("invalid_arguments", describe_validation_error(answer_tool, call.arguments, exc))
    state.final = parsed if state.agent.output_type else parsed.model_dump()["answer"]
    step.answer = parsed.model_dump_json() if state.agent.output_type else str(state.final)
    return ToolOutcome("ok", "Final answer recorded.")


def _after_actions(state: RunState, step: Step) -> NextStep:
    if state.final is not _NO_ANSWER:
        return FinalOutput(state.final)
    if any(obs.kind == "loop" for obs in step.observations):
        return Stop("loop_detected", output=_best_partial(state, step))
    for name, count in state.failures.items():
        tool = state.agent.tools.get(name)
        limit = tool.max_retries if tool else state.agent.max_unknown_tool_calls
        if count > limit:
            last = next((o.content for o in reversed(step.observations) if o.tool == name), "")
            return Stop("error", ToolRetriesExceeded(name, count, last), _best_partial(state, step))
    return RunAgain()


def _conclude(state: RunState, step: Step, response: ModelResponse) -> NextStep:
    """No tool call: a final answer — validated against ``output_type`` when there is one."""
    agent = state.agent
    text = (response.text or "").strip()
    step.answer = text
    state.append(response.message())
    try:
        if not text:
            raise ValueError("The answer was empty. Answer the question, or call a tool.")
        output = parse_output(agent.output_type, text) if agent.output_type else text
    except (ValueError, ValidationError) as exc:
        problem = _describe_output_error(exc)
        if state.output_retries >= agent.output_retries:
            from .errors import UnexpectedModelBehavior  # noqa: PLC0415 - rare path

            return Stop("error", UnexpectedModelBehavior(f"final answer rejected: {problem}", text),
                        _best_partial(state, step))
        state.output_retries += 1
        step.note = problem
        state.append({"role": "user", "content": f"Your answer was not accepted: {problem}"})
        return RunAgain()
    return FinalOutput(output)


def parse_output(output_type: type[BaseModel], text: str) -> BaseModel:
    """Validate the model's final text as JSON for ``output_type`` (a ```json fence is allowed)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    start, end = body.find("{"), body.rfind("}")
    if start > 0 and end > start:
        body = body[start:end + 1]
    return output_type.model_validate_json(body)


def _describe_output_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors(include_url=False))
        return f"it must be JSON matching the required schema ({errors}). Reply with the corrected JSON only."
    return str(exc)


def _best_partial(state: RunState, current: Step | None = None) -> str | None:
    """The latest answer or thought, counting ``current``: the step ending now, not yet recorded."""
    steps = state.steps if current is None else [*state.steps, current]
    for step in reversed(steps):
        if step.answer or step.thought:
            return step.answer or step.thought
    return None


def _last_user_text(history: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in reversed(history) if m["role"] == "user"), "")


def close_interrupted(state: RunState) -> None:
    """Before a new input on a session whose last run crashed mid-step: answer the open tool calls
    (with their stored result if the tool had finished, else a "not run" note) so history stays valid."""
    pending = _pending_calls(state.history)
    for call in pending[0] if pending else []:
        stored = state.store.tool_result(state.session, call.id)
        content = stored["content"] if stored else "Not run: the run was interrupted before this call finished."
        state.append({"role": "tool", "tool_call_id": call.id, "content": content})


def _pending_calls(history: list[dict[str, Any]]) -> tuple[list[RawToolCall], int] | None:
    """Tool calls at the end of history that have no tool message yet, and how many messages follow them."""
    for back, message in enumerate(reversed(history)):
        if message["role"] == "tool":
            continue
        if message["role"] != "assistant" or not message.get("tool_calls"):
            return None
        answered = {m["tool_call_id"] for m in history[len(history) - back:]}
        missing = [RawToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                   for c in message["tool_calls"] if c["id"] not in answered]
        return (missing, back) if missing else None
    return None


def _result(state: RunState, end: FinalOutput | Stop) -> RunResult:
    agent = state.agent
    status: RunStatus = "completed" if isinstance(end, FinalOutput) else end.status
    error = end.error if isinstance(end, Stop) else None
    result = RunResult(
        run_id=state.run_id, agent=agent.name, session=state.session, model=agent.model.name, status=status,
        output=end.output, steps=state.steps, usage=state.usage,
        error=str(error) if error else None, error_type=type(error).__name__ if error else None,
        ms=(time.perf_counter() - state.started) * 1000, children=state.children,
    )
    output = end.output.model_dump(mode="json") if isinstance(end.output, BaseModel) else end.output
    state.store.update_run(state.run_id, status=status, output=output, error=result.error,
                           usage=state.usage.model_dump(), ms=result.ms)
    return result
