"""Where react-agent keeps things on disk: the store and the tools' state folder."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["default_store_path", "home", "private_dir", "state_dir", "state_dir_at"]


def home() -> Path:
    """``$REACT_AGENT_HOME``, else ``.react_agent`` in the working directory."""
    return Path(os.environ.get("REACT_AGENT_HOME") or ".react_agent")


def default_store_path() -> Path:
    """``$REACT_AGENT_HOME/store`` if set, else ``.react_agent/store`` in the working directory."""
    return home() / "store"


def state_dir() -> Path:
    """Where tools keep state that outlives a run (databases, files): ``$REACT_AGENT_STATE_DIR``, else
    ``$REACT_AGENT_HOME/state``. Recorded and replayed task runs point it at a fresh folder, so they
    start from the same state every time."""
    path = Path(os.environ.get("REACT_AGENT_STATE_DIR") or home() / "state")
    path.mkdir(parents=True, exist_ok=True)
    return path


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents readable by the owner only (0700 whatever the umask); a
    folder that exists already keeps its mode, except ``path`` itself, which is made 0700."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for made in (*missing, path):
        made.chmod(0o700)
    return path


@contextlib.contextmanager
def state_dir_at(path: Path) -> Iterator[None]:
    """Point the tools' state folder at ``path`` for the duration (recorded and replayed runs start from a
    fresh one, so they see the same state every time)."""
    old = os.environ.get("REACT_AGENT_STATE_DIR")
    os.environ["REACT_AGENT_STATE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("REACT_AGENT_STATE_DIR", None)
        else:
            os.environ["REACT_AGENT_STATE_DIR"] = old
