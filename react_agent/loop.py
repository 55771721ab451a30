"""The ReAct loop. ``run_loop`` is the whole algorithm; each turn ends in a typed next step.

Thought = the assistant's text beside its tool calls; Action = each tool call; Observation = each
tool result. Model mistakes become observations; limits end the run with a status; framework bugs
raise. The history sent to the model is always valid: every tool call gets exactly one tool message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .approval import BLOCK, PendingCall, approval_reason, fence, unfence
from .context import ContextWindow, truncate
from .errors import ReactAgentError, RunError, ToolRetriesExceeded, UnexpectedModelBehavior
from .faults import point
from .guardrails import first_refusal
from .history import Turn
from .journal import Journal, unknown_outcome
from .model import ModelResponse, RawToolCall
from .steps import (
    DelegationReport,
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

__all__ = ["FinalOutput", "RunState", "Stop", "finish", "restore_streaks", "run_loop"]


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
        async with aclosing(_act(state, step, calls, resumed=turn)) as acting:
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
            async with aclosing(_act(state, step, response.tool_calls, message=response.message(),
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
        return Stop("blocked", refusal)
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


async def _act(state: RunState, step: Step, calls: list[RawToolCall], *, message: dict[str, Any] | None = None,
               run: bool = True, resumed: Turn | None = None) -> AsyncGenerator[Event, None]:
    """Answer the turn's tool calls: journal the turn (see ``_settle``) before any tool starts, run the
    tools (concurrently unless a tool is sequential), journal each result the moment its tool
    returns, then add one tool message per call to the history."""
    agent = state.agent
    journal = state.journal
    context = ToolContext(state.run_id, state.session, agent.name, step.index, state.depth, deps=state.deps,
                          user_id=journal.record.user_id)
    settled = await _settle(state, step, calls, context, message=message, run=run, resumed=resumed)
    seq, outcomes, runnable = settled.seq, settled.outcomes, settled.runnable
    state.turn = (seq, calls, outcomes)
    waiting = {p.call_id for p in settled.pending}
    for i in range(len(calls)):
        if calls[i].id not in waiting:
            yield ToolStart(step.actions[i], step.index)
    for i, outcome in sorted(outcomes.items()):
        yield ToolEnd(_observation(calls[i], outcome), step.index)

    def seen(tool: Tool, outcome: ToolOutcome) -> dict[str, Any]:
        """The outcome as the model will see it: cut to ``max_tool_output``, fenced if untrusted."""
        content = truncate(outcome.content, agent.max_tool_output)
        if tool.untrusted_output:
            return {**_stored(outcome), "content": fence(content, state.fence), "untrusted": True}
        return {**_stored(outcome), "content": content}

    def keeper(i: int, tool: Tool) -> Callable[[ToolOutcome], None]:
        def keep(outcome: ToolOutcome) -> None:
            """Journal a result the moment its tool returns (in the tool's thread for a sync tool)."""
            point("tool:returned")
            journal.result(seq, i, seen(tool, outcome))
        return keep

    async def invoke(i: int, tool: Tool, arguments: BaseModel) -> tuple[int, ToolOutcome]:
        outcome = await tool.invoke(calls[i].arguments, context, keeper(i, tool), parsed=arguments)
        if isinstance(outcome.value, DelegationReport) and outcome.value.run is not None:
            state.children.append(outcome.value.run)
        shown = seen(tool, outcome)
        outcome.content = shown["content"]
        state.tainted = state.tainted or tool.untrusted_output
        journal.result(seq, i, shown)  # a timeout (the tool never returned): no-op otherwise
        return i, outcome

    tasks = [asyncio.ensure_future(invoke(i, t, a)) for i, t, a in runnable if not t.sequential]
    try:
        for next_done in asyncio.as_completed(tasks):
            i, outcome = await next_done
            outcomes[i] = outcome
            yield ToolEnd(_observation(calls[i], outcome), step.index)
        for index, known, arguments in runnable:
            if known.sequential:
                journal.started(seq, [index])
                i, outcome = await invoke(index, known, arguments)
                outcomes[i] = outcome
                yield ToolEnd(_observation(calls[i], outcome), step.index)
    finally:  # the run was stopped from outside (a hook, the consumer): nothing keeps running unseen
        for task in tasks:
            task.cancel()
    _answer_calls(state, step, calls, outcomes)  # the waiting calls stay open in the journal
    state.pending = settled.pending
    state.turn = None


@dataclass(slots=True)
class Settled:
    """What became of a turn's calls before any of them runs."""

    seq: int  # the turn's entry in the journal
    outcomes: dict[int, ToolOutcome]  # calls answered without running
    runnable: list[tuple[int, Tool, BaseModel]]  # calls to run, with their validated arguments
    pending: list[PendingCall]  # calls that wait for a human decision


async def _settle(state: RunState, step: Step, calls: list[RawToolCall], context: ToolContext, *,
                  message: dict[str, Any] | None, run: bool, resumed: Turn | None) -> Settled:
    """Decide each call — answered without running (a loop, the final answer, an unknown tool, invalid
    arguments, a skipped or refused call), waiting for approval, or to run — and journal that before
    anything runs.

    ``resumed`` is a turn read back from the journal: a call with a result keeps it; a call that was
    running when the process died runs again only if its tool is idempotent; a call that waited for
    approval follows its decision."""
    journal = state.journal
    outcomes: dict[int, ToolOutcome] = {}
    fresh: dict[int, ToolOutcome] = {}  # answered now (not read back from the journal)
    runnable: list[tuple[int, Tool, BaseModel]] = []
    pending: list[PendingCall] = []
    streaks = _update_streaks(state, calls)
    for i, call in enumerate(calls):
        if resumed is not None and (stored := resumed.results.get(i)) is not None:
            outcomes[i] = ToolOutcome(stored["kind"], stored["content"], ms=float(stored.get("ms") or 0.0))
            continue
        planned = _plan(state, step, call, streaks[i]) if run else ToolOutcome(
            "skipped", "Not run: the run stopped (token budget).")
        found = planned if isinstance(planned, ToolOutcome) else await _gate(
            state, call, planned, context, resumed=resumed, index=i)
        if isinstance(found, ToolOutcome):
            outcomes[i] = fresh[i] = found
        elif isinstance(found, PendingCall):
            pending.append(found)
        else:
            runnable.append((i, *found))
    parallel = [i for i, t, _ in runnable if not t.sequential]
    if resumed is not None:
        for i, outcome in fresh.items():
            journal.result(resumed.seq, i, _stored(outcome))
        if parallel:
            journal.started(resumed.seq, parallel)
        return Settled(resumed.seq, outcomes, runnable, pending)
    assert message is not None
    state.history.append(message)
    waiting = [i for i, call in enumerate(calls) if any(p.call_id == call.id for p in pending)]
    seq = journal.turn({"step": step.index, "message": message, "usage": step.usage.model_dump(),
                        "answered": [[i, _stored(o)] for i, o in fresh.items()], "started": parallel,
                        "pending": waiting, "answer": step.answer, "finish_reason": step.finish_reason,
                        "prev_ms": state.last_ms})
    return Settled(seq, outcomes, runnable, pending)


async def _gate(state: RunState, call: RawToolCall, found: tuple[Tool, BaseModel], context: ToolContext, *,
                resumed: Turn | None, index: int) -> tuple[Tool, BaseModel] | ToolOutcome | PendingCall:
    """May this call run? Not a side effect that a crash may already have caused; not without a human
    when it needs approval (or after one denied it); not at all when the untrusted policy blocks it."""
    tool, arguments = found
    if resumed is not None and index in resumed.started and not tool.idempotent:
        return ToolOutcome("interrupted", unknown_outcome(call.name)["content"])
    if resumed is not None and index in resumed.pending:
        decided = _decided(found, resumed.decisions.get(index))
        return PendingCall(call_id=call.id, tool=call.name, arguments=call.arguments,
                           reason="still waiting for a decision") if decided is None else decided
    reason = await approval_reason(tool, arguments, context, tainted=state.tainted,
                                   policy=state.agent.untrusted_policy)
    if reason == BLOCK:
        return ToolOutcome("blocked", f"Blocked: {call.name} has side effects and this conversation holds "
                                      "untrusted tool output; this agent's policy refuses such calls.")
    if reason is not None:
        return PendingCall(call_id=call.id, tool=call.name, arguments=call.arguments, reason=reason)
    return found


def _decided(found: tuple[Tool, BaseModel], decision: dict[str, Any] | None
             ) -> tuple[Tool, BaseModel] | ToolOutcome | None:
    """A waiting call after its decision: to run (with the edited arguments, if any), denied, or still
    waiting (no decision). Edited arguments were validated when the decision was taken."""
    if decision is None:
        return None
    tool, arguments = found
    if not decision.get("approve"):
        return ToolOutcome("denied", f"Denied by a human: {decision.get('reason') or 'no reason given'}")
    if decision.get("arguments") is not None:  # as JSON, like the model's: valid when decided, valid now
        arguments = tool.validate(json.dumps(decision["arguments"]), strict=False)
    return tool, arguments


def _stored(outcome: ToolOutcome) -> dict[str, Any]:
    return {"kind": outcome.kind, "content": outcome.content, "ms": outcome.ms}


def _answer_calls(state: RunState, step: Step, calls: list[RawToolCall], outcomes: dict[int, ToolOutcome]) -> None:
    """One tool message per answered call, in call order (so requests are deterministic); count failures.
    Only calls waiting for approval have no outcome: the run pauses with them open."""
    for i, call in enumerate(calls):
        if (outcome := outcomes.get(i)) is None:
            continue
        step.observations.append(_observation(call, outcome))
        state.history.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
        if outcome.ok:
            state.failures.pop(call.name, None)
        elif outcome.kind not in ("skipped", "loop", "interrupted", "blocked", "denied"):
            state.failures[call.name] = state.failures.get(call.name, 0) + 1


def _plan(state: RunState, step: Step, call: RawToolCall, streak: int) -> tuple[Tool, BaseModel] | ToolOutcome:
    """The tool to run for ``call`` with its validated arguments, or the outcome that answers it
    without running anything (a loop, the final answer, an unknown tool, invalid arguments)."""
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
    try:
        return known, known.validate(call.arguments, strict=agent.strict_tools)
    except ValidationError as exc:
        return ToolOutcome("invalid_arguments", describe_validation_error(known, call.arguments, exc))


def _observation(call: RawToolCall, outcome: ToolOutcome) -> Observation:
    return Observation(call_id=call.id, tool=call.name, kind=outcome.kind, content=outcome.content, ms=outcome.ms)


def restore_streaks(state: RunState, turns: list[Turn]) -> None:
    """A resumed run counts repeated calls from where it stopped: a model that keeps asking for the same
    call across pauses for approval is still stopped as ``loop_detected``."""
    for turn in turns:
        _update_streaks(state, [RawToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                                for c in turn.calls])


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
        parsed = answer_tool.validate(call.arguments, strict=state.agent.strict_tools)
    except ValidationError as exc:
        return ToolOutcome("invalid_arguments", describe_validation_error(answer_tool, call.arguments, exc))
    state.final = parsed if state.agent.output_type else parsed.model_dump()["answer"]
    step.answer = parsed.model_dump_json() if state.agent.output_type else str(state.final)
    return ToolOutcome("ok", "Final answer recorded.")


def _journaled_answer(state: RunState, turn: Turn) -> NextStep:
    """A resumed run whose last turn was settled: if that turn gave the final answer, the run ends with it."""
    answer_tool = state.agent.answer_tool
    for i, call in enumerate(turn.calls):
        function = call["function"]
        if answer_tool is not None and function["name"] == answer_tool.name and turn.results[i]["kind"] == "ok":
            _take_answer(state, state.steps[-1], answer_tool, RawToolCall(call["id"], function["name"],
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
        return Stop("blocked", refusal)
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
                closing.append((seq, i, _stored(outcomes[i])))
        _answer_calls(state, step, calls, outcomes)
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
