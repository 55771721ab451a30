"""The run manager: runs are asyncio tasks it owns, not parts of a request, so they outlive the
requests that started them. Each run has a channel: its events in order (event id = position, from
1), which any number of clients replay and follow; a client that goes away only stops following.

A run the server did not run itself (before a restart, or long evicted from memory) is replayed from
its journal. Stopping the server cancels its runs without closing them: like a crash, they stay
``running`` in the journal, to be resumed (``POST /v1/runs/{id}/resume``) by the next server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from ..agent import CANCEL, Agent
from ..approval import Decision
from ..history import fold, result_from_store
from ..journal import RESUMABLE
from ..log import logger
from ..router import Router
from ..steps import Event, RunEnd, RunResult, RunStart
from ..stores import RunRecord, Store
from .events import event_data, rebuild_events

__all__ = ["Channel", "Conflict", "NotFound", "RunManager", "Runner", "agents_of"]

Runner = Agent | Router


class NotFound(LookupError):
    """No such run or session — or it is another user's (the same answer, on purpose)."""


class Conflict(RuntimeError):
    """The run or session is not in a state for this (running, not paused, ended, ...)."""


def agents_of(runner: Runner) -> list[Agent]:
    """The agents whose runs a runner journals: itself, or a router's classifier and specialists."""
    return [runner] if isinstance(runner, Agent) else [runner.classifier, *runner.routes.values()]


@dataclass(eq=False)
class Channel:
    """One run's events, as SSE ``(id, event, data)``; the run's task while it runs."""

    run_id: str
    user_id: str | None
    agent_id: str
    session: str | None
    input: str = ""
    events: list[tuple[str, str]] = field(default_factory=list)
    running: bool = False
    task: asyncio.Task[None] | None = None
    result: RunResult | None = None  # the run's last RunEnd (it may pause, then end)
    failure: str | None = None  # an exception that stopped the task (a bug): the journal tells the rest
    cancelling: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _nested: list[str] = field(default_factory=list)  # a router's runs under way, innermost last

    def push(self, event: Event) -> None:
        """Add an event (also a router's hook: its nested runs' events come tagged with their run id)."""
        if isinstance(event, RunStart):
            self._nested.append(event.run_id)
        owner = self._nested[-1] if self._nested else self.run_id
        if isinstance(event, RunEnd):
            owner = event.result.run_id
            if self._nested:
                self._nested.pop()
            if owner == self.run_id:
                self.result = event.result
        self.events.append((event.type, event_data(event, owner)))
        self.notify()

    def notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, str, str]]:
        """The events after id ``after``, then new ones as they come, until the run's task ends (the run
        ended or paused for approval)."""
        n = after
        while True:
            wake = self._wake
            while n < len(self.events):
                kind, data = self.events[n]
                n += 1
                yield n, kind, data
            if not self.running:
                return
            await wake.wait()

    async def idle(self) -> None:
        """Until the run's task ends."""
        while self.running:
            await self._wake.wait()


