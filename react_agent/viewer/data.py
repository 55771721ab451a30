"""The data the run viewer shows: a run from the store, its steps, and the runs nested in it."""

from __future__ import annotations

import math
from typing import Any

from ..history import fold
from ..steps import RunResult
from ..stores import RunRecord, Store
from ..usage import Usage

__all__ = ["Tree", "own_usage", "result_tree", "run_tree", "total_usage"]

Tree = dict[str, Any]


def run_tree(store: Store, run_id: str, *, user_id: str | None = None) -> Tree | None:
    """The run with its steps so far and its nested runs (each with ``parent_step``: the step of the
    parent that delegated to it), or ``None`` when the store has no such run (of ``user_id``, if given)."""
    record = store.run(run_id)
    if record is None or (user_id is not None and record.user_id != user_id):
        return None
    return _tree(store, record, store.runs(user_id=record.user_id))


def _tree(store: Store, record: RunRecord, everything: list[RunRecord]) -> Tree:
    steps = fold(store.entries(record.session)).steps(record.run_id)
    tree: Tree = {
        **record.model_dump(mode="json", include={"run_id", "agent", "session", "model", "status", "input", "output",
                                                  "usage", "error", "error_type", "ms", "pending", "started",
                                                  "updated", "user_id"}),
        "steps": [s.model_dump(mode="json") for s in steps],
        "parent_step": record.metadata.get("parent_step"),
        "children": [_tree(store, child, everything) for child in _children(record, everything)],
    }
    return tree


def _children(record: RunRecord, everything: list[RunRecord]) -> list[RunRecord]:
    """The runs of agents ``record`` called as tools: in its sessions ``session/agent``, started by it
    (``parent_run``), or — for runs journaled without it — started while it ran."""
    prefix = f"{record.session}/"
    ended = record.updated if record.status != "running" else math.inf
    found = []
    for other in everything:
        if not other.session.startswith(prefix) or "/" in other.session[len(prefix):]:
            continue
        parent = other.metadata.get("parent_run")
        if parent == record.run_id or (parent is None and record.started <= other.started <= ended):
            found.append(other)
    return found


def own_usage(tree: Tree) -> Usage:
    """What the run's own model calls used: the sum of its steps (so far, for a run under way)."""
    total = Usage()
    for step in tree["steps"]:
        total.add(Usage.model_validate(step.get("usage") or {}))
    return total


def total_usage(tree: Tree) -> Usage:
    """The run's own usage and that of the runs nested in it."""
    total = own_usage(tree)
    for child in tree["children"]:
        total.add(total_usage(child))
    return total


def result_tree(result: RunResult, *, input: str = "") -> Tree:
    """A run known only as a ``RunResult`` (a router's own run is not journaled), in the same shape."""
    body = result.model_dump(mode="json", exclude={"children"})
    return {**body, "input": input, "started": None, "updated": None, "user_id": None, "parent_step": None,
            "children": [result_tree(child) for child in result.children]}
