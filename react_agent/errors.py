"""Errors carry data. Three families, one root:

* ``ModelRetry`` — raised by *tool code* to send a message back to the model (not a failure).
* ``UserError`` and subclasses — the developer's or the user's input is wrong (config, task file,
  plugin, prompt template). The CLI prints them as one line and exits non-zero.
* ``RunError`` and subclasses — a run could not go on (the API failed for good, a tool kept failing).
  The loop turns them into a ``RunResult`` with ``status="error"``; they are never raised past
  ``Agent.run``.

Model mistakes (bad JSON arguments, unknown tools, validation errors) are *not* exceptions that
escape: the loop turns them into observations the model can fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ContextBudgetExceeded",
    "DuplicateToolError",
    "ModelHTTPError",
    "ModelRetry",
    "ModelUnavailableError",
    "PluginError",
    "PromptError",
    "ReactAgentError",
    "ReplayMismatchError",
    "RunError",
    "TaskFileError",
    "ToolRetriesExceeded",
    "UnexpectedModelBehavior",
    "UserError",
]


class ReactAgentError(Exception):
    """Root of every error this package raises on purpose."""


class ModelRetry(ReactAgentError):
    """Raise inside a tool to tell the model what to fix; the message becomes the observation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserError(ReactAgentError):
    """The configuration or input given to the framework is wrong."""


@dataclass
class TaskFileError(UserError):
    path: str
    field: str
    expected: str

    def __str__(self) -> str:
        where = f"{self.path}: {self.field}" if self.field else self.path
        return f"{where}: {self.expected}"


@dataclass
class PluginError(UserError):
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class DuplicateToolError(UserError):
    name: str
    first: str
    second: str

    def __str__(self) -> str:
        return f"two tools are named {self.name!r}: one in {self.first}, one in {self.second}"


@dataclass
class PromptError(UserError):
    template: str
    reason: str

    def __str__(self) -> str:
        return f"prompt template {self.template!r}: {self.reason}"


@dataclass
class ModelUnavailableError(UserError):
    """The configured model cannot be reached or started (e.g. the local extra is missing)."""

    reason: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.reason}" + (f" — {self.fix}" if self.fix else "")


@dataclass
class ReplayMismatchError(UserError):
    cassette: str
    request_index: int
    differences: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        diff = "; ".join(self.differences) or "no recorded request left"
        return f"replay of {self.cassette} diverged at request #{self.request_index}: {diff}"


class RunError(ReactAgentError):
    """A run could not continue. Kept in ``RunResult.error``; the status says ``error``."""


@dataclass
class ModelHTTPError(RunError):
    status_code: int | None
    body: Any
    message: str = ""

    def __str__(self) -> str:
        code = f"HTTP {self.status_code}" if self.status_code is not None else "connection failed"
        return f"model request failed ({code}): {self.message or self.body}"


@dataclass
class UnexpectedModelBehavior(RunError):
    message: str
    body: Any = None

    def __str__(self) -> str:
        return self.message


@dataclass
class ToolRetriesExceeded(RunError):
    tool: str
    attempts: int
    last_error: str

    def __str__(self) -> str:
        return f"tool {self.tool!r} failed {self.attempts} times; last error: {self.last_error}"


@dataclass
class ContextBudgetExceeded(RunError):
    """A request cannot be made within the context budget (what no cutting or dropping can shrink is
    already too big): the run ends before anything is sent."""

    budget: int  # tokens
    needed: int  # tokens the smallest request would take
    what: str  # what takes the room

    def __str__(self) -> str:
        return (f"{self.what} take {self.needed:,} tokens, over the context budget of {self.budget:,}; "
                "nothing was sent (shorten the input or raise context_budget)")
