"""Sessions and run journals in a diskcache store on disk.

Layout (one diskcache ``Cache``; every key a short string):

* ``n:<session>``        number of messages (incremented atomically on append)
* ``m:<session>:<i>``    message *i* in OpenAI wire format — appending writes one key, never the history
* ``s:<session>``        session metadata (created, user id, agent)
* ``sessions``           {session: user id} index, rewritten only when a session is created or deleted
* ``r:<run>``            run record (agent, session, input, status, usage, ...)
* ``p:<run>``            run progress (steps journaled, usage so far): one write per step, no read
* ``rs:<run>:<i>``       step *i* of the run, written before the next model call
* ``runs``               {run: session} index
* ``t:<session>:<call>`` a tool result, saved the moment the tool finishes (for resume)

The store never evicts (diskcache's default would drop the oldest keys past 1 GB, cutting sessions),
so no set pays for diskcache's cull queries either. A step's writes go in one transaction.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diskcache import Cache

__all__ = ["Session", "SessionInfo", "Store", "default_store_path", "state_dir"]


def _home() -> Path:
    return Path(os.environ.get("REACT_AGENT_HOME") or ".react_agent")


def default_store_path() -> Path:
    """``$REACT_AGENT_HOME/store`` if set, else ``.react_agent/store`` in the working directory."""
    return _home() / "store"


def state_dir() -> Path:
    """Where tools keep state that outlives a run (databases, files): ``$REACT_AGENT_STATE_DIR``, else
    ``$REACT_AGENT_HOME/state``. Recorded and replayed task runs point it at a fresh folder, so they
    start from the same state every time."""
    path = Path(os.environ.get("REACT_AGENT_STATE_DIR") or _home() / "state")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    user_id: str | None
    agent: str | None
    created: float
    messages: int


class Store:
    """The on-disk memory. Safe to share between processes (SQLite underneath)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self._cache: Cache | None = None

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            from diskcache import Cache  # noqa: PLC0415 - deferred: keeps `import react_agent` fast

            self._cache = Cache(str(self.path), eviction_policy="none", cull_limit=0)
        return self._cache

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one SQLite transaction (one commit); calls inside may nest."""
        with self.cache.transact():
            yield

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- sessions ---------------------------------------------------------------------------------
    def create_session(self, session: str | None = None, *, user_id: str | None = None,
                       agent: str | None = None) -> Session:
        sid = session or uuid.uuid4().hex[:12]
        cache = self.cache
        with cache.transact():
            if cache.get(f"s:{sid}") is None:
                cache.set(f"s:{sid}", {"created": time.time(), "user_id": user_id, "agent": agent})
                cache.set(f"n:{sid}", 0)
                index = cache.get("sessions", {})
                index[sid] = user_id
                cache.set("sessions", index)
        return Session(self, sid)

    def session(self, session: str) -> Session:
        return Session(self, session)

    def exists(self, session: str) -> bool:
        return self.cache.get(f"s:{session}") is not None

    def append(self, session: str, message: dict[str, Any]) -> int:
        """Add one message; returns its index. O(1): one counter bump and one key written."""
        with self.cache.transact():
            if not self.exists(session):
                self.create_session(session)
            return self.append_many(session, [message])

    def append_many(self, session: str, messages: list[dict[str, Any]]) -> int:
        """Add messages to an existing session in one transaction; returns the index of the first."""
        cache = self.cache
        with cache.transact():
            end = int(cache.incr(f"n:{session}", len(messages)))
            for index, message in enumerate(messages, end - len(messages)):
                cache.set(f"m:{session}:{index}", message)
        return end - len(messages)

    def count(self, session: str) -> int:
        return int(self.cache.get(f"n:{session}", 0))

    def messages(self, session: str, start: int = 0) -> list[dict[str, Any]]:
        cache = self.cache
        return [cache.get(f"m:{session}:{i}") for i in range(start, self.count(session))]

    def sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        cache = self.cache
        infos = []
        for sid, owner in cache.get("sessions", {}).items():
            if user_id is not None and owner != user_id:
                continue
            meta = cache.get(f"s:{sid}") or {}
            infos.append(SessionInfo(sid, owner, meta.get("agent"), meta.get("created", 0.0), self.count(sid)))
        return sorted(infos, key=lambda info: info.created)

    def delete_session(self, session: str) -> bool:
        cache = self.cache
        with cache.transact():
            if cache.get(f"s:{session}") is None:
                return False
            for i in range(self.count(session)):
                message = cache.get(f"m:{session}:{i}") or {}
                if message.get("role") == "tool":
                    cache.delete(f"t:{session}:{message.get('tool_call_id')}")
                cache.delete(f"m:{session}:{i}")
            cache.delete(f"n:{session}")
            cache.delete(f"s:{session}")
            index = cache.get("sessions", {})
            index.pop(session, None)
            cache.set("sessions", index)
            runs = cache.get("runs", {})
            for run_id in [r for r, s in runs.items() if s == session]:
                self._delete_run(run_id)
                runs.pop(run_id)
            cache.set("runs", runs)
        return True

    # -- run journal ------------------------------------------------------------------------------
    def start_run(self, run_id: str, record: dict[str, Any]) -> None:
        cache = self.cache
        with cache.transact():
            cache.set(f"r:{run_id}", {**record, "steps": 0, "started": time.time()})
            runs = cache.get("runs", {})
            runs[run_id] = record.get("session")
            cache.set("runs", runs)

    def add_step(self, run_id: str, index: int, step: dict[str, Any]) -> None:
        self.cache.set(f"rs:{run_id}:{index}", step)

    def save_tool_result(self, session: str, call_id: str, result: dict[str, Any]) -> None:
        """Kept the moment a tool finishes, so a resumed run does not run it again."""
        self.cache.set(f"t:{session}:{call_id}", result)

    def tool_result(self, session: str, call_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.cache.get(f"t:{session}:{call_id}")
        return found

    def set_progress(self, run_id: str, *, steps: int, usage: dict[str, Any]) -> None:
        """The run's journal counters, written each step without reading the run record back."""
        self.cache.set(f"p:{run_id}", {"steps": steps, "usage": usage})

    def update_run(self, run_id: str, **fields: Any) -> None:
        cache = self.cache
        with cache.transact():
            record = cache.get(f"r:{run_id}") or {}
            record.update(fields)
            cache.set(f"r:{run_id}", record)

    def run(self, run_id: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = self.cache.get(f"r:{run_id}")
        progress = self.cache.get(f"p:{run_id}")
        if record is not None and progress:
            record.update(progress)
        return record

    def run_steps(self, run_id: str) -> list[dict[str, Any]]:
        record = self.run(run_id) or {}
        return [self.cache.get(f"rs:{run_id}:{i}") for i in range(int(record.get("steps", 0)))]

    def runs(self, session: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for run_id, owner in self.cache.get("runs", {}).items():
            if session is None or owner == session:
                found.append((run_id, self.run(run_id) or {}))
        return sorted(found, key=lambda item: item[1].get("started", 0.0))

    def _delete_run(self, run_id: str) -> None:
        for i in range(int((self.run(run_id) or {}).get("steps", 0))):
            self.cache.delete(f"rs:{run_id}:{i}")
        self.cache.delete(f"r:{run_id}")
        self.cache.delete(f"p:{run_id}")


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation: a handle on one session id in a ``Store``."""

    store: Store
    id: str

    def append(self, message: dict[str, Any]) -> int:
        return self.store.append(self.id, message)

    def messages(self) -> list[dict[str, Any]]:
        return self.store.messages(self.id)

    def __len__(self) -> int:
        return self.store.count(self.id)

    def delete(self) -> bool:
        return self.store.delete_session(self.id)
