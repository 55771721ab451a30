"""Which store a program gets when it names none: ``$REACT_AGENT_STORE``.

* unset (or empty) — ``DiskStore()``, the store folder under ``$REACT_AGENT_HOME`` (the default);
* a ``postgresql://`` or ``postgres://`` URL — ``PostgresStore(url)`` (the ``postgres`` extra).

Anything else is a ``UserError`` (one line and exit 2 at the CLI). Nothing here imports a driver.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ..errors import UserError
from ..redact import redact_dsn

if TYPE_CHECKING:
    from .base import Store

__all__ = ["POSTGRES_SCHEMES", "STORE_ENV", "open_store"]

STORE_ENV = "REACT_AGENT_STORE"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


_SHARED: dict[str, Store] = {}  # one PostgresStore (one connection pool) per URL in a process
_LOCK = threading.Lock()


def open_store(url: str | None = None) -> Store:
    """The store ``url`` names, else the one ``$REACT_AGENT_STORE`` names, else the disk store. Agents built
    without a store share one ``PostgresStore`` per URL — one pool, not one per agent (the server's
    connection limit)."""
    chosen = (os.environ.get(STORE_ENV, "") if url is None else url).strip()
    if not chosen:
        from .disk import DiskStore  # noqa: PLC0415 - the default backend, as before

        return DiskStore()
    if chosen.startswith(POSTGRES_SCHEMES):  # as libpq spells them: it refuses POSTGRESQL://
        from .postgres import PostgresStore  # noqa: PLC0415 - deferred: psycopg only when it is asked for

        with _LOCK:
            if chosen not in _SHARED:
                _SHARED[chosen] = PostgresStore(chosen)
            return _SHARED[chosen]
    raise UserError(f"{STORE_ENV}={redact_dsn(chosen)} is not a store URL: set a postgresql:// URL "
                    "(e.g. postgresql://user:password@host/database), or unset it for the disk store")
