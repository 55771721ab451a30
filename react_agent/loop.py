"""The ReAct loop. ``run_loop`` is the whole algorithm; each turn ends in a typed next step.

Thought = the assistant's text beside its tool calls; Action = each tool call; Observation = each
tool result. Model mistakes become observations; limits end the run with a status; framework bugs
raise. The history sent to the model is always valid: every tool call gets exactly one tool message.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .acting import act, answer_calls, stored_outcome, take_answer
from .approval import Decision, PendingCall, unfence
from .context import ContextWindow
from .errors import ReactAgentError, RunBlocked, RunError, ToolRetriesExceeded, UnexpectedModelBehavior
from .guardrails import first_refusal
from .history import Turn
from .journal import Journal
from .model import ModelResponse, RawToolCall
from .steps import (
    Event,
    RunEnd,
    RunResult,
    RunStart,
    RunStatus,
    Step,
    StepEnd,
    TextDelta,
    ToolCall,
)
from .tools import ToolOutcome
from .usage import Usage

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["FinalOutput", "RunState", "Stop", "finish", "run_loop"]


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
    journal: Journal
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
    resumed: Turn | None = None  # resuming: the interrupted turn whose open calls come first
    current: Step | None = None  # the step under way (not yet in ``steps``)
    turn: tuple[int, list[RawToolCall], dict[int, ToolOutcome]] | None = None  # the turn being answered
    last_ms: float | None = None  # the last step's duration, journaled with the next entry
    final_message: dict[str, Any] | None = None  # a text final answer, journaled with the end
    fence: str = ""  # this run's delimiter around untrusted tool output
    tainted: bool = False  # untrusted tool output is in the conversation
    pending: list[PendingCall] = field(default_factory=list)  # calls waiting for a human decision
    nested_approvals: dict[str, dict[str, Decision]] = field(default_factory=dict)  # a resume's, by nested run
    context: ContextWindow = field(default_factory=ContextWindow)  # what of history each request sends
    deps: Any = None  # the caller's dependencies for tools (ToolContext.deps); never journaled
    model_settings: dict[str, Any] = field(default_factory=dict)  # this run's, over the agent's

    @property
    def run_id(self) -> str:
        return self.journal.run_id

    @property
    def session(self) -> str:
        return self.journal.session

    @property
    def closed(self) -> bool:
        """The run's end is journaled."""
        return self.journal.record.status != "running"

    @property
    def tokens_spent(self) -> int:
        """What ``max_tokens_total`` limits: this run's tokens and those of the runs it delegated to."""
        return self.usage.total_tokens + sum(child.total_usage.total_tokens for child in self.children)


async def run_loop(state: RunState, *, stream: bool = False) -> AsyncGenerator[Event, None]:
    agent = state.agent
    yield RunStart(state.run_id, agent.name, state.session, _last_user_text(state.history))
    next_step: NextStep = RunAgain()
    result: RunResult | None = None
    if (turn := state.resumed) is not None and turn.open:  # after a crash or a pause: settle its open calls
        step = state.current = _reopen(state, turn)
        calls = [RawToolCall(a.id, a.name, a.arguments) for a in step.actions]
        async with aclosing(act(state, step, calls, resumed=turn)) as acting:
            async for event in acting:
                yield event
        next_step = await _guarded(state, _after_actions(state, step))
        result = _close(state, step, next_step)
        yield StepEnd(step)
    else:
        next_step = await _opening(state, turn)
    while isinstance(next_step, RunAgain):
        if limit := _limit_reached(state):
            next_step = limit
            break
        step = state.current = Step(index=len(state.steps))
        started = time.perf_counter()
        response: ModelResponse | None = None
        try:
            async for item in _ask_model(state, stream):
                if isinstance(item, str):
                    yield TextDelta(item, step.index)
                else:
                    response = item
        except RunError as exc:
            state.current = None
            next_step = Stop("error", exc, best_partial(state))
            break
        assert response is not None, "a model stream must end with a ModelResponse"
        step.model = response.model or agent.model.name
        step.usage, step.finish_reason = response.usage.answered_by(step.model), response.finish_reason
        state.usage.add(step.usage)
        if response.tool_calls:
            step.thought = response.text or None
            step.actions = [ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in response.tool_calls]
            over_budget = agent.max_tokens_total is not None and state.tokens_spent > agent.max_tokens_total
            async with aclosing(act(state, step, response.tool_calls, message=response.message(),
                                     run=not over_budget)) as acting:
                async for event in acting:
                    yield event
            next_step = Stop("token_budget", output=best_partial(state, step)) if over_budget else (
                _after_actions(state, step))
        else:
            next_step = _conclude(state, step, response)
        next_step = await _guarded(state, next_step)
        step.ms = (time.perf_counter() - started) * 1000
        result = _close(state, step, next_step)
        yield StepEnd(step)
    assert not isinstance(next_step, RunAgain)
    yield RunEnd(result or finish(state, next_step))


