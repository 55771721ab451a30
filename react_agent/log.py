"""structlog events for every step of every run.

The package keeps its own logger (it does not call ``structlog.configure``, which would change the
host application's logging). Default level is WARNING — a library stays quiet unless asked; the CLI
turns on INFO with a console renderer, or JSON lines with ``--json-logs``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

__all__ = ["configure_logging", "logger"]

_state: dict[str, Any] = {"logger": None, "level": logging.WARNING, "json": False, "stream": None}


def configure_logging(level: int | str = "INFO", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Turn on react_agent's event log: console format for people, or JSON lines for machines."""
    _state["level"] = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    _state["json"] = json
    _state["stream"] = stream
    _state["logger"] = None


def logger() -> Any:
    """The package logger (a structlog bound logger filtered at the configured level)."""
    if _state["logger"] is None:
        import structlog  # noqa: PLC0415 - deferred: keeps `import react_agent` fast

        renderer: Any = (
            structlog.processors.JSONRenderer()
            if _state["json"]
            else structlog.dev.ConsoleRenderer(colors=False)
        )
        _state["logger"] = structlog.wrap_logger(
            structlog.PrintLogger(_state["stream"] or sys.stderr),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(_state["level"]),
        )
    return _state["logger"]
