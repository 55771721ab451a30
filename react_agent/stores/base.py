"""The store contract: what every backend (diskcache on disk, Postgres) must do, and nothing more.

A session is an append-only **log of entries** (JSON objects). Runs write their journal into the log
of their session; the conversation history is a pure function of the log (``history.fold``), so a
backend never interprets entries — it only has to

* append entries atomically, in order, each with its sequence number (``write``), optionally storing
  run records and creating the session **in the same commit**;
* read a session's entries back in order (``entries``);
* keep run records (small, rewritten at a run's start, pause and end) and session records.

That is the whole contract; the crash-safety rules (what is durable when, what resume does) live in
``react_agent.journal`` above it and hold for every backend that keeps this contract. One contract
test suite (``tests/test_store.py``) runs on every backend.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from ..history import fold

__all__ = ["Entry", "RunRecord", "Session", "SessionInfo", "Store"]

Entry = dict[str, Any]  # a JSON object with at least "kind" (and "run" for a run's entries)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    user_id: str | None = None
    agent: str | None = None
    created: float = field(default_factory=time.time)


class RunRecord(BaseModel):
    """What a store keeps about one run besides its journal entries."""

    run_id: str
    session: str
    agent: str
    status: str = "running"  # running | awaiting_approval | completed | error | ... (steps.RunStatus)
    input: str = ""
    model: str = ""
    user_id: str | None = None
    first: int = 0  # sequence number of the run's start entry in its session's log
    started: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    steps: int = 0
    usage: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    error: str | None = None
    error_type: str | None = None
    ms: float = 0.0
    variables: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)  # e.g. task_file and task of a CLI run
    pending: list[dict[str, Any]] = Field(default_factory=list)  # awaiting_approval: the calls to decide on


class Store(ABC):
    """Sessions (append-only entry logs) and run records. Implementations must be safe to use from
    several threads (a sync tool's result is written from the tool's own thread)."""

    # -- the contract -----------------------------------------------------------------------------
    @abstractmethod
    def write(self, session: str, entries: Sequence[Entry], *, runs: Sequence[RunRecord] = (),
              info: SessionInfo | None = None) -> int:
        """Append ``entries`` to the session's log and store ``runs`` (created or replaced), all in one
        atomic commit; the session is created first if it does not exist (with ``info`` when given).
        The entries get consecutive sequence numbers; returns the first (the next free one if none)."""

    @abstractmethod
    def entries(self, session: str, start: int = 0) -> list[Entry]:
        """The session's entries from ``start`` on, in order, each with its ``"seq"``."""

    @abstractmethod
    def session_info(self, session: str) -> SessionInfo | None: ...

    @abstractmethod
    def sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        """All sessions (of ``user_id`` when given), oldest first."""

    @abstractmethod
    def delete_session(self, session: str) -> bool:
        """Remove the session, its log and its runs; ``False`` if there was no such session."""

    @abstractmethod
    def run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def runs(self, *, session: str | None = None, status: str | None = None,
             user_id: str | None = None) -> list[RunRecord]:
        """Run records, oldest first, filtered by session, status and user."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources to release
        """Release connections; the store can be used again afterwards (it reconnects)."""

    # -- built on the contract --------------------------------------------------------------------
    def exists(self, session: str) -> bool:
        return self.session_info(session) is not None

    def create_session(self, session: str, *, user_id: str | None = None, agent: str | None = None) -> Session:
        """Create the session if it does not exist (an existing one is kept as it is)."""
        self.write(session, [], info=SessionInfo(session, user_id, agent))
        return Session(self, session)

    def session(self, session: str) -> Session:
        return Session(self, session)

    def append(self, session: str, message: dict[str, Any]) -> None:
        """Add a message outside any run (e.g. seeding a conversation); creates the session if needed."""
        self.write(session, [{"kind": "messages", "run": None, "messages": [message]}])

    def messages(self, session: str) -> list[dict[str, Any]]:
        """The session's conversation history in Chat Completions wire format."""
        return fold(self.entries(session)).history


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation: a handle on one session id in a ``Store``."""

    store: Store
    id: str

    def append(self, message: dict[str, Any]) -> None:
        self.store.append(self.id, message)

    def messages(self) -> list[dict[str, Any]]:
        return self.store.messages(self.id)

    def __len__(self) -> int:
        return len(self.messages())

    def delete(self) -> bool:
        return self.store.delete_session(self.id)
