"""The default store: one diskcache ``Cache`` (SQLite) in a private folder, values as JSON.

Layout (every key a short string, every value JSON):

* ``e:<session>:<n>``  one commit of the session's log: a JSON array of its entries, numbered *n*, *n + 1*,
  … — appended with ``add`` (insert-if-absent), so two writers can never overwrite each other's
  commits; nothing is ever rewritten. (A store written before commits were rows holds one entry, a JSON
  object, per key: it is read the same way.)
* ``h:<session>``      where the log ends (a hint, moved at run start/pause/end; readers and writers
  probe past it)
* ``s:<session>``      the session record; ``si`` / ``si:<n>`` the session index (append-only slots)
* ``r:<run>``          the run record; ``ri`` / ``ri:<n>`` the run index (append-only slots)

A step's commit is one row in its own transaction: ``BEGIN IMMEDIATE``, one ``SELECT``, one ``INSERT``,
``COMMIT``, however many entries it holds. Values never go through pickle: the store cannot run code
planted in its files, and a value that is not our JSON is reported, not loaded. The folder is 0700 and
the database 0600 whatever the umask (SQLite gives its ``-wal``/``-shm`` files the database's mode).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreCorruptError
from ..faults import point
from ..paths import default_store_path, private_dir
from .base import Entry, RunRecord, SessionInfo, Store

if TYPE_CHECKING:
    from diskcache import Cache

__all__ = ["DiskStore"]

MODE_RAW = 1  # diskcache's mode for values kept inline in the database row


@functools.cache
def _json_disk() -> type:
    """A diskcache ``Disk`` that stores str keys as they are and values as compact JSON bytes inline,
    and refuses anything else it finds (pickled keys or values, values in side files)."""
    from diskcache import Disk  # noqa: PLC0415 - deferred with the cache itself

    class JsonDisk(Disk):  # type: ignore[misc]  # diskcache ships no type information
        def put(self, key: Any) -> tuple[Any, bool]:
            if not isinstance(key, str):
                raise TypeError(f"store keys are strings, got {type(key).__name__}")
            return key, True

        def get(self, key: Any, raw: bool) -> Any:
            if not raw or not isinstance(key, str):
                raise StoreCorruptError(self._directory, f"a key that is not a plain string ({key!r:.60})")
            return key

        def store(self, value: Any, read: bool, key: Any = None) -> tuple[int, int, None, Any]:
            data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
            return 0, MODE_RAW, None, sqlite3.Binary(data)

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            if mode != MODE_RAW or filename is not None:
                raise StoreCorruptError(self._directory, f"a value stored in mode {mode} (only inline JSON is read)")
            if isinstance(value, int | float):  # counters
                return value
            try:
                return json.loads(bytes(value))
            except (TypeError, ValueError) as exc:
                raise StoreCorruptError(self._directory, f"a value that is not JSON ({exc})") from None

    return JsonDisk


class DiskStore(Store):
    """Sessions and run journals in a diskcache store on disk. Safe to share between threads and
    processes (SQLite underneath)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self._cache: Cache | None = None
        self._lock = threading.RLock()
        self._ends: dict[str, int] = {}  # session -> next free entry number, as this process last saw it

    @property
    def cache(self) -> Cache:
        """The diskcache ``Cache``, opened once (threads that ask at the same moment share it: two
        ``Cache`` objects initializing one database at once lock each other out)."""
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    self._cache = self._open()
        return self._cache

    def _open(self) -> Cache:
        from diskcache import Cache  # noqa: PLC0415 - deferred: keeps `import react_agent` fast

        private_dir(self.path)
        database = self.path / "cache.db"
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
        for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
            if (self.path / name).exists():
                (self.path / name).chmod(0o600)
        return Cache(str(self.path), disk=_json_disk(), eviction_policy="none", cull_limit=0, statistics=False)

    def close(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None
            self._ends.clear()

    # -- writes -----------------------------------------------------------------------------------
    def write(self, session: str, entries: Sequence[Entry], *, runs: Sequence[RunRecord] = (),
              info: SessionInfo | None = None) -> int:
        with self._lock:
            seen = self._ends.get(session)
            try:
                with self.cache.transact():
                    return self._write(session, entries, runs, info)
            except BaseException:  # rolled back: forget the end it moved, or the next write leaves a gap
                if seen is None:
                    self._ends.pop(session, None)
                else:
                    self._ends[session] = seen
                raise

    def _write(self, session: str, entries: Sequence[Entry], runs: Sequence[RunRecord],
               info: SessionInfo | None) -> int:
        """One ``write``, inside the caller's transaction."""
        cache = self.cache
        if session not in self._ends and cache.get(f"s:{session}") is None:
            made = info or SessionInfo(session)
            cache.set(f"s:{session}", {"id": session, "user_id": made.user_id, "agent": made.agent,
                                       "created": made.created})
            self._index("si", session)
        seq = self._end(session)
        if entries:
            while not cache.add(f"e:{session}:{seq}", list(entries)):  # another writer got there first
                seq = self._end(session, seq)
            point("write:inside")  # the kill -9 tests: a death here must roll the whole commit back
        for record in runs:
            if cache.get(f"r:{record.run_id}") is None:
                self._index("ri", record.run_id)
            cache.set(f"r:{record.run_id}", record.model_dump(mode="json"))
        if runs:
            cache.set(f"h:{session}", seq + len(entries))
        self._ends[session] = seq + len(entries)
        return seq

    def _end(self, session: str, seq: int | None = None) -> int:
        """The next free entry number: from ``seq``, else the last one this process saw, else the hint,
        probed past the commits stored there."""
        cache = self.cache
        if seq is None and (seen := self._ends.get(session)) is not None:
            return seen  # if another process wrote there since, ``add`` fails and we probe from here
        if seq is None:
            seq = int(cache.get(f"h:{session}", 0))
        while (row := cache.get(f"e:{session}:{seq}")) is not None:
            seq += len(self._batch(session, seq, row))
        return seq

    def _batch(self, session: str, seq: int, row: Any) -> list[Entry]:
        """The entries of one stored commit (a lone object: a store from before commits were rows)."""
        batch = row if isinstance(row, list) else [row]
        if not batch or not all(isinstance(entry, dict) for entry in batch):
            raise StoreCorruptError(str(self.path), f"entry {seq} of session {session!r} is not an object")
        return batch

    def _rows(self, session: str) -> list[tuple[int, list[Entry]]]:
        """The session's stored commits, in order, each with the number of its first entry."""
        cache = self.cache
        found = []
        seq = 0
        while (row := cache.get(f"e:{session}:{seq}")) is not None:
            batch = self._batch(session, seq, row)
            found.append((seq, batch))
            seq += len(batch)
        return found

    def _index(self, name: str, value: str) -> None:
        slot = int(self.cache.get(name, 0))
        self.cache.set(f"{name}:{slot}", value)
        self.cache.set(name, slot + 1)

    def _indexed(self, name: str) -> list[tuple[int, str]]:
        cache = self.cache
        return [(i, v) for i in range(int(cache.get(name, 0))) if (v := cache.get(f"{name}:{i}")) is not None]

    # -- reads ------------------------------------------------------------------------------------
    def entries(self, session: str, start: int = 0) -> list[Entry]:
        return [{**entry, "seq": first + k} for first, batch in self._rows(session)
                for k, entry in enumerate(batch) if first + k >= start]

    def session_info(self, session: str) -> SessionInfo | None:
        raw = self.cache.get(f"s:{session}")
        if raw is None:
            return None
        try:
            return SessionInfo(str(raw["id"]), raw.get("user_id"), raw.get("agent"), float(raw["created"]))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise StoreCorruptError(str(self.path), f"the record of session {session!r}") from None

    def sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        infos = [info for _, sid in self._indexed("si") if (info := self.session_info(sid)) is not None]
        return sorted((i for i in infos if user_id is None or i.user_id == user_id), key=lambda i: i.created)

    def run(self, run_id: str) -> RunRecord | None:
        raw = self.cache.get(f"r:{run_id}")
        if raw is None:
            return None
        try:
            return RunRecord.model_validate(raw)
        except ValueError:
            raise StoreCorruptError(str(self.path), f"the record of run {run_id!r}") from None

    def runs(self, *, session: str | None = None, status: str | None = None,
             user_id: str | None = None) -> list[RunRecord]:
        records = [r for _, run_id in self._indexed("ri") if (r := self.run(run_id)) is not None]
        wanted = [r for r in records if (session is None or r.session == session)
                  and (status is None or r.status == status) and (user_id is None or r.user_id == user_id)]
        return sorted(wanted, key=lambda r: r.started)

    # -- deletes ----------------------------------------------------------------------------------
    def delete_session(self, session: str) -> bool:
        cache = self.cache
        with self._lock, cache.transact():
            if cache.get(f"s:{session}") is None:
                return False
            for first, batch in self._rows(session):
                cache.delete(f"e:{session}:{first}")
                for entry in batch:
                    if entry.get("kind") == "start" and entry.get("run"):
                        cache.delete(f"r:{entry['run']}")
            for slot, sid in self._indexed("si"):
                if sid == session:
                    cache.delete(f"si:{slot}")
            for key in (f"s:{session}", f"h:{session}"):
                cache.delete(key)
            self._ends.pop(session, None)
        return True
