"""Request and response bodies of the HTTP API (pydantic: validated, and documented at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..approval import PendingCall
from ..steps import RunResult, Step
from ..stores import RunRecord
from ..tasks import MAX_INPUT_CHARS
from ..usage import Usage

__all__ = ["MAX_DECISIONS", "SESSION_PATTERN", "AgentInfo", "ApprovalRequest", "DecisionIn", "Problem",
           "RunRequest", "RunView", "SessionDetail", "SessionView"]

SESSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
MAX_DECISIONS = 100


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" is not a boolean, 5 not a text


class RunRequest(_Body):
    """Start a run: ``stream: false`` answers with the ``RunResult`` when the run ends (or pauses for
    approval); ``stream: true`` with an SSE stream of its events."""

    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, description="the user's message")
    session: str | None = Field(None, pattern=SESSION_PATTERN,
                                description="continue this session of yours (default: a new one)")
    stream: bool = False


class DecisionIn(_Body):
    """``{"approve": true}``, ``{"approve": true, "arguments": {...}}`` (run it with these instead) or
    ``{"approve": false, "reason": "..."}`` (the model reads the reason)."""

    approve: bool
    arguments: dict[str, Any] | None = None
    reason: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> DecisionIn:
        if self.approve and self.reason is not None:
            raise ValueError("a reason goes with approve: false")
        if not self.approve and self.arguments is not None:
            raise ValueError("arguments go with approve: true")
        return self


class ApprovalRequest(_Body):
    decisions: dict[str, DecisionIn] = Field(min_length=1, max_length=MAX_DECISIONS,
                                             description="a decision for every waiting call, by call id")


class RunView(RunResult):
    """A run as the server knows it: its record and steps so far, and whether it runs in this server.
    ``status`` is a ``RunResult`` status, or ``running`` (``live: false``: its server died — resume it)."""

    status: str  # type: ignore[assignment]  # widened: also "running" and "awaiting_approval" mid-flight
    input: str = ""
    started: float | None = None
    updated: float | None = None
    live: bool = False  # its task is running in this server process
    events: int = 0  # the id of its last event so far

    @classmethod
    def of_record(cls, record: RunRecord, steps: list[Step], *, live: bool, events: int) -> RunView:
        return cls(run_id=record.run_id, agent=record.agent, session=record.session, model=record.model,
                   status=record.status, input=record.input, output=record.output, steps=steps,
                   usage=Usage.model_validate(record.usage or {}), error=record.error, error_type=record.error_type,
                   ms=record.ms, pending=[PendingCall.model_validate(p) for p in record.pending],
                   started=record.started, updated=record.updated, live=live, events=events)

    @classmethod
    def of_result(cls, result: RunResult, *, input: str, live: bool, events: int) -> RunView:
        return cls.model_validate({**dict(result), "input": input, "live": live, "events": events})


class SessionView(BaseModel):
    id: str
    agent: str | None
    created: float


class SessionDetail(SessionView):
    messages: list[dict[str, Any]]
    runs: list[RunView]


class AgentInfo(BaseModel):
    id: str  # the {agent} of /v1/agents/{agent}/runs
    name: str
    kind: str  # agent | router
    source: str | None  # the task file


class Problem(BaseModel):
    detail: str
