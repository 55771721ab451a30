"""react-agent: a small, fast ReAct agent framework on OpenAI Chat Completions with native tool calls.

Names are loaded on first use (PEP 562), so ``import react_agent`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import CANCEL, Agent, Hook
    from .approval import Approve, Deny, PendingCall
    from .errors import (
        ContextBudgetExceeded,
        DuplicateToolError,
        GuardrailError,
        HookError,
        IncompleteResponseError,
        ModelHTTPError,
        ModelRetry,
        ModelUnavailableError,
        PluginError,
        PromptError,
        ReactAgentError,
        RunBlocked,
        RunError,
        StoreCorruptError,
        StoreUnavailableError,
        TaskFileError,
        ToolRetriesExceeded,
        UnexpectedModelBehavior,
        UserError,
    )
    from .fallback import FallbackModel
    from .guardrails import Guardrail
    from .log import configure_logging
    from .mcp import MCPServer, MCPServerError, MCPServerHTTP, MCPServerStdio
    from .model import Model, ModelResponse, OpenAIModel
    from .router import Route, Routed, Router
    from .steps import (
        Event,
        Observation,
        RunEnd,
        RunResult,
        RunStart,
        Step,
        StepEnd,
        TextDelta,
        ToolCall,
        ToolEnd,
        ToolStart,
    )
    from .stores import DiskStore, MemoryStore, PostgresStore, RunRecord, Session, SessionInfo, Store
    from .tools import Tool, ToolContext, tool
    from .usage import Usage, register_price
    from .windows import register_context_window

__all__ = [
    "CANCEL", "Agent", "Approve", "ContextBudgetExceeded", "Deny", "DiskStore", "DuplicateToolError", "Event",
    "FallbackModel", "Guardrail", "GuardrailError", "Hook", "HookError", "IncompleteResponseError", "MCPServer",
    "MCPServerError",
    "MCPServerHTTP", "MCPServerStdio", "MemoryStore", "Model", "ModelHTTPError", "ModelResponse", "ModelRetry",
    "ModelUnavailableError", "Observation", "OpenAIModel", "PendingCall", "PluginError", "PostgresStore", "PromptError",
    "ReactAgentError", "Route", "Routed", "Router", "RunBlocked", "RunEnd", "RunError", "RunRecord", "RunResult",
    "RunStart", "Session", "SessionInfo", "Step", "StepEnd", "Store", "StoreCorruptError", "StoreUnavailableError",
    "TaskFileError", "TextDelta", "Tool", "ToolCall", "ToolContext", "ToolEnd", "ToolRetriesExceeded", "ToolStart",
    "UnexpectedModelBehavior", "Usage", "UserError", "configure_logging", "register_context_window", "register_price",
    "tool",
]

_WHERE = {
    "Agent": "agent", "CANCEL": "agent", "Hook": "agent", "configure_logging": "log",
    **dict.fromkeys(["Approve", "Deny", "PendingCall"], "approval"), "Guardrail": "guardrails",
    **dict.fromkeys(["DiskStore", "MemoryStore", "PostgresStore", "RunRecord", "Session", "SessionInfo", "Store"],
                    "stores"),
    "Model": "model", "ModelResponse": "model", "OpenAIModel": "model", "Tool": "tools", "ToolContext": "tools",
    "tool": "tools", "Usage": "usage", "register_price": "usage", "Route": "router", "Routed": "router",
    "Router": "router", "register_context_window": "windows", "FallbackModel": "fallback",
    **dict.fromkeys(["MCPServer", "MCPServerError", "MCPServerHTTP", "MCPServerStdio"], "mcp"),
    **dict.fromkeys(["ContextBudgetExceeded", "DuplicateToolError", "GuardrailError", "HookError",
                     "IncompleteResponseError", "ModelHTTPError", "ModelRetry", "ModelUnavailableError", "PluginError",
                     "PromptError", "ReactAgentError", "RunBlocked", "RunError", "StoreCorruptError",
                     "StoreUnavailableError", "TaskFileError",
                     "ToolRetriesExceeded", "UnexpectedModelBehavior", "UserError"], "errors"),
    **dict.fromkeys(["Event", "Observation", "RunEnd", "RunResult", "RunStart", "Step", "StepEnd", "TextDelta",
                     "ToolCall", "ToolEnd", "ToolStart"], "steps"),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'react_agent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
