"""Stores: the contract (``Store``) and its backends. ``DiskStore`` (diskcache) is the default."""

from __future__ import annotations

from .base import Entry, RunRecord, Session, SessionInfo, Store
from .disk import DiskStore

__all__ = ["DiskStore", "Entry", "RunRecord", "Session", "SessionInfo", "Store"]
