"""``run_sync``'s event loops: one ``asyncio.Runner`` per thread, kept from one call to the next.

``asyncio.run`` per call would build a new loop each time, and with it a new SDK client (its connection
pool belongs to the loop) and a new TCP connection; the client left on the closed loop is what printed
"Task exception was never retrieved … Event loop is closed". A kept loop reuses both. Each thread gets
its own loop, so threads may call ``run_sync`` at once. The loops are closed — their model clients
first — by ``close()``, when the owner is collected, or at interpreter exit.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import UserError

__all__ = ["SyncRunner"]

T = TypeVar("T")


class SyncRunner:
    """Runs coroutines for code without an event loop, on one kept loop per calling thread."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._runners: list[asyncio.Runner] = []  # every thread's; the finalizer closes what is left
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``main()`` run to its end on this thread's loop, with the caller's context variables."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UserError("run_sync() was called inside a running event loop; use `await agent.run(...)`")
        box: list[T] = []

        async def body() -> None:
            # The task's result stays None: ``asyncio.Runner.run`` formats its SIGINT handler, task
            # and result included, through ``repr`` on every call (``signal.getsignal``), and the repr
            # of a finished ``RunResult`` cost ~0.6 ms.
            box.append(await main())

        runner = self._runner()
        try:
            runner.run(body(), context=contextvars.copy_context())
        except (KeyboardInterrupt, SystemExit):  # its tasks may not have finished: close it as asyncio.run would
            self._local.runner = None
            with self._lock:
                if runner in self._runners:
                    self._runners.remove(runner)
            _close_now([runner])
            raise
        return box[0]

    def close(self) -> None:
        """Close every thread's loop that is not running a call, each after its model clients."""
        if self._finalizer is not None:
            _close_runners(self._runners, self._lock)
        self._local = threading.local()

    def _runner(self) -> asyncio.Runner:
        runner: asyncio.Runner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._local.runner = asyncio.Runner()
            with self._lock:
                self._runners.append(runner)
                if self._finalizer is None:  # also runs at interpreter exit
                    self._finalizer = weakref.finalize(self, _close_runners, self._runners, self._lock)
        return runner


def _close_runners(runners: list[asyncio.Runner], lock: threading.Lock) -> None:
    """Close the model clients of each loop on that loop, then the loop. A loop cannot run inside
    another, so from inside a running loop (closed or collected in async code) a helper thread does it."""
    with lock:
        closing = list(runners)
        runners.clear()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        busy = _close_now(closing)
    else:
        busy = []
        helper = threading.Thread(target=lambda: busy.extend(_close_now(closing)), name="react_agent-close")
        helper.start()
        helper.join()
    with lock:  # a loop still running a call in another thread is closed later (finalizer, exit)
        runners.extend(busy)


def _close_now(runners: list[asyncio.Runner]) -> list[asyncio.Runner]:
    """Close what can be closed; return the runners whose loop is running a call."""
    from .model import close_clients  # noqa: PLC0415

    busy = []
    for runner in runners:
        if runner.get_loop().is_running():
            busy.append(runner)
            continue
        runner.run(close_clients())
        runner.close()
    return busy
