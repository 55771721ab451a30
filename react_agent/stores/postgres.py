"""``PostgresStore``: the store contract on PostgreSQL (psycopg 3 and its connection pool) — one database that
many processes and hosts can share.

Three tables (the prefix is ``react_agent_`` unless given), created on first use by whoever comes first
(``CREATE TABLE IF NOT EXISTS`` in a transaction holding an advisory lock, so two first users never race):

* ``sessions``  ``id`` (key), ``user_id``, ``agent``, ``created``, ``next_seq`` — the next free entry number;
* ``entries``   ``session``, ``seq``, ``count``, ``entries`` — one row per commit, as on disk: the commit's
  entries as a JSON array, numbered ``seq``, ``seq + 1``, … (``count`` of them); key ``(session, seq)``;
* ``runs``      ``run_id`` (key), ``session``, ``status``, ``user_id``, ``started``, ``record`` (indexed for
  the ``runs()`` filters).

Values are ``json``, not ``jsonb``: the text is kept as written, so key order and numbers read back exactly as
the disk store gives them; nothing is ever pickled. A ``write`` is one transaction: the session row is
created if missing and its ``next_seq`` moved on under the row's lock (``UPDATE … RETURNING``), so writers
in any number of threads and processes get consecutive numbers, never the same ones; then the commit's row
and the run records go in. A transaction that does not commit (a kill -9, a lost connection) leaves nothing,
the numbers it reserved included. A database that cannot be reached is a ``StoreUnavailableError`` naming
the store with its password redacted, never a driver traceback.

psycopg is imported when a ``PostgresStore`` is made, never by ``import react_agent`` (``pip install
'react-agent[postgres]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StoreCorruptError, StoreUnavailableError
from ..faults import point
from ..redact import dsn_passwords, redact_dsn
from .base import Entry, RunRecord, SessionInfo, Store

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.sql import Composed
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresStore"]

PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")


def _dumps(value: object) -> str:
    """Compact JSON, as the disk store writes it; NaN and infinities are refused here (PostgreSQL's ``json``
    would refuse them at the insert)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class PostgresStore(Store):
    """Sessions and run journals in PostgreSQL. Safe to share between threads; any number of processes
    may use one database at once."""

    def __init__(self, url: str, *, table_prefix: str = "react_agent_", max_connections: int = 10,
                 timeout: float = 10.0) -> None:
        self.where = redact_dsn(url)  # for messages: the URL with its password redacted
        self._secrets = dsn_passwords(url)
        if not PREFIX.fullmatch(table_prefix):
            raise ValueError(f"table_prefix must be lower-case letters, digits and _, got {table_prefix!r}")
        try:
            import psycopg  # noqa: PLC0415 - deferred: keeps `import react_agent` fast and the extra optional
            import psycopg_pool  # noqa: PLC0415, F401 - checked here, used when the pool opens
        except ImportError as exc:
            raise StoreUnavailableError(self.where, f"the postgres extra is not installed ({exc.name} is missing)",
                                        f"{sys.executable} -m pip install 'react-agent[postgres]'") from None
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except (psycopg.Error, ValueError) as exc:
            raise self._unavailable(exc, "not a valid connection URL: ") from None
        _quiet_pool_log()
        self._url = url
        self._connect_args: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": int(timeout)}
        self._max = max_connections
        self._timeout = timeout
        self._prefix = table_prefix
        self._sql = _statements(table_prefix)
        self._pool: ConnectionPool[Connection[Any]] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    # -- connections ------------------------------------------------------------------------------
    def _unavailable(self, exc: BaseException, prefix: str = "") -> StoreUnavailableError:
        """The driver's error as ours: its message on one line, with any password in it redacted."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        return StoreUnavailableError(self.where, prefix + reason)

    def _open(self) -> ConnectionPool[Connection[Any]]:
        """The pool, opened on first use (and again after ``close``). The schema is made first, on a
        connection of its own, so a database that cannot be reached fails here with the server's reason."""
        if self._pool is not None:
            return self._pool
        with self._lock:
            if self._pool is None:
                import psycopg  # noqa: PLC0415 - deferred with the store itself
                from psycopg_pool import ConnectionPool  # noqa: PLC0415

                try:
                    with psycopg.connect(self._url, **self._connect_args) as conn:
                        tables = [f"{self._prefix}{name}" for name in ("sessions", "entries", "runs")]
                        found = conn.execute("SELECT to_regclass(%s), to_regclass(%s), to_regclass(%s)",
                                             tables).fetchone()
                        if found is None or None in found:  # a role that may only read needs no CREATE
                            with conn.transaction():
                                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self._prefix),))
                                for statement in self._sql["schema"]:
                                    conn.execute(statement)
                except psycopg.Error as exc:
                    raise self._unavailable(exc) from None
                pool: ConnectionPool[Connection[Any]] = ConnectionPool(
                    self._url, min_size=1, max_size=self._max, open=False, timeout=self._timeout,
                    kwargs={"autocommit": True, **self._connect_args}, check=ConnectionPool.check_connection,
                    name="react_agent")
                pool.open(wait=False)
                self._pool = pool
        return self._pool

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        """A pooled connection (autocommit: a read is one statement, a write opens its own transaction);
        whatever the database answers with an error (a lost or unreachable server, a refused login, a table
        it may not touch) becomes ``StoreUnavailableError``."""
        import psycopg  # noqa: PLC0415 - already loaded by __init__
        from psycopg_pool import PoolTimeout  # noqa: PLC0415

        pool = self._open()
        try:
            with pool.connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._unavailable(exc) from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __del__(self) -> None:
        """A store dropped without ``close``: its pool is closed here, in the thread that let go of it (left to
        the garbage collector, the pool might be collected in one of its own worker threads, which cannot
        join themselves)."""
        if getattr(self, "_pool", None) is not None:
            with contextlib.suppress(Exception):
                self.close()

    # -- writes -----------------------------------------------------------------------------------
    def write(self, session: str, entries: Sequence[Entry], *, runs: Sequence[RunRecord] = (),
              info: SessionInfo | None = None) -> int:
        batch = _dumps(list(entries)) if entries else None  # before any statement: a bad value changes nothing
        records = [(r.run_id, r.session, r.status, r.user_id, r.started, r.model_dump_json()) for r in runs]
        sql, count = self._sql, len(entries)
        with self._connection() as conn, conn.transaction():
            row = conn.execute(sql["reserve"], (count, session)).fetchone()
            while row is None:  # a new session (two creators at once: one inserts, both then reserve in turn)
                made = info or SessionInfo(session)
                conn.execute(sql["create"], (session, made.user_id, made.agent, made.created))
                row = conn.execute(sql["reserve"], (count, session)).fetchone()
            first = int(row[0]) - count
            if batch is not None:
                conn.execute(sql["append"], (session, first, count, batch))
                point("write:inside")  # the kill -9 tests: a death here must roll the whole commit back
            if records:
                with conn.cursor() as cursor:
                    cursor.executemany(sql["put_run"], records)
        return first

    def delete_session(self, session: str) -> bool:
        sql = self._sql
        with self._connection() as conn, conn.transaction():
            gone = conn.execute(sql["delete_session"], (session,)).rowcount  # locks out its writers first
            if not gone:
                return False
            conn.execute(sql["delete_entries"], (session,))
            conn.execute(sql["delete_runs"], (session,))
        return True

    # -- reads ------------------------------------------------------------------------------------
    def entries(self, session: str, start: int = 0) -> list[Entry]:
        with self._connection() as conn:
            rows = conn.execute(self._sql["entries"], (session, start)).fetchall()
        found: list[Entry] = []
        for first, text in rows:
            batch = self._load(text, f"entry {first} of session {session!r}")
            if not isinstance(batch, list) or not batch or not all(isinstance(e, dict) for e in batch):
                raise StoreCorruptError(self.where, f"entry {first} of session {session!r}, which is not a commit")
            found += [{**entry, "seq": first + k} for k, entry in enumerate(batch) if first + k >= start]
        return found

    def session_info(self, session: str) -> SessionInfo | None:
        with self._connection() as conn:
            row = conn.execute(self._sql["session"], (session,)).fetchone()
        return None if row is None else SessionInfo(row[0], row[1], row[2], float(row[3]))

    def sessions(self, user_id: str | None = None) -> list[SessionInfo]:
        with self._connection() as conn:
            rows = (conn.execute(self._sql["sessions"]) if user_id is None else
                    conn.execute(self._sql["sessions_of"], (user_id,))).fetchall()
        return [SessionInfo(r[0], r[1], r[2], float(r[3])) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        with self._connection() as conn:
            row = conn.execute(self._sql["run"], (run_id,)).fetchone()
        return None if row is None else self._record(row[0], run_id)

    def runs(self, *, session: str | None = None, status: str | None = None,
             user_id: str | None = None) -> list[RunRecord]:
        from psycopg import sql  # noqa: PLC0415 - deferred with the store itself

        filters = [(name, value) for name, value in (("session", session), ("status", status), ("user_id", user_id))
                   if value is not None]
        where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name, _ in filters)
        query = sql.SQL("SELECT record::text, run_id FROM {runs} {where} ORDER BY started, n").format(
            runs=sql.Identifier(f"{self._prefix}runs"),
            where=sql.SQL("WHERE ") + where if filters else sql.SQL(""))
        with self._connection() as conn:
            rows = conn.execute(query, [value for _, value in filters]).fetchall()
        return [self._record(text, run_id) for text, run_id in rows]

    def _record(self, text: str, run_id: str) -> RunRecord:
        try:
            return RunRecord.model_validate_json(text)
        except ValueError:
            raise StoreCorruptError(self.where, f"the record of run {run_id!r}") from None

    def _load(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:  # the column is json, so only a value written around this class
            raise StoreCorruptError(self.where, f"{what}, which is not JSON ({exc})") from None


def _quiet_pool_log() -> None:
    """psycopg_pool logs each failed reconnection as a warning; with no logging configured, Python prints
    them on stderr (its last-resort handler), some twenty lines before our one error. A handler of our own
    on that logger keeps them out of the terminal; an application that configures logging still gets them."""
    pool_log = logging.getLogger("psycopg.pool")
    if not any(isinstance(h, logging.NullHandler) for h in pool_log.handlers):
        pool_log.addHandler(logging.NullHandler())


def _lock_key(prefix: str) -> int:
    """The advisory lock that serializes schema creation for tables with this prefix (a signed 64-bit int)."""
    return int.from_bytes(hashlib.sha256(f"react_agent schema {prefix}".encode()).digest()[:8], "big", signed=True)


def _statements(prefix: str) -> dict[str, Any]:
    """Every statement, with the tables' names composed in (identifiers, never text pasted into SQL)."""
    from psycopg import sql  # noqa: PLC0415 - deferred with the store itself

    names = {name: sql.Identifier(f"{prefix}{name}") for name in
             ("sessions", "entries", "runs", "sessions_user", "runs_session", "runs_status", "runs_user",
              "runs_started")}

    def q(text: str) -> Composed:
        return sql.SQL(text).format(**names)

    return {
        "schema": [q(text) for text in (
            "CREATE TABLE IF NOT EXISTS {sessions} (id text PRIMARY KEY, user_id text, agent text, "
            "created double precision NOT NULL, next_seq bigint NOT NULL DEFAULT 0, "
            "n bigint GENERATED ALWAYS AS IDENTITY)",
            "CREATE INDEX IF NOT EXISTS {sessions_user} ON {sessions} (user_id, created)",
            "CREATE TABLE IF NOT EXISTS {entries} (session text NOT NULL, seq bigint NOT NULL, "
            "count integer NOT NULL, entries json NOT NULL, PRIMARY KEY (session, seq))",
            "CREATE TABLE IF NOT EXISTS {runs} (run_id text PRIMARY KEY, session text NOT NULL, "
            "status text NOT NULL, user_id text, started double precision NOT NULL, "
            "n bigint GENERATED ALWAYS AS IDENTITY, record json NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {runs_session} ON {runs} (session, started)",
            "CREATE INDEX IF NOT EXISTS {runs_status} ON {runs} (status, started)",
            "CREATE INDEX IF NOT EXISTS {runs_user} ON {runs} (user_id, started)",
            "CREATE INDEX IF NOT EXISTS {runs_started} ON {runs} (started)")],
        "reserve": q("UPDATE {sessions} SET next_seq = next_seq + %s WHERE id = %s RETURNING next_seq"),
        "create": q("INSERT INTO {sessions} (id, user_id, agent, created) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING"),
        "append": q("INSERT INTO {entries} (session, seq, count, entries) VALUES (%s, %s, %s, %s::json)"),
        "put_run": q("INSERT INTO {runs} (run_id, session, status, user_id, started, record) "
                     "VALUES (%s, %s, %s, %s, %s, %s::json) ON CONFLICT (run_id) DO UPDATE SET "
                     "session = EXCLUDED.session, status = EXCLUDED.status, user_id = EXCLUDED.user_id, "
                     "started = EXCLUDED.started, record = EXCLUDED.record"),
        "delete_session": q("DELETE FROM {sessions} WHERE id = %s"),
        "delete_entries": q("DELETE FROM {entries} WHERE session = %s"),
        "delete_runs": q("DELETE FROM {runs} WHERE session = %s"),
        "entries": q("SELECT seq, entries::text FROM {entries} WHERE session = %s AND seq + count > %s ORDER BY seq"),
        "session": q("SELECT id, user_id, agent, created FROM {sessions} WHERE id = %s"),
        "sessions": q("SELECT id, user_id, agent, created FROM {sessions} ORDER BY created, n"),
        "sessions_of": q("SELECT id, user_id, agent, created FROM {sessions} WHERE user_id = %s ORDER BY created, n"),
        "run": q("SELECT record::text FROM {runs} WHERE run_id = %s"),
    }