class RunManager:
    """Starts, continues and cancels runs of the served runners on one store."""

    def __init__(self, runners: Mapping[str, Runner], store: Store, *, keep: int = 1000) -> None:
        self.runners = dict(runners)
        self.store = store
        self.keep = keep  # channels of runs no longer running kept in memory; older ones replay the journal
        self.channels: OrderedDict[str, Channel] = OrderedDict()
        self.busy: dict[str, str] = {}  # session -> the run running on it
        self.log = logger().bind(component="serve")

    # -- ownership --------------------------------------------------------------------------------
    def record(self, run_id: str, user: str) -> RunRecord:
        record = self.store.run(run_id)
        if record is None or record.user_id != user:
            raise NotFound(f"no run {run_id!r}")
        return record

    def check_session(self, session: str, user: str) -> None:
        """A session may be new, or the user's own: another user's is not found."""
        info = self.store.session_info(session)
        if info is not None and info.user_id != user:
            raise NotFound(f"no session {session!r}")
        if session in self.busy:
            raise Conflict(f"run {self.busy[session]} is running on session {session!r}; wait for it or cancel it")

    def channel(self, run_id: str, user: str) -> Channel:
        """The run's channel: live or kept in memory, else rebuilt from its journal (not kept)."""
        found = self.channels.get(run_id)
        if found is not None:
            if found.user_id != user:
                raise NotFound(f"no run {run_id!r}")
            return found
        record = self.record(run_id, user)
        channel = Channel(run_id, user, str(record.metadata.get("served_agent") or record.agent), record.session,
                          record.input)
        for event in rebuild_events(self.store, record):
            channel.push(event)
        return channel

    # -- starting and continuing ------------------------------------------------------------------
    async def start(self, agent_id: str, text: str, session: str | None, user: str) -> Channel:
        runner = self.runners.get(agent_id)
        if runner is None:
            raise NotFound(f"no agent {agent_id!r}; see GET /v1/agents")
        session = session or uuid.uuid4().hex[:12]
        self.check_session(session, user)
        channel = Channel(uuid.uuid4().hex[:12], user, agent_id, session, text)
        metadata = {"served_agent": agent_id}
        work: Coroutine[Any, Any, Any]
        if isinstance(runner, Agent):
            events = runner.stream(text, session=session, user_id=user, run_id=channel.run_id, metadata=metadata)
            channel.push(await anext(events))  # the run is journaled (record and question) before we answer
            work = self._pump(channel, events)
        else:  # a router per run, so its hook sees only this run's events
            routed = Router(runner.routes, classifier=runner.classifier, name=runner.name,
                            hooks=[*runner.hooks, channel.push])
            work = routed.run(text, session=session, user_id=user, metadata=metadata, run_id=channel.run_id)
        self._launch(channel, work)
        return channel

    async def resume(self, run_id: str, user: str, approvals: Mapping[str, Decision] | None) -> Channel:
        """Continue a paused run with decisions on its waiting calls, or resume one whose server died.
        The decisions are checked before anything is written (``UserError`` when they do not fit)."""
        record = self.record(run_id, user)
        channel = self.channels.get(run_id)
        if channel is not None and channel.running:
            raise Conflict(f"run {run_id} is running")
        if approvals is not None and record.status != "awaiting_approval":
            raise Conflict(f"run {run_id} is not awaiting approval (status {record.status!r})")
        if approvals is None and record.status == "awaiting_approval":
            raise Conflict(f"run {run_id} awaits approval: POST /v1/runs/{run_id}/approvals")
        if record.status not in RESUMABLE:
            raise Conflict(f"run {run_id} already ended with status {record.status!r}")
        if record.session in self.busy:
            raise Conflict(f"run {self.busy[record.session]} is running on session {record.session!r}")
        agent = self._agent_for(record)
        if channel is None:
            channel = self.channel(run_id, user)
        events = agent.stream("", run_id=run_id, resume=True, approvals=approvals)
        channel.push(await anext(events))
        self._launch(channel, self._pump(channel, events))
        return channel

    def _agent_for(self, record: RunRecord) -> Agent:
        """The served agent that ran ``record``: under the runner that started it, else the only one
        with its name."""
        served = self.runners.get(str(record.metadata.get("served_agent")))
        runners = [served] if served is not None else list(self.runners.values())
        found = {id(a): a for runner in runners for a in agents_of(runner) if a.name == record.agent}
        if not found:
            raise Conflict(f"run {record.run_id} was run by agent {record.agent!r}, which this server does not serve")
        return next(iter(found.values()))

    async def _pump(self, channel: Channel, events: AsyncGenerator[Event, None]) -> None:
        async with aclosing(events):
            async for event in events:
                channel.push(event)

    def _launch(self, channel: Channel, work: Coroutine[Any, Any, Any]) -> None:
        self.channels[channel.run_id] = channel
        self.channels.move_to_end(channel.run_id)
        if channel.session is not None:
            self.busy[channel.session] = channel.run_id
        channel.running, channel.cancelling, channel.failure = True, False, None
        channel.task = asyncio.create_task(self._drive(channel, work), name=f"run {channel.run_id}")
        self._evict()

    async def _drive(self, channel: Channel, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            if not channel.cancelling:  # the server is stopping: the run stays open, to resume
                raise
            if (result := self._cancelled(channel)) is not None:
                channel.push(RunEnd(result))
            else:
                channel.failure = "the run was cancelled but its journal was not closed; resume it"
                self.log.error("cancel_left_open", run_id=channel.run_id)
        except Exception as exc:  # noqa: BLE001 - a bug, or a hook failing after the end: logged, kept
            channel.failure = f"{type(exc).__name__}: {exc}"
            self.log.error("run_task_failed", run_id=channel.run_id, error=channel.failure)
        finally:
            work.close()  # never started (cancelled at once): nothing left pending
            channel.running = False
            if channel.session is not None and self.busy.get(channel.session) == channel.run_id:
                del self.busy[channel.session]
            channel.notify()

    def _cancelled(self, channel: Channel) -> RunResult | None:
        record = self.store.run(channel.run_id)
        if record is not None:
            if record.status == "running":
                return None
            return result_from_store(record, fold(self.store.entries(record.session)))
        return RunResult(run_id=channel.run_id, agent=channel.agent_id, session=channel.session, model="",
                         status="cancelled", children=[])  # a router's own run is not journaled

    async def cancel(self, run_id: str, user: str) -> Channel:
        channel = self.channels.get(run_id)
        if channel is None or channel.user_id != user:
            self.record(run_id, user)  # not found, or:
            raise Conflict(f"run {run_id} is not running in this server (a paused run ends when you deny its "
                           "calls; one whose server died can be resumed)")
        if not channel.running or channel.task is None:
            raise Conflict(f"run {run_id} is not running (its last status: "
                           f"{channel.result.status if channel.result else 'unknown'})")
        channel.cancelling = True
        channel.task.cancel(CANCEL)
        await asyncio.wait({channel.task})
        return channel

    def forget_session(self, session: str) -> None:
        """Drop the channels of the runs on ``session`` (being deleted), so no route can still read them
        from memory. The session must have no run running (the caller refuses to delete it then)."""
        for run_id in [r for r, c in self.channels.items() if c.session == session]:
            del self.channels[run_id]

    def _evict(self) -> None:
        for run_id in [r for r, c in self.channels.items() if not c.running][:max(0, len(self.channels) - self.keep)]:
            del self.channels[run_id]

    async def close(self) -> None:
        """Stop every run without closing it: they stay ``running`` in the journal, resumable."""
        tasks = [c.task for c in self.channels.values() if c.running and c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def live(self) -> int:
        return sum(1 for c in self.channels.values() if c.running)
