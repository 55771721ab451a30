"""Human approval and untrusted tool output.

* A tool may need approval: ``@tool(requires_approval=True)``, or a policy function of the validated
  arguments and the ``ToolContext`` (sync or async, returning ``True`` when approval is needed). The
  run then pauses before running that call — status ``awaiting_approval``, the pending calls in the
  journal and in ``RunResult.pending`` — while the other calls of the turn run. It goes on with
  decisions: ``Approve()``, ``Approve(arguments={...})`` (validated like the model's) or
  ``Deny("why")`` (the model reads the reason), keyed by call id.
* A tool may return untrusted text (``@tool(untrusted_output=True)``: web pages, knowledge-base
  articles, files under review). Its output reaches the model fenced by a per-run random delimiter,
  and the system prompt says fenced text is data, never instructions. Once untrusted output is in a
  session's context, calls to tools with ``side_effects=True`` follow the agent's
  ``untrusted_policy``: ``"approve"`` (the default: they need approval), ``"block"`` (they are refused)
  or ``"off"``. So an injected instruction can at most ask; it cannot act.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from .tools import Tool, ToolContext

__all__ = [
    "ApprovalPolicy",
    "Approve",
    "Decision",
    "Deny",
    "PendingCall",
    "UntrustedPolicy",
    "approval_reason",
    "fence",
    "nested_call_id",
    "new_fence",
]

UntrustedPolicy = Literal["approve", "block", "off"]
ApprovalPolicy = Callable[[dict[str, Any], "ToolContext"], bool | Awaitable[bool]]
BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Approve:
    """Run the call — with ``arguments`` instead of the model's, when given (validated like the model's)."""

    arguments: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Do not run the call; the model sees ``reason`` as the call's result."""

    reason: str = "denied by a human"


Decision = Approve | Deny


class PendingCall(BaseModel):
    """A call waiting for a decision."""

    call_id: str
    tool: str
    arguments: str  # exactly as the model sent them
    reason: str  # why it needs approval
    run_id: str | None = None  # a nested run's call (an agent called as a tool waits on it; ``call_id`` is
    # then ``nested_call_id(run_id, its id)``), else None


def nested_call_id(run_id: str, call_id: str) -> str:
    """How a run lists a call its nested run ``run_id`` waits on: ids are only unique within one run."""
    return f"{run_id}:{call_id}"


def new_fence() -> str:
    """A per-run delimiter an attacker who wrote the content cannot guess."""
    return secrets.token_hex(6)


def fence(content: str, nonce: str) -> str:
    """Untrusted tool output as the model sees it. A closing marker planted in the content cannot end
    the fence early: it would need the run's nonce."""
    return f"<<untrusted:{nonce}>>\n{content}\n<</untrusted:{nonce}>>"


def unfence(content: str, nonce: str) -> str:
    """The text inside ``fence(content, nonce)`` (for people reading errors, not for the model)."""
    head, tail = f"<<untrusted:{nonce}>>\n", f"\n<</untrusted:{nonce}>>"
    return content[len(head):-len(tail)] if content.startswith(head) and content.endswith(tail) else content


async def approval_reason(tool: Tool, arguments: BaseModel, context: ToolContext, *, tainted: bool,
                          policy: UntrustedPolicy) -> str | None:
    """Why this call cannot run without a human (``BLOCK`` when the policy refuses it), or ``None``."""
    wanted = tool.requires_approval
    if callable(wanted):
        try:
            decided = wanted(tool.dump_arguments(arguments), context)
            if inspect.isawaitable(decided):
                decided = await decided
        except Exception as exc:  # noqa: BLE001 - user code that cannot decide: a human does (fail closed)
            return f"{tool.name}'s approval policy raised {type(exc).__name__}: {exc} (so a human decides)"
        wanted = bool(decided)
    if wanted:
        return f"{tool.name} requires approval"
    if tool.side_effects and tainted and policy != "off":
        return BLOCK if policy == "block" else (
            f"{tool.name} has side effects and the context holds untrusted tool output")
    return None
