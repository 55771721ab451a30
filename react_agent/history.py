"""What a session's entry log means: the conversation history and each run's steps, folded from it.

Pure functions of the entries (no store, no I/O), so every backend reads the same thing. The kinds of
entry a run writes (``react_agent.journal`` writes them; the README's "Crash safety" says when):

* ``start``    the run's first entry: the question (``messages``)
* ``turn``     one model answer: the assistant ``message`` (with its tool calls), the step's index and
  usage, the calls answered without running anything (``answered``: ``[[index, outcome]]`` — unknown
  tool, invalid arguments, the final answer), the calls about to run (``started``), and messages that
  follow the answer (``after``: e.g. "your answer was not accepted")
* ``started``  more calls of turn ``turn`` about to run (a sequential tool, a resumed call)
* ``pause``    the run stopped to wait for decisions on the calls its last turn listed as ``pending``
* ``decision`` a human's decision on call ``index`` of turn ``turn``: ``{"approve": bool, "arguments"?,
  "reason"?}``
* ``result``   the outcome of call ``index`` of turn ``turn``: ``{"kind", "content", "ms"}``
* ``waiting``  call ``index`` of turn ``turn`` (an agent called as a tool) left its nested run ``run_id``
  paused for approval: the call goes on when that run does
* ``resume``   the run was resumed
* ``end``      the run's end: status, output, error, usage, and the final answer's ``turn`` if any
* ``messages`` messages added outside any run (``Store.append``)

Tool messages are placed right after their assistant message, in call order, wherever their
``result`` entries stand in the log — so an interrupted call answered later (by a resumed run, or by
the next run on the session) still gives a valid history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .approval import PendingCall
from .errors import StoreCorruptError
from .steps import Observation, RunResult, RunStatus, Step, ToolCall
from .usage import Usage

if TYPE_CHECKING:
    from .stores.base import RunRecord

__all__ = ["Folded", "Turn", "fold", "result_from_store", "tool_message"]


def tool_message(call: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call["id"], "content": outcome["content"]}


@dataclass(slots=True)
class Turn:
    """One model answer of a run and what became of its tool calls."""

    seq: int
    run: str | None
    step: int
    message: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    pending: set[int] = field(default_factory=set)  # calls that wait for a human decision
    delegated: dict[int, str] = field(default_factory=dict)  # calls whose nested run waits for one: its id
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    after: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None
    answer: str | None = None
    finish_reason: str | None = None
    ms: float = 0.0

    @property
    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.message.get("tool_calls") or []
        return calls

    @property
    def open(self) -> list[int]:
        """Indices of the calls that have no outcome yet."""
        return [i for i in range(len(self.calls)) if i not in self.results]

    def step_record(self) -> Step:
        actions = [ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
                   for c in self.calls]
        observations = [Observation(call_id=a.id, tool=a.name, kind=r["kind"], content=r["content"],
                                    ms=float(r.get("ms") or 0.0), arguments=r.get("arguments"))
                        for i, a in enumerate(actions) if (r := self.results.get(i)) is not None]
        thought = (self.message.get("content") or None) if self.calls else None
        answer = self.answer if self.calls else (self.answer or self.message.get("content") or "")
        usage = Usage.model_validate(self.usage or {})
        return Step(index=self.step, thought=thought, actions=actions, observations=observations,
                    answer=answer, note=self.note, usage=usage, ms=self.ms, finish_reason=self.finish_reason,
                    model=next(iter(usage.by_model), None))  # the model that answered is its usage's


@dataclass(slots=True)
class Folded:
    history: list[dict[str, Any]]
    turns: list[Turn]
    ends: dict[str, dict[str, Any]]  # run id -> its end entry
    runs: list[str]  # run ids, in the order they started

    def run_turns(self, run_id: str) -> list[Turn]:
        return [t for t in self.turns if t.run == run_id]

    def steps(self, run_id: str) -> list[Step]:
        return [t.step_record() for t in self.run_turns(run_id)]

    def usage(self, run_id: str) -> Usage:
        total = Usage()
        for turn in self.run_turns(run_id):
            total.add(Usage.model_validate(turn.usage or {}))
        return total

    def last_turn(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    @property
    def tainted(self) -> bool:
        """Untrusted tool output is in the conversation."""
        return any(r.get("untrusted") for t in self.turns for r in t.results.values())


def _turn(entry: dict[str, Any], body: dict[str, Any]) -> Turn:
    turn = Turn(seq=int(entry["seq"]), run=entry.get("run"), step=int(body.get("step", 0)),
                message=body["message"], usage=body.get("usage") or {}, started=set(body.get("started") or ()),
                pending=set(body.get("pending") or ()),
                after=list(body.get("after") or ()), note=body.get("note"), answer=body.get("answer"),
                finish_reason=body.get("finish_reason"), ms=float(body.get("ms") or 0.0))
    for index, outcome in body.get("answered") or ():
        turn.results[int(index)] = outcome
    return turn


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{what} is not a list of objects")
    return value


def _check(entry: dict[str, Any]) -> None:
    """The shape ``fold`` relies on, for the kinds it reads (an unknown kind is skipped): a ``ValueError``
    saying what is wrong with an entry the journal did not write."""
    kind = entry.get("kind")
    if kind in ("start", "messages"):
        for message in _objects(entry.get("messages") or [], "messages"):
            if not isinstance(message.get("role"), str):
                raise ValueError("a message has no role")
    body = entry.get("turn") if kind == "end" else entry if kind == "turn" else None
    if body is not None:
        if not isinstance(entry.get("seq"), int):
            raise ValueError("the turn has no number")
        _check_turn(body)
    if kind in ("result", "started", "decision", "waiting") and not isinstance(entry.get("turn"), int):
        raise ValueError(f"a {kind} entry names no turn")
    if kind in ("result", "decision", "waiting") and not isinstance(entry.get("index"), int):
        raise ValueError(f"a {kind} entry names no call")
    if kind == "result":
        _outcome(entry.get("outcome"))
    if kind == "decision" and not isinstance(entry.get("decision"), dict):
        raise ValueError("a decision is not an object")
    if kind == "started" and not all(isinstance(i, int) for i in entry.get("calls") or []):
        raise ValueError("calls is not a list of call indices")
    if kind == "waiting" and not isinstance(entry.get("run_id"), str):
        raise ValueError("a waiting entry names no run")


def _check_turn(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(message := body.get("message"), dict):
        raise ValueError("the turn has no message object")
    for call in _objects(message.get("tool_calls") or [], "tool_calls"):
        if not (isinstance(call.get("id"), str) and isinstance(function := call.get("function"), dict)
                and isinstance(function.get("name"), str) and isinstance(function.get("arguments"), str)):
            raise ValueError("a tool call lacks its id, name or arguments")
    for answered in body.get("answered") or []:
        if not (isinstance(answered, list) and len(answered) == 2 and isinstance(answered[0], int)):
            raise ValueError("an answered call is not [index, outcome]")
        _outcome(answered[1])
    for key in ("started", "pending"):
        if not all(isinstance(i, int) for i in body.get(key) or []):
            raise ValueError(f"{key} is not a list of call indices")
    _objects(body.get("after") or [], "after")


def _checked(entries: Sequence[dict[str, Any]]) -> None:
    """Every entry has the shape ``fold`` relies on, or a ``StoreCorruptError`` names the first that has not."""
    for entry in entries:
        try:
            _check(entry)
        except ValueError as exc:
            raise StoreCorruptError("", f"a session log entry it did not write (entry {entry.get('seq')!r}, "
                                        f"kind {entry.get('kind')!r}: {exc})") from None


def _outcome(outcome: Any) -> None:
    if not (isinstance(outcome, dict) and isinstance(outcome.get("kind"), str)
            and isinstance(outcome.get("content"), str)):
        raise ValueError("an outcome lacks its kind or content")


def fold(entries: Sequence[dict[str, Any]]) -> Folded:
    """The conversation history and the runs' turns, from a session's entries in order. An entry the
    journal did not write (a hand-edited or hostile store) is a ``StoreCorruptError``, never a crash."""
    _checked(entries)
    turns: dict[int, Turn] = {}
    ends: dict[str, dict[str, Any]] = {}
    runs: list[str] = []
    previous: Turn | None = None
    for entry in entries:  # first pass: turns, their results, and each step's duration
        kind = entry.get("kind")
        body: dict[str, Any] | None = entry.get("turn") if kind == "end" else entry
        if previous is not None and entry.get("prev_ms") is not None and entry.get("run") == previous.run:
            previous.ms = float(entry["prev_ms"])
        if body and kind in ("turn", "end"):
            previous = turns[int(entry["seq"])] = _turn(entry, body)
        elif kind == "result" and (owner := turns.get(int(entry["turn"]))) is not None:
            owner.results.setdefault(int(entry["index"]), entry["outcome"])
        elif kind == "started" and (owner := turns.get(int(entry["turn"]))) is not None:
            owner.started.update(int(i) for i in entry.get("calls") or ())
        elif kind == "decision" and (owner := turns.get(int(entry["turn"]))) is not None:
            owner.decisions[int(entry["index"])] = entry["decision"]
        elif kind == "waiting" and (owner := turns.get(int(entry["turn"]))) is not None:
            owner.delegated[int(entry["index"])] = str(entry["run_id"])
        if kind == "end" and entry.get("run"):
            ends[entry["run"]] = entry
        elif kind == "start" and entry.get("run"):
            runs.append(entry["run"])
    history: list[dict[str, Any]] = []
    for entry in entries:  # second pass: messages in order, tool messages right after their call
        kind = entry.get("kind")
        if kind in ("start", "messages"):
            history.extend(entry.get("messages") or ())
        elif (turn := turns.get(int(entry.get("seq", -1)))) is not None:
            history.append(turn.message)
            history.extend(tool_message(call, turn.results[i]) for i, call in enumerate(turn.calls)
                           if i in turn.results)
            history.extend(turn.after)
    return Folded(history, list(turns.values()), ends, runs)


def result_from_store(record: RunRecord, folded: Folded) -> RunResult:
    """The ``RunResult`` of a journaled run (so far, for one that has not ended)."""
    return RunResult(run_id=record.run_id, agent=record.agent, session=record.session, model=record.model,
                     status=cast("RunStatus", record.status), output=record.output, steps=folded.steps(record.run_id),
                     usage=Usage.model_validate(record.usage or {}), error=record.error,
                     error_type=record.error_type, ms=record.ms,
                     pending=[PendingCall.model_validate(p) for p in record.pending])