async def _opening(state: RunState, turn: Turn | None) -> NextStep:
    """Before the first request: a resumed run whose last turn gave the final answer ends with it; a new
    question must pass the input guardrails."""
    if turn is not None:
        return await _guarded(state, _journaled_answer(state, turn))
    if not state.steps and (refusal := await first_refusal(state.agent.input_guardrails,
                                                           _last_user_text(state.history))):
        return Stop("blocked" if isinstance(refusal, RunBlocked) else "error", refusal)
    return RunAgain()


def _reopen(state: RunState, turn: Turn) -> Step:
    """The step of an interrupted turn, taken up again: its tool messages are added anew, all of them
    in call order, once its open calls are settled."""
    step = turn.step_record()
    step.observations = []
    at = max(i for i, m in enumerate(state.history) if m is turn.message)
    del state.history[at + 1:]
    return step


def _close(state: RunState, step: Step, next_step: NextStep) -> RunResult | None:
    """The step is over: on to the record (its duration is journaled with the next entry). After the
    last step the run ends here, so its end is on disk before anyone hears of that step."""
    state.steps.append(step)
    state.current = None
    state.last_ms = step.ms
    return None if isinstance(next_step, RunAgain) else finish(state, next_step)


def _limit_reached(state: RunState) -> Stop | None:
    agent = state.agent
    if len(state.steps) >= agent.max_steps:
        return Stop("max_steps", output=best_partial(state))
    if agent.max_tokens_total is not None and state.tokens_spent >= agent.max_tokens_total:
        return Stop("token_budget", output=best_partial(state))
    return None


async def _ask_model(state: RunState, stream: bool) -> AsyncIterator[str | ModelResponse]:
    agent = state.agent
    messages = await _request_messages(state)
    settings = {**getattr(agent.model, "default_settings", {}), **agent.model_settings, **state.model_settings}
    if stream:
        async for item in agent.model.stream(messages, agent.tool_schemas, settings):
            yield item
    else:
        yield await agent.model.complete(messages, agent.tool_schemas, settings)


async def _request_messages(state: RunState) -> list[dict[str, Any]]:
    return await state.context.messages(state.system, state.history, state.agent, state.usage)


def _journaled_answer(state: RunState, turn: Turn) -> NextStep:
    """A resumed run whose last turn was settled: if that turn gave the final answer, the run ends with it."""
    answer_tool = state.agent.answer_tool
    for i, call in enumerate(turn.calls):
        function = call["function"]
        if answer_tool is not None and function["name"] == answer_tool.name and turn.results[i]["kind"] == "ok":
            take_answer(state, state.steps[-1], answer_tool, RawToolCall(call["id"], function["name"],
                                                                           function["arguments"]))
            return FinalOutput(state.final)
    return RunAgain()


def _after_actions(state: RunState, step: Step) -> NextStep:
    if state.pending:
        return Stop("awaiting_approval")
    if state.final is not _NO_ANSWER:
        return FinalOutput(state.final)
    if any(obs.kind == "loop" for obs in step.observations):
        return Stop("loop_detected", output=best_partial(state, step))
    for name, count in state.failures.items():
        tool = state.agent.tools.get(name)
        limit = tool.max_retries if tool else state.agent.max_unknown_tool_calls
        if count > limit:
            last = unfence(next((o.content for o in reversed(step.observations) if o.tool == name), ""), state.fence)
            return Stop("error", ToolRetriesExceeded(name, count, last), best_partial(state, step))
    return RunAgain()


async def _guarded(state: RunState, next_step: NextStep) -> NextStep:
    """A final output must pass the output guardrails (a refused answer stays in the history but is
    not returned)."""
    if isinstance(next_step, FinalOutput) and (refusal := await first_refusal(state.agent.output_guardrails,
                                                                              next_step.output)):
        return Stop("blocked" if isinstance(refusal, RunBlocked) else "error", refusal)
    return next_step


