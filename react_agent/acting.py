"""Acting on a turn: what becomes of each tool call the model made — answered without running
(a loop, the final answer, an unknown tool, invalid arguments, a refusal), waiting for a human, or run —
journaled before anything runs, each result journaled where its tool returns."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._sync import SYNC_CALLER
from .approval import BLOCK, PendingCall, approval_reason, fence, nested_call_id
from .context import truncate
from .faults import point
from .history import Turn
from .journal import NESTED_NEVER_APPROVED, unknown_outcome
from .model import RawToolCall
from .steps import DelegationReport, Event, Observation, RunResult, Step, ToolEnd, ToolStart
from .tools import Tool, ToolContext, ToolOutcome, describe_validation_error

if TYPE_CHECKING:
    from .loop import RunState

__all__ = ["Settled", "act", "answer_calls", "restore_streaks", "stored_outcome", "take_answer"]

T = TypeVar("T")
EDITED_NOTE = "A human approved this call with edited arguments; it ran with: "  # then the JSON, then the result


async def act(state: RunState, step: Step, calls: list[RawToolCall], *, message: dict[str, Any] | None = None,
               run: bool = True, resumed: Turn | None = None) -> AsyncGenerator[Event, None]:
    """Answer the turn's tool calls: journal the turn (see ``_settle``) before any tool starts, run the
    tools (concurrently unless a tool is sequential), journal each result the moment its tool
    returns, then add one tool message per call to the history."""
    agent = state.agent
    journal = state.journal
    context = ToolContext(state.run_id, state.session, agent.name, step.index, state.depth, deps=state.deps,
                          user_id=journal.record.user_id)
    contexts = [replace(context, call_id=call.id) for call in calls]  # each call's, for its policy and its tool
    settled = await _settle(state, step, calls, contexts, message=message, run=run, resumed=resumed)
    seq, outcomes, runnable = settled.seq, settled.outcomes, settled.runnable
    state.turn = (seq, calls, outcomes)
    waiting = {p.call_id for p in settled.pending}
    for i in range(len(calls)):
        if calls[i].id not in waiting:
            yield ToolStart(step.actions[i], step.index)
    for i, outcome in sorted(outcomes.items()):
        yield ToolEnd(_observation(calls[i], outcome), step.index)

    edited = settled.edited
    running = _Calls(state, seq, calls, contexts, settled.nested, edited, here=SYNC_CALLER.get())
    invoke = running.invoke
    # Each call runs in a copy of the run's context: a sync call wherever it runs (a worker, or here), an
    # async call in a task of its own. A lone sync call so needs no task (a task costs a turn of the loop).
    together = [(i, t, a) for i, t, a in runnable if not t.sequential]
    alone = len(together) == 1
    direct = alone and not together[0][1].is_async
    tasks = [] if direct else [_task(invoke(i, t, a, alone), alone) for i, t, a in together]
    waits: Iterable[Awaitable[tuple[int, ToolOutcome | None]]] = (
        [invoke(*together[0], alone=True)] if direct else tasks if alone else asyncio.as_completed(tasks))
    try:
        for next_done in waits:
            i, ended = await next_done
            if ended is not None:
                outcomes[i] = ended
                yield ToolEnd(_observation(calls[i], ended, edited.get(i)), step.index)
        for index, known, arguments in runnable:
            if known.sequential:
                journal.started(seq, [index])
                i, ended = await invoke(index, known, arguments, alone=True)
                if ended is not None:
                    outcomes[i] = ended
                    yield ToolEnd(_observation(calls[i], ended, edited.get(i)), step.index)
    finally:  # the run was stopped from outside (a hook, the consumer): nothing keeps running unseen
        for task in tasks:
            task.cancel()
    answer_calls(state, step, calls, outcomes, edited)  # the waiting calls stay open in the journal
    state.pending = [*settled.pending, *running.nested_pending]
    state.turn = None


@dataclass
class _Calls:
    """Runs a turn's calls and journals what becomes of each."""

    state: RunState
    seq: int  # the turn's entry in the journal
    calls: list[RawToolCall]
    contexts: list[ToolContext]  # each call's
    nested: dict[int, str]  # resumed calls that go on with the paused nested run they wait on
    edited: dict[int, str]  # calls run with arguments a human edited on approval (JSON)
    here: bool  # run_sync: a lone sync call may run in the caller's thread
    nested_pending: list[PendingCall] = field(default_factory=list)  # what paused nested runs wait on

    def seen(self, i: int, tool: Tool, outcome: ToolOutcome) -> dict[str, Any]:
        """The outcome as the model will see it: cut to ``max_tool_output``, fenced if untrusted — and, for
        a call a human edited on approval, saying so with the arguments it ran with (kept as ``arguments``)."""
        content = truncate(outcome.content, self.state.agent.max_tool_output)
        shown = {**stored_outcome(outcome), "content": content}
        if tool.untrusted_output:
            shown.update(content=fence(content, self.state.fence), untrusted=True)
        if (edited := self.edited.get(i)) is not None:
            shown.update(content=f"{EDITED_NOTE}{edited}\n{shown['content']}", arguments=edited)
        return shown

    def keeper(self, i: int, tool: Tool) -> Callable[[ToolOutcome], None]:
        journal = self.state.journal

        def keep(outcome: ToolOutcome) -> None:
            """Journal a result the moment its tool returns (in the tool's thread for a sync tool); a quick
            one that is safe to repeat goes with the next commit (``Journal.defer_ms``). An agent called as
            a tool whose run paused for approval has no result yet: the call waits on that run."""
            point("tool:returned")
            if (paused := _paused_nested(outcome)) is not None:
                journal.waiting(self.seq, i, paused.run_id)
                return
            journal.result(self.seq, i, self.seen(i, tool, outcome),
                           defer=bool(tool.idempotent) and outcome.ms < journal.defer_ms)
        return keep

    async def invoke(self, i: int, tool: Tool, arguments: BaseModel, alone: bool) -> tuple[int, ToolOutcome | None]:
        """Run call ``i`` (or go on with the nested run it waits on); ``None`` while a nested run waits."""
        state = self.state
        context = self.contexts[i]
        if (nested := self.nested.get(i)) is not None:
            outcome = await tool.go_on_with(nested, state.nested_approvals.get(nested, {}), context,
                                            self.keeper(i, tool))
        else:
            outcome = await tool.invoke(self.calls[i].arguments, context, self.keeper(i, tool),
                                        parsed=arguments, here=self.here and alone)
        if isinstance(outcome.value, DelegationReport) and outcome.value.run is not None:
            state.children.append(outcome.value.run)
        if (paused := _paused_nested(outcome)) is not None:
            self.nested_pending.extend(p if p.run_id else p.model_copy(update={
                "run_id": paused.run_id, "call_id": nested_call_id(paused.run_id, p.call_id)}) for p in paused.pending)
            return i, None
        shown = self.seen(i, tool, outcome)
        outcome.content = shown["content"]
        state.tainted = state.tainted or tool.untrusted_output
        state.journal.result(self.seq, i, shown)  # a timeout (the tool never returned): no-op otherwise
        return i, outcome


