"""Stores: the contract (``Store``) and its backends. ``DiskStore`` (diskcache) is the default;
``MemoryStore`` keeps everything in the process, for runs that need no second life; ``PostgresStore`` keeps
it in PostgreSQL (the ``postgres`` extra; loaded on first use, so psycopg is imported only then).
``open_store()`` is the store ``$REACT_AGENT_STORE`` names (unset: ``DiskStore()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..redact import redact_dsn
from .base import Entry, RunRecord, Session, SessionInfo, Store
from .disk import DiskStore
from .memory import MemoryStore
from .selection import STORE_ENV, open_store

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = ["STORE_ENV", "DiskStore", "Entry", "MemoryStore", "PostgresStore", "RunRecord", "Session", "SessionInfo",
           "Store", "open_store", "redact_dsn"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # its module is light; psycopg itself is imported when a store is made
        from .postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
