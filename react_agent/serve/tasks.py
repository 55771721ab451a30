"""What ``serve`` serves: every agent (and router) of the given task files, by name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..model import Model
from ..stores import Store
from ..tasks import TaskFile, build_runner, load_task_file
from .manager import Runner

__all__ = ["served_agents", "task_files"]


def task_files(paths: Sequence[str | Path]) -> list[TaskFile]:
    """The task files named, and the ``*.yaml`` files of the folders named (not their subfolders)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")))
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such task file or folder")
    if not files:
        raise UserError(f"no task files in {', '.join(map(str, paths))}")
    return [load_task_file(f) for f in files]


def served_agents(paths: Sequence[str | Path], store: Store, *, model: str | Model | None = None
                  ) -> tuple[dict[str, Runner], dict[str, str]]:
    """{id: runner} and {id: its task file}. An agent's id is its name; a name that two files define is
    ``<file stem>.<name>`` for each of them."""
    found: list[tuple[TaskFile, str]] = [(f, name) for f in task_files(paths) for name in f.agent_names()]
    clashes = {name for name, count in Counter(name for _, name in found).items() if count > 1}
    runners: dict[str, Runner] = {}
    sources: dict[str, str] = {}
    for task_file, name in found:
        key = f"{task_file.path.stem}.{name}" if name in clashes else name
        if key in runners:
            raise UserError(f"two task files named {task_file.path.name} both define agent {name!r}")
        runners[key] = build_runner(task_file, name, model=model, store=store)
        sources[key] = str(task_file.path)
    return runners, sources
