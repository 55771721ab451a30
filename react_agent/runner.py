"""Running one task live, or through a cassette (record / replay). Shared by ``run`` and ``eval``."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .paths import state_dir_at
from .stores import DiskStore
from .tasks import Decider, TaskFile, TaskOutcome, TaskSpec, run_task

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console

    from .agent import Agent
    from .model import Model
    from .recording import Mode

__all__ = ["cassette_path", "check_local", "check_models", "default_cassettes", "project_root", "replay_cassette",
           "run_one"]


def project_root(task_file: TaskFile) -> Path:
    """The folder above the task file's nearest ``tasks/`` folder (``/repo/tasks/eval/x.yaml`` → ``/repo``),
    else the task file's own folder — whatever the working directory."""
    path = task_file.path.resolve()
    for folder in path.parents:
        if folder.name == "tasks":
            return folder.parent
    return path.parent


def default_cassettes(task_file: TaskFile) -> Path:
    """Where ``--record`` / ``--replay`` keep a task file's cassettes unless ``--cassettes`` says:
    ``cassettes/`` in its project root (``project_root``)."""
    return project_root(task_file) / "cassettes"


def cassette_path(folder: Path, task_file: TaskFile, task_name: str, trial: int | None = None) -> Path:
    """``<folder>/<task file stem>/<task>.yaml``; a file below a ``tasks/`` folder keeps its sub-path
    (``tasks/eval/support.yaml`` → ``eval/support/``) so two files with one name do not share cassettes."""
    suffix = "" if trial is None else f".trial{trial}"
    parts = task_file.path.resolve().with_suffix("").parts
    below = parts[len(parts) - parts[::-1].index("tasks"):] if "tasks" in parts[:-1] else parts[-1:]
    return folder.joinpath(*below) / f"{task_name}{suffix}.yaml"


def replay_cassette(folder: Path, task_file: TaskFile, task_name: str, trial: int | None = None) -> Path:
    """The cassette a replay reads: the trial's own recording, or — when there is none — the task's one
    recording (``<task>.yaml``), which every trial then replays identically. With neither, the one
    recording: the file a plain ``--record`` makes, which the "no cassette" error then names."""
    own = cassette_path(folder, task_file, task_name, trial)
    return own if own.is_file() else cassette_path(folder, task_file, task_name)


def run_one(task_file: TaskFile, task: TaskSpec, *, mode: Mode | None, cassettes: Path | None, model: str | None,
            console: Console, quiet: bool, trial: int | None = None, decide: Decider | None = None,
            metadata: Mapping[str, Any] | None = None) -> TaskOutcome:
    """One task, live or through a cassette (``cassettes`` is the folder, by default the task file's
    ``default_cassettes``). Recorded and replayed runs get a fresh store and state. ``metadata`` goes on
    the runs' records (``run_task``)."""
    from .report import TracePrinter  # noqa: PLC0415

    printer = None if quiet else TracePrinter(console)
    if mode is None:
        return asyncio.run(run_task(task_file, task, model=model, on_event=printer, decide=decide,
                                    metadata=metadata))
    from .recording import cassette, replay_model  # noqa: PLC0415
    from .resolve import resolve_model  # noqa: PLC0415

    folder = cassettes or default_cassettes(task_file)
    path = (replay_cassette if mode == "replay" else cassette_path)(folder, task_file, task.name, trial)
    spec_model = model or task_file.agent_spec(task.agent).model
    with tempfile.TemporaryDirectory(prefix="react_agent_") as scratch, state_dir_at(Path(scratch) / "state"):
        store = DiskStore(Path(scratch) / "store")
        live_model = None if mode == "replay" else resolve_model(spec_model)
        with cassette(path, mode, live_model.name if live_model else None) as tape:
            chosen = replay_model(tape.model) if mode == "replay" else live_model
            outcome = asyncio.run(run_task(task_file, task, model=chosen, store=store,
                                           variables=tape.variables, on_event=printer, metadata=metadata))
        store.close()
    if not quiet:
        console.print(f"  [dim]recorded {path}[/]" if mode == "record" else
                      f"  [dim]replayed {path} (recorded from model {tape.model!r} on {tape.today})[/]")
    return outcome


def check_models(task_file: TaskFile, agent: str | None, model: str | None, *, installed: bool = True) -> None:
    """Before any run: the agent builds (its tools, plugins and templates exist: a ``TaskFileError`` comes
    first) and, unless ``installed`` is false (a replay needs no model), if it (its routes, the agents it
    delegates to) runs on the embedded model, that is installed — else ``ModelUnavailableError`` (one
    line, exit 2), with nothing written."""
    from .tasks import build_agent  # noqa: PLC0415

    built: dict[str, Agent] = {}
    spec = task_file.agent_spec(agent)
    build_agent(task_file, agent, model=model, built=built)
    for target in spec.routes.values():
        build_agent(task_file, target, model=model, built=built)
    for each in built.values() if installed else ():
        check_local(each.model)


def check_local(model: Model) -> None:
    """The embedded model, when this is it and no server is given, is installed."""
    from .local import LocalModel, check_installed  # noqa: PLC0415

    for each in getattr(model, "models", None) or [model]:  # fallback models: each of them
        if isinstance(each, LocalModel) and each.base_url is None:
            check_installed()
            return



