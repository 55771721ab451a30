"""MCP tool servers: a real server written with the SDK (tests/mcp_server.py), started as a subprocess,
over stdio and over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from react_agent import Agent, TaskFileError
from react_agent.cli import main
from react_agent.mcp import MCPServerError, MCPServerHTTP, MCPServerStdio
from react_agent.tasks import build_agent, load_task_file
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def stdio(**options) -> MCPServerStdio:
    return MCPServerStdio(sys.executable, [SERVER], name="test", **options)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def tool_messages(model: ScriptedModel) -> list[str]:
    return [m["content"] for m in model.requests[-1].messages if m["role"] == "tool"]


async def test_stdio_tools_go_through_the_loop_like_local_ones(store):
    model = ScriptedModel([
        tool_calls([("add", {"a": 2, "b": 3}), ("add", {"a": "two"}), ("broken", {"reason": "disk full"})]),
        tool_call("pid", {}),
        reply("done"),
    ])
    agent = Agent(model=model, store=store, mcp_servers=[stdio()], max_steps=5)

    result = await agent.run("go")

    assert result.status == "completed"
    first = result.steps[0].observations
    assert [o.kind for o in first] == ["ok", "invalid_arguments", "tool_error"]
    assert "5" in first[0].content and "<<untrusted:" in first[0].content  # fenced: untrusted by default
    assert "b: " in first[1].content or "'b' is a required property" in first[1].content
    assert "'two' is not of type 'integer'" in first[1].content
    assert "broken" in first[2].content
    # the schema is the server's, sent as given; the tools say where they come from
    sent = {t["function"]["name"]: t["function"] for t in model.requests[0].tools}
    assert sent["add"]["parameters"]["required"] == ["a", "b"]
    assert sent["add"]["description"] == "Add two integers."
    assert agent.tools["add"].source == "mcp:test"
    # started with the run, stopped at its end
    pid = int(result.steps[1].observations[0].content.split(">>")[1].split("<<")[0].strip())
    assert gone(pid)


async def test_parallel_calls_run_together_and_a_slow_call_times_out(store):
    model = ScriptedModel([
        tool_calls([("nap", {"seconds": 0.6}), ("nap", {"seconds": 0.6}), ("nap", {"seconds": 0.6})]),
        tool_call("nap", {"seconds": 5}),
        reply("done"),
    ])
    agent = Agent(model=model, store=store, mcp_servers=[stdio(timeout=1.0, untrusted_output=False)])

    async with agent:  # started once, before the clock
        started = time.perf_counter()
        result = await agent.run("nap")
        elapsed = time.perf_counter() - started

    assert [o.kind for o in result.steps[0].observations] == ["ok", "ok", "ok"]
    assert result.steps[0].observations[0].content == "slept 0.6"  # not fenced when declared trusted
    assert result.steps[1].observations[0].kind == "timeout"
    assert elapsed < 1.6 + 1.2, elapsed  # three 0.6 s naps side by side, then a 1 s timeout


async def test_a_held_server_is_kept_across_runs_and_stopped_on_close(store):
    model = ScriptedModel([tool_call("pid", {}), reply("a"), tool_call("pid", {}), reply("b")])
    server = stdio(untrusted_output=False)
    agent = Agent(model=model, store=store, mcp_servers=[server])

    async with agent:
        first = await agent.run("pid?")
        second = await agent.run("pid again?")
        pids = {int(r.steps[0].observations[0].content) for r in (first, second)}
        assert len(pids) == 1
        pid = pids.pop()
        assert alive(pid)
    assert gone(pid)


async def test_a_server_that_dies_mid_run_is_an_observation_not_a_hang(store):
    model = ScriptedModel([tool_call("crash", {}), tool_call("add", {"a": 1, "b": 1}), reply("gave up")])
    agent = Agent(model=model, store=store, mcp_servers=[stdio()])

    started = time.perf_counter()
    result = await agent.run("crash it")

    assert result.status == "completed"
    crash, after = result.steps[0].observations[0], result.steps[1].observations[0]
    assert crash.kind == after.kind == "tool_error"
    assert "MCP server 'test'" in crash.content and "MCP server 'test'" in after.content
    assert time.perf_counter() - started < 20


async def test_a_server_that_cannot_start_is_a_clear_error_with_nothing_written(store):
    broken = MCPServerStdio(sys.executable, ["-c", "import sys; sys.exit('no config file found')"], name="bad")
    agent = Agent(model=ScriptedModel([reply("never")]), store=store, mcp_servers=[broken])

    with pytest.raises(MCPServerError) as caught:
        await agent.run("hi", session="s1")

    assert "MCP server 'bad'" in str(caught.value) and "no config file found" in str(caught.value)
    assert store.runs() == [] and agent.model.requests == []


async def test_a_server_that_never_answers_times_out():
    silent = MCPServerStdio(sys.executable, ["-c", "import time; time.sleep(60)"], name="silent", start_timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(MCPServerError, match="did not answer within 1s"):
        await silent.connect()
    assert time.perf_counter() - started < 8  # the child is stopped, not waited for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server():
    port = _free_port()
    child = subprocess.Popen([sys.executable, SERVER, "http", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert child.poll() is None, "the MCP HTTP server exited"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    child.terminate()
    child.wait(10)


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])
async def test_streamable_http_tools_go_through_the_loop(store, http_server):
    model = ScriptedModel([
        tool_calls([("web_add", {"a": 20, "b": 22}), ("web_shout", {"text": "hi"}), ("web_add", {"a": 1})]),
        reply("42"),
    ])
    server = MCPServerHTTP(http_server, name="web", prefix="web_", tools=["add", "shout"])
    agent = Agent(model=model, store=store, mcp_servers=[server])

    result = await agent.run("add")

    assert result.status == "completed"
    assert sorted(agent.tools) == ["web_add", "web_shout"]  # prefixed, filtered
    kinds = [o.kind for o in result.steps[0].observations]
    assert kinds == ["ok", "ok", "invalid_arguments"]
    assert "42" in tool_messages(model)[0] and "HI" in tool_messages(model)[1]
    assert not server.connected


def test_task_file_servers_and_the_tools_command(tmp_path, capsys):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tasks.yaml").write_text(f"""
agent:
  name: helper
  model: gpt-4o-mini
  mcp_servers:
    - name: calc
      command: {json.dumps(sys.executable)}
      args: [{json.dumps(SERVER)}]
      tools: [add, shout]
      timeout: 5
tools_dir: tools
tasks:
  - name: one
    input: "2+2?"
""")
    task_file = load_task_file(tmp_path / "tasks.yaml")
    agent = build_agent(task_file, model=ScriptedModel([]))
    (server,) = agent.mcp_servers
    assert isinstance(server, MCPServerStdio) and server.name == "calc" and server.timeout == 5
    assert Path(server.cwd) == tmp_path

    assert main(["tools", str(tmp_path / "tasks.yaml"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["tools"]
    assert [(t["name"], t["source"]) for t in listed] == [("add", "mcp:calc"), ("shout", "mcp:calc")]


def test_a_task_file_server_needs_a_command_or_a_url(tmp_path):
    (tmp_path / "tasks.yaml").write_text("""
agent:
  mcp_servers:
    - name: nothing
tasks:
  - name: one
    input: hi
""")
    with pytest.raises(TaskFileError, match="command"):
        load_task_file(tmp_path / "tasks.yaml")
