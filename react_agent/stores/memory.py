"""``MemoryStore``: sessions and run journals in this process's memory — nothing on disk, nothing survives it.

For tests, notebooks, one-off scripts and read-only filesystems, where a run needs no second life. It keeps
the store contract like any backend (``tests/test_store.py`` runs the contract suite on it), so a run on
it behaves exactly as on disk while the process lives: ``resume`` after an exception, approvals, the
history fold. It only gives up what needs a disk: a run does not outlive its process. Values are kept as
JSON text, as ``DiskStore`` keeps them, so what is read back is a copy — never an object a caller can
change afterwards — and a value that is not JSON fails the same way on both.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

from .base import Entry, RunRecord, SessionInfo, Store

__all__ = ["MemoryStore"]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class MemoryStore(Store):
    """The store contract in a few dictionaries, safe to share between the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, list[str]] = {}  # session -> its entries, as JSON text, in order
        self._sessions: dict[str, SessionInfo] = {}
        self._runs: dict[str, str] = {}  # run id -> its record, as JSON text (insertion order: started)

    def write(self, session: str, entries: Sequence[Entry], *, runs: Sequence[RunRecord] = (),
              info: SessionInfo | None = None) -> int:
        texts = [_dumps(entry) for entry in entries]  # before taking anything in: a bad value changes nothing
        records = [(record.run_id, record.model_dump_json()) for record in runs]
        with self._lock:
            if session not in self._sessions:
                self._sessions[session] = info or SessionInfo(session)
                self._logs[session] = []
            log = self._logs[session]
            first = len(log)
            log.extend(texts)
            self._runs.update(records)
        return first

    def entries(self, session: str, start: int = 0) -> list[Entry]:
        with self._lock:
            texts = list(self._logs.get(session, ())[start:])
        return [{**json.loads(text), "seq": start + n} for n, text in enumerate(texts)]

    def session_info(self, session: str) -> SessionInfo | None:
        with self._lock:
            return self._sessions.get(session)

    def sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        with self._lock:
            infos = list(self._sessions.values())
        return sorted((i for i in infos if user_id is None or i.user_id == user_id), key=lambda i: i.created)

    def run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            text = self._runs.get(run_id)
        return None if text is None else RunRecord.model_validate_json(text)

    def runs(self, *, session: str | None = None, status: str | None = None,
             user_id: str | None = None) -> list[RunRecord]:
        with self._lock:
            texts = list(self._runs.values())
        records = [RunRecord.model_validate_json(text) for text in texts]
        wanted = [r for r in records if (session is None or r.session == session)
                  and (status is None or r.status == status) and (user_id is None or r.user_id == user_id)]
        return sorted(wanted, key=lambda r: r.started)

    def delete_session(self, session: str) -> bool:
        with self._lock:
            if self._sessions.pop(session, None) is None:
                return False
            del self._logs[session]
            for run_id in [r for r, text in self._runs.items() if json.loads(text)["session"] == session]:
                del self._runs[run_id]
        return True
