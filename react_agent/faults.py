"""Named crash points, for the kill -9 tests of the journal.

``REACT_AGENT_CRASH_AT="turn:after:2"`` makes this process send itself SIGKILL the 2nd time it reaches
the point ``turn:after`` — a real kill at an exact persistence boundary, not a random sleep. The points
are listed in ``POINTS``; with the variable unset (always, outside those tests) ``point`` returns at once.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["POINTS", "point"]

POINTS = (
    "start:before", "start:after",      # the run record and its question (one commit)
    "turn:before", "turn:after",        # a model answer with its tool calls, before any of them starts
    "tool:returned",                    # a tool returned (in its own thread); its result not yet written
    "result:after",                     # a tool's result is written
    "end:before", "end:after",          # the run's end (final answer, status)
    "write:inside",                     # inside any store commit, after its first entry, before COMMIT
)

_target = os.environ.get("REACT_AGENT_CRASH_AT")
_name, _, _nth = (_target or "").rpartition(":")
_left = int(_nth) if _target and _nth.isdigit() else 0
_lock = threading.Lock()


def point(name: str) -> None:
    """Die here (SIGKILL) if this is the targeted point's targeted hit."""
    global _left  # noqa: PLW0603 - one countdown per process
    if _left <= 0 or name != _name:
        return
    with _lock:
        _left -= 1
        if _left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
