"""Running one task live, or through a cassette (record / replay). Shared by ``run`` and ``eval``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .stores import DiskStore
from .tasks import TaskFile, TaskOutcome, TaskSpec, run_task

if TYPE_CHECKING:
    from rich.console import Console

    from .recording import Mode

__all__ = ["cassette_path", "run_one"]


def cassette_path(folder: Path, task_file: TaskFile, task_name: str, trial: int | None = None) -> Path:
    """``<folder>/<task file stem>/<task>.yaml``; a file below a ``tasks/`` folder keeps its sub-path
    (``tasks/eval/support.yaml`` → ``eval/support/``) so two files with one name do not share cassettes."""
    suffix = "" if trial is None else f".trial{trial}"
    parts = task_file.path.resolve().with_suffix("").parts
    below = parts[len(parts) - parts[::-1].index("tasks"):] if "tasks" in parts[:-1] else parts[-1:]
    return folder.joinpath(*below) / f"{task_name}{suffix}.yaml"


def run_one(task_file: TaskFile, task: TaskSpec, *, mode: Mode | None, cassettes: Path, model: str | None,
            console: Console, quiet: bool, trial: int | None = None) -> TaskOutcome:
    """One task, live or through a cassette. Recorded and replayed runs get a fresh store and state."""
    from .report import TracePrinter  # noqa: PLC0415

    printer = None if quiet else TracePrinter(console)
    if mode is None:
        return asyncio.run(run_task(task_file, task, model=model, on_event=printer))
    from .model import resolve_model  # noqa: PLC0415
    from .recording import cassette, replay_model  # noqa: PLC0415

    path = cassette_path(cassettes, task_file, task.name, trial)
    spec_model = model or task_file.agent_spec(task.agent).model
    with tempfile.TemporaryDirectory(prefix="react_agent_") as scratch, _state_env(Path(scratch) / "state"):
        store = DiskStore(Path(scratch) / "store")
        live_model = None if mode == "replay" else resolve_model(spec_model)
        with cassette(path, mode, live_model.name if live_model else None) as tape:
            chosen = replay_model(tape.model) if mode == "replay" else live_model
            outcome = asyncio.run(run_task(task_file, task, model=chosen, store=store,
                                           variables={"today": tape.today}, on_event=printer))
        store.close()
    if mode == "record" and not quiet:
        console.print(f"  [dim]recorded {path}[/]")
    return outcome


@contextlib.contextmanager
def _state_env(path: Path) -> Iterator[None]:
    """Point tools' state dir at a fresh folder for the duration of a recorded/replayed run."""
    old = os.environ.get("REACT_AGENT_STATE_DIR")
    os.environ["REACT_AGENT_STATE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("REACT_AGENT_STATE_DIR", None)
        else:
            os.environ["REACT_AGENT_STATE_DIR"] = old


