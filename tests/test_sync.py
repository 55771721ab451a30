"""``run_sync`` keeps one event loop per thread, so the SDK client and its connections outlive a call.

A second ``run_sync`` used to build a new loop and a new client, and the client left on the closed loop
printed "Task exception was never retrieved … Event loop is closed". The HTTP tests run against the
benchmark's scripted server on 127.0.0.1 (stdlib only, no model); real sockets are what the old
traceback needed.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import load_mock_server

from react_agent import Agent, tool
from react_agent.model import OpenAIModel
from react_agent.router import Router
from react_agent.steps import Event, RunEnd, RunResult
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls

ROOT = Path(__file__).resolve().parent.parent
loopback = pytest.mark.block_network(allowed_hosts=["127.0.0.1"])



@pytest.fixture(scope="module")
def server_url() -> Iterator[Callable[[str], str]]:
    """``row -> base URL`` of a scripted server: two ``add`` calls, then a text answer."""
    with load_mock_server().MockServer(idle_timeout=60) as server:
        yield lambda row: server.url(row, steps=2)


@pytest.fixture
def clients_built(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref[Any]]:
    """Every ``AsyncOpenAI`` the model builds, in order — weakly, so that a client dropped by the model
    is collected (and finalized) as it would be without the test."""
    built: list[weakref.ref[Any]] = []
    real = openai.AsyncOpenAI

    def counting(**kwargs: Any) -> Any:
        client = real(**kwargs)
        built.append(weakref.ref(client))
        return client

    monkeypatch.setattr(openai, "AsyncOpenAI", counting)
    return built


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def adder(url: str) -> Agent:
    return Agent(name="adder", instructions="Add.", tools=[add],
                 model=OpenAIModel("mock-model", base_url=url, api_key="x", max_retries=0))


def assert_quiet(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Nothing on stderr and no asyncio complaint in the log, once finalizers have run."""
    gc.collect()
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@loopback
@pytest.mark.parametrize("calls", [2, 3])
def test_run_sync_again_reuses_the_loop_and_the_client(
    calls: int, server_url: Callable[[str], str], clients_built: list[weakref.ref[Any]],
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    agent = adder(server_url(f"sync{calls}"))
    loops: list[asyncio.AbstractEventLoop] = []
    agent.hooks.append(lambda event: loops.append(asyncio.get_running_loop()) if isinstance(event, RunEnd) else None)

    results = [agent.run_sync("add two numbers") for _ in range(calls)]

    assert [(r.status, len(r.tool_calls)) for r in results] == [("completed", 2)] * calls
    assert_quiet(capfd, caplog)
    assert len(clients_built) == 1
    assert len(set(map(id, loops))) == 1
    client = clients_built[0]()
    agent.close()  # closes the client on its own loop, then the loop
    assert client.is_closed() and loops[0].is_closed()
    assert agent.run_sync("and again").status == "completed"  # a closed agent opens a new loop
    agent.close()
    assert_quiet(capfd, caplog)


@loopback
def test_asyncio_run_twice_is_quiet_too(
    server_url: Callable[[str], str], clients_built: list[weakref.ref[Any]],
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """Code that runs its own loops gets a client per loop; the one left on a closed loop is dropped."""
    agent = adder(server_url("asyncio_run"))
    for _ in range(3):
        assert asyncio.run(agent.run("add two numbers")).status == "completed"
    assert len(clients_built) == 3
    assert_quiet(capfd, caplog)


@loopback
def test_threads_each_get_a_loop(server_url: Callable[[str], str], clients_built: list[weakref.ref[Any]]) -> None:
    agent = adder(server_url("threads"))
    results: list[RunResult | BaseException] = []

    def call() -> None:
        try:
            results.append(agent.run_sync("add two numbers"))
        except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status if isinstance(r, RunResult) else repr(r) for r in results] == ["completed"] * 3
    assert len(clients_built) == 3  # a loop, and so a client, per thread
    clients = [ref() for ref in clients_built]
    agent.close()
    assert all(client.is_closed() for client in clients)


def test_run_sync_does_not_render_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """``asyncio.run`` formats its SIGINT handler — the task and its result — with ``repr`` on every call;
    for a long ``RunResult`` that was ~0.6 ms a run."""
    rendered: list[str] = []
    monkeypatch.setattr(RunResult, "__repr__", lambda self: rendered.append(self.run_id) or "RunResult(...)")
    agent = Agent(model=ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3"), reply("again")]),
                  tools=[add])
    assert agent.run_sync("1 + 2?").output == "3"
    assert agent.run_sync("again?").output == "again"
    assert rendered == []
    agent.close()


def test_run_sync_sees_the_callers_context_variables() -> None:
    """A kept loop must not keep the context of its first call."""
    user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")
    seen: list[str] = []
    agent = Agent(model=ScriptedModel([reply("a"), reply("b")]),
                  hooks=[lambda event: seen.append(user.get()) if isinstance(event, RunEnd) else None])
    user.set("alice")
    agent.run_sync("first")
    user.set("bob")
    agent.run_sync("second")
    assert seen == ["alice", "bob"]
    agent.close()


def test_router_run_sync_keeps_one_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    def record(event: Event) -> None:
        if isinstance(event, RunEnd):  # the classifier's, the specialist's and the router's own
            loops.append(asyncio.get_running_loop())

    decide = tool_call("final_answer", {"category": "billing", "reason": "refund"})
    routes = {name: Agent(name=name, model=ScriptedModel([reply(f"{name} answer")] * 2))
              for name in ("support", "billing")}
    router = Router(routes, model=ScriptedModel([decide, decide]), hooks=[record])
    first, second = router.run_sync("refund?"), router.run_sync("refund again?")
    assert (first.output.handled_by, second.output.handled_by) == ("billing", "billing")
    assert len(loops) == 6 and all(loop is loops[0] for loop in loops)
    router.close()
    assert loops[0].is_closed()


def test_an_interrupted_run_sync_closes_its_loop_and_the_next_call_gets_a_new_one() -> None:
    """Like ``asyncio.run``: after Ctrl-C the loop may hold unfinished tasks, so it is not kept."""
    loops: list[asyncio.AbstractEventLoop] = []

    def interrupt_once(event: Event) -> None:
        if isinstance(event, RunEnd):
            loops.append(asyncio.get_running_loop())
            if len(loops) == 1:
                raise KeyboardInterrupt

    agent = Agent(model=ScriptedModel([reply("a"), reply("b")]), hooks=[interrupt_once])
    with pytest.raises(KeyboardInterrupt):
        agent.run_sync("first")
    assert agent.run_sync("second").output == "b"
    assert loops[0].is_closed() and loops[1] is not loops[0]
    agent.close()


# -- where sync tools run ---------------------------------------------------------------------------------


def threads_of(**tools_kwargs: Any) -> tuple[list[tuple[str, int]], Any]:
    """A ``where(tag)`` tool that records the thread each call ran in (and whether a loop was visible)."""
    seen: list[tuple[str, int]] = []

    @tool(**tools_kwargs)
    def where(tag: str) -> str:
        """Say where this runs.

        Args:
            tag: a label.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen.append((tag, threading.get_ident()))
        else:
            seen.append((f"{tag} (loop visible)", threading.get_ident()))
        return tag

    return seen, where


def test_under_run_sync_a_lone_sync_call_runs_in_the_callers_thread_and_parallel_calls_in_workers() -> None:
    """No hop to a worker thread and back for a lone call (the run has nothing else to do meanwhile); calls
    of one turn still run at once, in workers; the loop is hidden from a call in the caller's thread."""
    seen, where = threads_of()
    script = [tool_call("where", {"tag": "lone"}),
              tool_calls([("where", {"tag": "p1"}), ("where", {"tag": "p2"})]), reply("done")]
    agent = Agent(model=ScriptedModel(script), tools=[where])
    assert agent.run_sync("where?").status == "completed"
    me = threading.get_ident()
    assert seen[0] == ("lone", me)
    assert sorted(tag for tag, _ in seen[1:]) == ["p1", "p2"] and all(ident != me for _, ident in seen[1:])
    agent.close()


def test_await_run_keeps_sync_tools_off_the_loop() -> None:
    seen, where = threads_of()
    agent = Agent(model=ScriptedModel([tool_call("where", {"tag": "lone"}), reply("done")]), tools=[where])
    assert asyncio.run(agent.run("where?")).status == "completed"
    assert seen[0][0] == "lone" and seen[0][1] != threading.get_ident()


def test_a_sync_tool_with_its_own_timeout_runs_in_a_worker_so_the_timeout_holds() -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def hang() -> str:
        """Wait for a release that never comes (in time)."""
        release.wait(5)
        return "released"

    agent = Agent(model=ScriptedModel([tool_call("hang", {}), reply("gave up")]), tools=[hang])
    try:
        result = agent.run_sync("hang?")
    finally:
        release.set()
    assert result.status == "completed"
    assert [o.kind for o in result.steps[0].observations] == ["timeout"]
    agent.close()


def test_a_sync_tool_run_in_the_callers_thread_may_call_run_sync_itself() -> None:
    """Another agent's ``run_sync`` and this agent's own (a nested run on a loop of its own) both work: the
    tool is plain sync code to them."""
    helper = Agent(name="helper", model=ScriptedModel([reply("from helper")]))
    answers: list[str] = []

    @tool
    def ask(question: str) -> str:
        """Ask someone.

        Args:
            question: what to ask.
        """
        answer = str(helper.run_sync(question).output) if question == "helper" else str(
            agent.run_sync(question).output)
        answers.append(answer)
        return answer

    agent = Agent(model=ScriptedModel([tool_call("ask", {"question": "helper"}), tool_call("ask", {"question": "self"}),
                                       reply("nested"), reply("done")]), tools=[ask])
    result = agent.run_sync("go")
    assert (result.status, result.output) == ("completed", "done"), result.error
    assert answers == ["from helper", "nested"]
    agent.close()
    helper.close()
