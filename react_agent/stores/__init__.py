"""Stores: the contract (``Store``) and its backends. ``DiskStore`` (diskcache) is the default;
``MemoryStore`` keeps everything in the process, for runs that need no second life."""

from __future__ import annotations

from .base import Entry, RunRecord, Session, SessionInfo, Store
from .disk import DiskStore
from .memory import MemoryStore

__all__ = ["DiskStore", "Entry", "MemoryStore", "RunRecord", "Session", "SessionInfo", "Store"]
