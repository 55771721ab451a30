"""``run_sync``'s event loops: one ``asyncio.Runner`` per thread, kept from one call to the next.

``asyncio.run`` per call would build a new loop each time, and with it a new SDK client (its connection
pool belongs to the loop) and a new TCP connection; the client left on the closed loop is what printed
"Task exception was never retrieved … Event loop is closed". A kept loop reuses both. Each thread gets
its own loop, so threads may call ``run_sync`` at once. The loops are closed — their model clients
first — by ``close()``, when the owner is collected, or at interpreter exit.

Under ``run_sync`` the caller's thread does nothing but wait for the run, so a lone call of a sync tool
runs right there (``SYNC_CALLER``; ``react_agent.acting``) instead of hopping to a worker thread and back —
about 0.1-0.3 ms of CPU per call on two cores, more than the rest of a step costs. The tool sees no running
loop, like any function the caller calls, so it may call ``run_sync`` itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import UserError

__all__ = ["SYNC_CALLER", "SyncRunner", "call_here"]

T = TypeVar("T")

# True while a run is driven by ``run_sync`` and nothing else of it runs beside the current call: its
# lone sync tool calls may run in the caller's thread (``call_here``).
SYNC_CALLER: contextvars.ContextVar[bool] = contextvars.ContextVar("react_agent_sync_caller", default=False)


def call_here(function: Callable[[], T]) -> T:
    """Call ``function`` in this thread, on the loop's behalf, as plain sync code: with the loop hidden
    (so it may start an event loop of its own, e.g. another agent's ``run_sync``) and in a copy of the
    context, as a worker thread would run it."""
    loop = asyncio.events._get_running_loop()  # a low-level pair asyncio exports (asyncio.events.__all__)
    asyncio.events._set_running_loop(None)
    try:
        return contextvars.copy_context().run(function)
    finally:
        asyncio.events._set_running_loop(loop)


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
            SYNC_CALLER.set(True)
            # The task's result stays None: ``asyncio.Runner.run`` formats its SIGINT handler, task
            # and result included, through ``repr`` on every call (``signal.getsignal``), and the repr
            # of a finished ``RunResult`` cost ~0.6 ms.
            box.append(await main())

        runner = self._runner()
        if runner.get_loop().is_running():  # a sync tool of a run on this loop called ``run_sync`` again
            nested = asyncio.Runner()
            try:
                nested.run(body(), context=contextvars.copy_context())
            finally:
                _close_now([nested])
            return box[0]
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