def _paused_nested(outcome: ToolOutcome) -> RunResult | None:
    """The nested run of an agent called as a tool, when it paused for approval."""
    report = outcome.value
    if isinstance(report, DelegationReport) and report.run is not None and report.run.status == "awaiting_approval":
        return report.run
    return None


def _task(call: Coroutine[Any, Any, T], alone: bool) -> asyncio.Task[T]:
    """The task of one call. Beside other calls, nothing in it (a delegated agent's own calls included)
    may take the caller's thread for itself: the others need the loop."""
    context = contextvars.copy_context()
    if not alone:
        context.run(SYNC_CALLER.set, False)
    return asyncio.get_running_loop().create_task(call, context=context)


@dataclass(slots=True)
class Settled:
    """What became of a turn's calls before any of them runs."""

    seq: int  # the turn's entry in the journal
    outcomes: dict[int, ToolOutcome]  # calls answered without running
    runnable: list[tuple[int, Tool, BaseModel]]  # calls to run, with their validated arguments
    pending: list[PendingCall]  # calls that wait for a human decision
    nested: dict[int, str] = field(default_factory=dict)  # resumed calls that go on with a paused nested run
    edited: dict[int, str] = field(default_factory=dict)  # calls to run with arguments a human edited (JSON)


async def _settle(state: RunState, step: Step, calls: list[RawToolCall], contexts: list[ToolContext], *,
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
    nested: dict[int, str] = {}
    edited: dict[int, str] = {}
    for i, call in enumerate(calls):
        if resumed is not None and (stored := resumed.results.get(i)) is not None:
            outcomes[i] = ToolOutcome(stored["kind"], stored["content"], ms=float(stored.get("ms") or 0.0))
            continue
        if resumed is not None and (nested_run := resumed.delegated.get(i) or _paused_nested_run(
                state, resumed, i, call)) is not None:
            known = state.agent.tools.get(call.name)
            if known is None or known.go_on is None:  # no longer an agent here: its run cannot go on
                outcomes[i] = fresh[i] = ToolOutcome("interrupted", NESTED_NEVER_APPROVED)
            else:
                runnable.append((i, known, known.args_model.model_construct()))
                nested[i] = nested_run
            continue
        planned = _plan(state, step, call, streaks[i]) if run else ToolOutcome(
            "skipped", "Not run: the run stopped (token budget).")
        found = planned if isinstance(planned, ToolOutcome) else await _gate(
            state, call, planned, contexts[i], resumed=resumed, index=i)
        if isinstance(found, tuple) and resumed is not None and (resumed.decisions.get(i) or {}).get(
                "arguments") is not None:  # approved with edited arguments: it runs with them (``_decided``)
            edited[i] = json.dumps(found[0].dump_arguments(found[1], mode="json"), ensure_ascii=False)
        if isinstance(found, ToolOutcome):
            outcomes[i] = fresh[i] = found
        elif isinstance(found, PendingCall):
            pending.append(found)
        else:
            runnable.append((i, *found))
    parallel = [i for i, t, _ in runnable if not t.sequential]
    if resumed is not None:
        for i, outcome in fresh.items():
            journal.result(resumed.seq, i, stored_outcome(outcome))
        if parallel:
            journal.started(resumed.seq, parallel)
        return Settled(resumed.seq, outcomes, runnable, pending, nested, edited)
    assert message is not None
    state.history.append(message)
    waiting = [i for i, call in enumerate(calls) if any(p.call_id == call.id for p in pending)]
    seq = journal.turn({
        "step": step.index, "message": message, "usage": step.usage.model_dump(),
        "answered": [[i, stored_outcome(o)] for i, o in fresh.items()], "started": parallel, "pending": waiting,
        "answer": step.answer, "finish_reason": step.finish_reason, "prev_ms": state.last_ms})
    return Settled(seq, outcomes, runnable, pending)


def _paused_nested_run(state: RunState, turn: Turn, index: int, call: RawToolCall) -> str | None:
    """The nested run a call of an agent called as a tool left paused when the process died before the
    call's ``waiting`` entry: found by the ids its record keeps (``parent_run``, ``parent_call``)."""
    tool = state.agent.tools.get(call.name)
    if index not in turn.started or tool is None or tool.go_on is None:
        return None
    return next((r.run_id for r in state.agent.store.runs(status="awaiting_approval")
                 if r.metadata.get("parent_run") == state.run_id and r.metadata.get("parent_call") == call.id), None)


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


def stored_outcome(outcome: ToolOutcome) -> dict[str, Any]:
    return {"kind": outcome.kind, "content": outcome.content, "ms": outcome.ms}


def answer_calls(state: RunState, step: Step, calls: list[RawToolCall], outcomes: dict[int, ToolOutcome],
                 edited: Mapping[int, str] | None = None) -> None:
    """One tool message per answered call, in call order (so requests are deterministic); count failures.
    Only calls waiting for approval have no outcome: the run pauses with them open."""
    for i, call in enumerate(calls):
        if (outcome := outcomes.get(i)) is None:
            continue
        step.observations.append(_observation(call, outcome, (edited or {}).get(i)))
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
        return take_answer(state, step, answer_tool, call)
    if (known := agent.tools.get(call.name)) is None:
        return ToolOutcome("unknown_tool", (
            f"There is no tool named {call.name!r}. Available tools: {', '.join(agent.tools) or 'none'}."))
    try:
        return known, known.validate(call.arguments, strict=agent.strict_tools)
    except ValidationError as exc:
        return ToolOutcome("invalid_arguments", describe_validation_error(known, call.arguments, exc))


def _observation(call: RawToolCall, outcome: ToolOutcome, edited: str | None = None) -> Observation:
    return Observation(call_id=call.id, tool=call.name, kind=outcome.kind, content=outcome.content, ms=outcome.ms,
                       arguments=edited)


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


def take_answer(state: RunState, step: Step, answer_tool: Tool, call: RawToolCall) -> ToolOutcome:
    """The model called the answer tool: its validated arguments are the run's output."""
    try:
        parsed = answer_tool.validate(call.arguments, strict=state.agent.strict_tools)
    except ValidationError as exc:
        return ToolOutcome("invalid_arguments", describe_validation_error(answer_tool, call.arguments, exc))
    state.final = parsed if state.agent.output_type else parsed.model_dump()["answer"]
    step.answer = parsed.model_dump_json() if state.agent.output_type else str(state.final)
    return ToolOutcome("ok", "Final answer recorded.")
