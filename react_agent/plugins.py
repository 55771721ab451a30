"""Tool discovery: every ``*.py`` in the plugin folders, and the ``react_agent.tools`` entry-point group.

A plugin that fails to import, or declares a bad tool, is reported (source, reason) and skipped; the
rest still load (``Discovery.broken``: the CLI and task files refuse to go on with one). Two tools with
one name is a ``DuplicateToolError`` naming both sources.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import DuplicateToolError, PluginError, UserError
from .tools import Tool

__all__ = ["ENTRY_POINT_GROUP", "MISSING_FOLDER", "Discovery", "Skipped", "discover", "discover_file", "load_sibling"]

ENTRY_POINT_GROUP = "react_agent.tools"


MISSING_FOLDER = "plugin folder does not exist"


@dataclass(frozen=True, slots=True)
class Skipped:
    source: str
    reason: str


@dataclass
class Discovery:
    tools: dict[str, Tool] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def broken(self) -> list[Skipped]:
        """The plugins that failed to load (a plugin folder that does not exist is not one)."""
        return [s for s in self.skipped if s.reason != MISSING_FOLDER]

    def broken_text(self) -> str:
        """The broken plugins in one line, each with its reason."""
        return "; ".join(f"{s.source}: {s.reason}" for s in self.broken)

    def check(self) -> None:
        """A ``UserError`` naming the plugins that failed to load, if any: the CLI's one line, exit 2."""
        if self.broken:
            raise UserError(f"a plugin failed to load — {self.broken_text()}")

    def add(self, found: Tool, source: str) -> None:
        if found.name in self.tools and self.tools[found.name] is not found:
            raise DuplicateToolError(found.name, self.tools[found.name].source, source)
        found.source = source
        self.tools[found.name] = found


def _reason(exc: BaseException, path: Path) -> str:
    if isinstance(exc, PluginError):
        return f"bad tool {exc.source!r}: {exc.reason}"
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _import_file(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()[:8]
    name = f"react_agent_plugins.{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_sibling(plugin_file: str | Path, stem: str) -> ModuleType:
    """Import a helper module beside a plugin file, e.g. ``load_sibling(__file__, "_shop")``.

    Plugin folders are not packages, so a plugin cannot ``import`` its neighbours; files whose name
    starts with ``_`` are not scanned for tools, which makes them the place for shared helpers."""
    return _import_file(Path(plugin_file).resolve().with_name(f"{stem}.py"))


def _tools_in(obj: Any) -> list[Tool]:
    if isinstance(obj, Tool):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for t in obj if isinstance(t, Tool)]
    if isinstance(obj, ModuleType):
        return [v for v in vars(obj).values() if isinstance(v, Tool)]
    return []


def discover_file(path: Path) -> Discovery:
    """The tools of one plugin file, as ``discover`` loads each file of a folder."""
    found = Discovery()
    _load_file(found, path)
    return found


def _load_file(found: Discovery, path: Path) -> None:
    try:
        module = _import_file(path)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported and skipped
        found.skipped.append(Skipped(str(path), _reason(exc, path)))
        return
    for item in _tools_in(module):
        if Path(item.source).resolve() == path.resolve() or item.source == "<code>":
            found.add(item, str(path))


def discover(folders: Sequence[str | Path], *, use_entry_points: bool = True) -> Discovery:
    """Load tools from plugin folders (in order) and from installed packages' entry points."""
    found = Discovery()
    for folder in map(Path, folders):
        if not folder.is_dir():
            found.skipped.append(Skipped(str(folder), MISSING_FOLDER))
            continue
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                _load_file(found, path)
    if use_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {ep.name} = {ep.value}"
            try:
                loaded = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken package is reported and skipped
                found.skipped.append(Skipped(source, f"{type(exc).__name__}: {exc}"))
                continue
            tools = _tools_in(loaded)
            if not tools:
                found.skipped.append(Skipped(source, "it names no Tool (expected a Tool, a list of them, or a module)"))
            for item in tools:
                found.add(item, source)
    return found
