"""The typed record of a run: each turn of the loop ends in a ``Step``; a run ends in a ``RunResult``.

Events (for ``Agent.stream`` and hooks) are small frozen dataclasses with a ``type`` tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from .approval import PendingCall
from .usage import Usage

__all__ = [
    "DelegationReport",
    "Event",
    "Observation",
    "RunEnd",
    "RunResult",
    "RunStart",
    "RunStatus",
    "Step",
    "StepEnd",
    "TextDelta",
    "ToolCall",
    "ToolEnd",
    "ToolStart",
]

# cancelled: ended on purpose (``task.cancel(CANCEL)``); interrupted: closed by a later run on its session
RunStatus = Literal["completed", "max_steps", "loop_detected", "token_budget", "max_tokens", "blocked", "error",
                    "awaiting_approval", "cancelled", "interrupted"]


class ToolCall(BaseModel):
    """An Action: what the model asked for, exactly as it sent it."""

    id: str
    name: str
    arguments: str


class Observation(BaseModel):
    """What the loop answered to one ToolCall."""

    call_id: str
    tool: str
    kind: str  # ok | invalid_arguments | unknown_tool | tool_error | timeout | retry | skipped | loop |
    #            interrupted | blocked | denied
    content: str
    ms: float = 0.0
    arguments: str | None = None  # the arguments it ran with (JSON), when a human edited the model's on approval

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


class Step(BaseModel):
    index: int
    thought: str | None = None
    actions: list[ToolCall] = Field(default_factory=list)
    observations: list[Observation] = Field(default_factory=list)
    answer: str | None = None  # the model's text when it called no tool (a final answer, or a try at one)
    note: str | None = None  # e.g. why a final answer was sent back for another try
    usage: Usage = Field(default_factory=Usage)
    ms: float = 0.0
    finish_reason: str | None = None  # why the model stopped: stop, tool_calls, length, content_filter
    model: str | None = None  # the model that answered (with fallback models, the one that did)


class RunResult(BaseModel):
    run_id: str
    agent: str
    session: str | None
    model: str
    status: RunStatus
    output: Any = None
    steps: list[Step] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    error_type: str | None = None
    ms: float = 0.0
    children: list[RunResult] = Field(default_factory=list)  # runs of agents this run called as tools
    pending: list[PendingCall] = Field(default_factory=list)  # status awaiting_approval: calls to decide on

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [call for step in self.steps for call in step.actions]

    @property
    def total_steps(self) -> int:
        """Steps of this run and of the runs nested in it (a router's own run has none)."""
        return len(self.steps) + sum(child.total_steps for child in self.children)

    @property
    def total_usage(self) -> Usage:
        """``usage`` (this run's own model calls) plus the nested runs' total usage."""
        total = self.usage.model_copy()
        for child in self.children:
            total.add(child.total_usage)
        return total


class DelegationReport(BaseModel):
    """What a delegating agent's model sees of a nested run (its JSON). The loop takes the full
    ``RunResult`` from ``run`` and lists it in the parent's ``RunResult.children``. No run id: the
    model has no use for it, and a random id would make recorded requests unrepeatable."""

    agent: str
    status: str
    output: Any = None
    tokens: int  # the nested run's total, its own nested runs included
    cost_usd: float | None
    _run: RunResult | None = PrivateAttr(None)

    @property
    def run(self) -> RunResult | None:
        return self._run

    @classmethod
    def of(cls, result: RunResult) -> DelegationReport:
        output = result.output.model_dump(mode="json") if isinstance(result.output, BaseModel) else result.output
        total = result.total_usage
        report = cls(agent=result.agent, status=result.status, output=output,
                     tokens=total.total_tokens, cost_usd=total.cost_usd)
        report._run = result
        return report


@dataclass(frozen=True, slots=True)
class RunStart:
    run_id: str
    agent: str
    session: str | None
    input: str
    type: Literal["run_start"] = "run_start"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the model's text as it streams (thought or final answer)."""

    text: str
    step: int
    type: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ToolStart:
    call: ToolCall
    step: int
    type: Literal["tool_start"] = "tool_start"


@dataclass(frozen=True, slots=True)
class ToolEnd:
    observation: Observation
    step: int
    type: Literal["tool_end"] = "tool_end"


@dataclass(frozen=True, slots=True)
class StepEnd:
    step: Step
    type: Literal["step_end"] = "step_end"


@dataclass(frozen=True, slots=True)
class RunEnd:
    result: RunResult
    type: Literal["run_end"] = "run_end"


Event = RunStart | TextDelta | ToolStart | ToolEnd | StepEnd | RunEnd
