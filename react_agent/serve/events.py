"""A run's events as JSON, live or rebuilt from its journal (for runs this process did not run)."""

from __future__ import annotations

import json
from typing import Any

from ..history import fold, result_from_store
from ..steps import Event, RunEnd, RunStart, StepEnd, TextDelta, ToolEnd, ToolStart
from ..stores import RunRecord, Store

__all__ = ["event_data", "rebuild_events"]


def event_data(event: Event, run_id: str) -> str:
    """The SSE ``data`` of one event (its ``event`` field is ``event.type``); ``run_id`` names the run it
    belongs to — a router's stream carries the events of its nested runs too."""
    body: dict[str, Any]
    if isinstance(event, RunStart):
        body = {"agent": event.agent, "session": event.session, "input": event.input}
    elif isinstance(event, TextDelta):
        body = {"text": event.text, "step": event.step}
    elif isinstance(event, ToolStart):
        body = {"call": event.call.model_dump(), "step": event.step}
    elif isinstance(event, ToolEnd):
        body = {"observation": event.observation.model_dump(), "step": event.step}
    elif isinstance(event, StepEnd):
        body = {"step": event.step.model_dump(mode="json")}
    else:
        body = {"result": event.result.model_dump(mode="json")}
    return json.dumps({"run_id": run_id, **body}, ensure_ascii=False, separators=(",", ":"))


def rebuild_events(store: Store, record: RunRecord) -> list[Event]:
    """What the run's stream showed, read back from its journal: its start, each step's calls and
    results, each step's end, and its end if it ended (no text deltas: they are not journaled)."""
    folded = fold(store.entries(record.session))
    events: list[Event] = [RunStart(record.run_id, record.agent, record.session, record.input)]
    turns = folded.run_turns(record.run_id)
    for turn in turns:
        step = turn.step_record()
        events.extend(ToolStart(call, step.index) for call in step.actions)
        events.extend(ToolEnd(observation, step.index) for observation in step.observations)
        if not (turn is turns[-1] and turn.open and record.status == "running"):  # a step under way
            events.append(StepEnd(step))
    if record.status != "running":
        events.append(RunEnd(result_from_store(record, folded)))
    return events
