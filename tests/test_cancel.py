"""Cancelling a run's task: ``task.cancel(CANCEL)`` ends the run ``cancelled`` and closed; any other
cancellation (Ctrl-C, a server stopping) leaves it open for ``resume``, like a crash."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from conftest import history_problems

from react_agent import CANCEL, Agent, tool
from react_agent.testing import ScriptedModel, reply, tool_call

release = threading.Event()


@tool
def slow(n: int) -> str:
    """Return after the test releases it (in a thread: cancelling the run does not stop it).

    Args:
        n: anything.
    """
    release.wait(5)
    return "slow result"


class Hanging(ScriptedModel):
    """Never answers."""

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)


async def cancel_after_start(agent: Agent, *, message: str | None, until: str) -> list[str]:
    seen: list[str] = []

    async def consume() -> None:
        async for event in agent.stream("go", session="s", run_id="r1"):
            seen.append(event.type)

    task = asyncio.create_task(consume())
    while until not in seen:
        await asyncio.sleep(0.005)
    task.cancel(message)
    with pytest.raises(asyncio.CancelledError):
        await task
    return seen


@pytest.mark.parametrize("where", ["model", "tool"])
async def test_cancel_ends_the_run_closed(store: Any, where: str) -> None:
    release.clear()
    model = Hanging([]) if where == "model" else ScriptedModel([tool_call("slow", {"n": 1})])
    agent = Agent(tools=[slow], model=model, store=store)
    await cancel_after_start(agent, message=CANCEL, until="run_start" if where == "model" else "tool_start")
    record = store.run("r1")
    assert record.status == "cancelled" and record.pending == []
    messages = store.messages("s")
    assert history_problems(messages) == []
    if where == "tool":
        assert "ended (cancelled)" in messages[-1]["content"]
        release.set()
        await asyncio.sleep(0.1)
        time.sleep(0.05)
        assert store.messages("s") == messages  # the tool's late result is dropped, not appended
    assert [e["kind"] for e in store.entries("s")][-1] == "end"


async def test_another_cancellation_leaves_the_run_open_to_resume(store: Any) -> None:
    agent = Agent(model=Hanging([]), store=store)
    await cancel_after_start(agent, message=None, until="run_start")
    assert store.run("r1").status == "running"
    agent = Agent(model=ScriptedModel([reply("resumed")]), store=store)
    result = await agent.resume("r1")
    assert (result.status, result.output) == ("completed", "resumed")
