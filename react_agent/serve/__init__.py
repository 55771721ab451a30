"""Agents over HTTP: ``create_app(agents, store, keys)`` (FastAPI), and ``serve`` for the command line.

Needs the ``server`` extra (``pip install 'react-agent[server]'``): FastAPI, uvicorn, sse-starlette.
Nothing here is imported by ``import react_agent``.
"""

from __future__ import annotations

from .app import create_app
from .auth import Keys, load_keys
from .manager import RunManager
from .tasks import served_agents

__all__ = ["Keys", "RunManager", "create_app", "load_keys", "served_agents"]