def _conclude(state: RunState, step: Step, response: ModelResponse) -> NextStep:
    """The model's text as the final answer — validated against ``output_type`` when there is one. An
    answer the server cut at its token limit (``finish_reason == "length"``) is never taken for one."""
    agent = state.agent
    text = (response.text or "").strip()
    step.answer = text
    message = response.message()
    state.history.append(message)
    if response.finish_reason == "length":
        state.final_message = message
        return Stop("max_tokens", UnexpectedModelBehavior(
            "the answer was cut off at the server's token limit (finish_reason 'length'); raise max_tokens "
            "in model_settings", text), text or best_partial(state))
    try:
        if not text:
            raise ValueError("The answer was empty. Answer the question, or call a tool.")
        output = parse_output(agent.output_type, text) if agent.output_type else text
    except (ValueError, ValidationError) as exc:
        problem = _describe_output_error(exc)
        if state.output_retries >= agent.output_retries:
            state.final_message = message
            return Stop("error", UnexpectedModelBehavior(f"final answer rejected: {problem}", text),
                        best_partial(state, step))
        state.output_retries += 1
        step.note = problem
        retry = {"role": "user", "content": f"Your answer was not accepted: {problem}"}
        state.history.append(retry)
        state.journal.turn({"step": step.index, "message": message, "usage": step.usage.model_dump(),
                            "after": [retry], "note": problem, "finish_reason": step.finish_reason,
                            "prev_ms": state.last_ms})
        return RunAgain()
    state.final_message = message
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


def best_partial(state: RunState, current: Step | None = None) -> str | None:
    """The latest answer or thought, counting ``current``: the step ending now, not yet recorded."""
    steps = state.steps if current is None else [*state.steps, current]
    for step in reversed(steps):
        if step.answer or step.thought:
            return step.answer or step.thought
    return None


def _last_user_text(history: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in reversed(history) if m["role"] == "user"), "")


def finish(state: RunState, end: FinalOutput | Stop) -> RunResult:
    """End the run: answer the calls a stop from outside left open (every call gets one answer), journal
    the end with the final answer and the run record in one commit, and build the ``RunResult``."""
    agent = state.agent
    status: RunStatus = "completed" if isinstance(end, FinalOutput) else end.status
    error = end.error if isinstance(end, Stop) else None
    closing: list[tuple[int, int, dict[str, Any]]] = []
    if state.turn is not None and (step := state.current) is not None:  # stopped in the middle of a turn
        seq, calls, outcomes = state.turn
        for i in range(len(calls)):
            if i not in outcomes:
                outcomes[i] = ToolOutcome("interrupted", f"The run ended ({status}) before this call's result was "
                                                         "recorded; if it was running, its outcome is unknown.")
                closing.append((seq, i, stored_outcome(outcomes[i])))
        answer_calls(state, step, calls, outcomes)
        state.turn = None
    if (current := state.current) is not None:  # stopped in the middle of a step
        state.steps.append(current)
        state.current = None
    result = RunResult(
        run_id=state.run_id, agent=agent.name, session=state.session, model=agent.model.name, status=status,
        output=end.output, steps=state.steps, usage=state.usage,
        error=str(error) if error else None, error_type=type(error).__name__ if error else None,
        ms=(time.perf_counter() - state.started) * 1000, children=state.children, pending=state.pending,
    )
    output = end.output.model_dump(mode="json") if isinstance(end.output, BaseModel) else end.output
    final_turn = None
    if state.final_message is not None and state.steps:
        last = state.steps[-1]
        final_turn = {"step": last.index, "message": state.final_message, "usage": last.usage.model_dump(),
                      "answer": last.answer, "finish_reason": last.finish_reason, "ms": last.ms}
    previous_ms = state.steps[-2].ms if final_turn and len(state.steps) > 1 else None
    record = {"status": status, "output": output, "error": result.error, "error_type": result.error_type,
              "usage": state.usage.model_dump(), "steps": len(state.steps), "ms": result.ms,
              "pending": [p.model_dump() for p in state.pending]}
    state.journal.end({"status": status, "turn": final_turn, "prev_ms": previous_ms if final_turn else state.last_ms},
                      record=record, closing=closing)
    return result
