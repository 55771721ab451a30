"""Errors carry data. Three families, one root:

* ``ModelRetry`` — raised by *tool code* to send a message back to the model (not a failure).
* ``UserError`` and subclasses — the developer's or the user's input is wrong (config, task file,
  plugin, prompt template). The CLI prints them as one line and exits non-zero.
* ``RunError`` and subclasses — a run could not go on (the API failed for good, a tool kept failing,
  the model could not be started). The loop turns them into a ``RunResult`` with ``status="error"``;
  they are never raised past ``Agent.run``. ``ModelUnavailableError`` is both a ``UserError`` and a
  ``RunError``.

Model mistakes (bad JSON arguments, unknown tools, validation errors) are *not* exceptions that
escape: the loop turns them into observations the model can fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ContextBudgetExceeded",
    "DuplicateToolError",
    "GuardrailError",
    "HookError",
    "IncompleteResponseError",
    "ModelHTTPError",
    "ModelRetry",
    "ModelUnavailableError",
    "PluginError",
    "PromptError",
    "ReactAgentError",
    "ReplayMismatchError",
    "RunBlocked",
    "RunError",
    "StoreCorruptError",
    "StoreUnavailableError",
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
    where: str = ""  # the setting that names the template, e.g. "tasks/support.yaml: agent 'support'.instructions"

    def __str__(self) -> str:
        return f"{self.where + ': ' if self.where else ''}prompt template {self.template!r}: {self.reason}"


@dataclass
class ReplayMismatchError(UserError):
    cassette: str
    request_index: int
    differences: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        diff = "; ".join(self.differences) or "no recorded request left"
        return f"replay of {self.cassette} diverged at request #{self.request_index}: {diff}"


@dataclass
class StoreCorruptError(UserError):
    """The store holds something this package did not write (or cannot read): it is reported, never
    loaded — a store cannot run code. ``path`` is empty where the reader does not know the store's place
    (a session log folded from its entries)."""

    path: str
    what: str

    def __str__(self) -> str:
        where = f"the store at {self.path}" if self.path else "the store"
        return f"{where} holds {self.what}; it was not loaded"


@dataclass
class StoreUnavailableError(UserError):
    """The configured store cannot be used: its database cannot be reached, refuses the login, or the
    extra it needs is not installed. ``store`` names it with any password redacted; ``reason`` is what
    failed (the driver's own message, one line, redacted too); ``fix`` what to do, when known. The CLI
    prints it as one line and exits 2, like any ``UserError``."""

    store: str
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        return f"the store {self.store} cannot be used: {self.reason}" + (f" — {self.fix}" if self.fix else "")


class RunError(ReactAgentError):
    """A run could not continue. Kept in ``RunResult.error``; the status says ``error``."""


@dataclass
class ModelUnavailableError(UserError, RunError):
    """The configured model cannot be started (the ``local`` extra is missing, its server died): a
    setup problem with its fix. Both kinds: the CLI checks for it before a run and prints one line (exit
    2, like any ``UserError``); met inside a run (``Agent.run``), it ends that run with status ``error``
    and this message in ``RunResult.error`` instead of raising."""

    reason: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.reason}" + (f" — {self.fix}" if self.fix else "")


@dataclass
class ModelHTTPError(RunError):
    """The model server failed the request.

    Three cases, told apart by the fields: an HTTP error status (``status_code`` set, ``reported_in``
    None); a connection that failed or broke off (both None); an ``error`` object the server put in an
    answer it sent with HTTP 200 (``reported_in`` says where). ``code`` is that object's code as sent —
    an int, or a string such as ``"rate_limit_exceeded"`` or ``"502"``; ``status_code`` is its number
    when it has one."""

    status_code: int | None
    body: Any
    message: str = ""
    code: int | str | None = None
    reported_in: Literal["response", "stream"] | None = None
    url: str | None = None  # the request's URL, credentials removed (redact.redact_url)

    def __str__(self) -> str:
        if self.reported_in is not None:
            where = f"server error in {self.reported_in}"
            if self.code is not None:
                where += f" (code {self.code})"
        elif self.status_code is not None:
            where = f"HTTP {self.status_code}"
        else:
            where = "connection failed"
        to = f" to {self.url}" if self.url else ""
        return f"model request{to} failed ({where}): {self.message or self.body}"


@dataclass
class IncompleteResponseError(ModelHTTPError):
    """A stream closed cleanly before the answer was complete: no ``finish_reason`` and no
    ``data: [DONE]``. ``attempts`` is how many times it was asked; ``streamed_chars`` how much text had
    already gone out as deltas in the last attempt (then it is not asked again)."""

    attempts: int = 1
    streamed_chars: int = 0

    def __str__(self) -> str:
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        text = (f"; {self.streamed_chars} characters had already been streamed, so it was not retried"
                if self.streamed_chars else "")
        to = f" to {self.url}" if self.url else ""
        return (f"model request{to} failed: the stream ended before the response was complete "
                f"(no finish_reason, no [DONE]) after {tries}{text}")


@dataclass
class UnexpectedModelBehavior(RunError):
    message: str
    body: Any = None

    def __str__(self) -> str:
        return self.message


@dataclass
class RunBlocked(RunError):
    """Raise in a hook or guardrail to refuse: the run ends with status ``blocked`` and this reason."""

    reason: str

    def __str__(self) -> str:
        return f"blocked: {self.reason}"


@dataclass
class GuardrailError(RunError):
    """A guardrail raised (not ``RunBlocked``): the run ended with status ``error``, its record closed and
    its history valid — a guardrail that cannot decide never lets the text through."""

    guardrail: str
    error: str

    def __str__(self) -> str:
        return f"guardrail {self.guardrail} raised {self.error}"


@dataclass
class HookError(RunError):
    """A hook raised: the run ended with status ``error`` (its record closed, its history valid)."""

    hook: str
    error: str

    def __str__(self) -> str:
        return f"hook {self.hook} raised {self.error}"


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
