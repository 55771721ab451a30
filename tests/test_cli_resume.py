"""`run` interrupted mid-step, then `resume RUN_ID`, through the CLI: the journal carries the run across
processes' worth of state (a fresh Agent, a fresh model), and finished tools are not run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import plugin_project, use_model

from react_agent.cli import main
from react_agent.stores import DiskStore as Store
from react_agent.testing import ScriptedModel, reply, tool_calls

PLUGIN = '''
import asyncio
import os
import time
from pathlib import Path
from react_agent import tool

LOG = Path(os.environ["CALLS_LOG"])

def _log(name):
    with LOG.open("a") as f:
        f.write(name + "\\n")

@tool
def fetch(item: str) -> str:
    """Fetch an item."""
    _log("fetch:" + item)
    return "got " + item

@tool
async def crash(item: str) -> str:
    """Crash the process (stands in for a kill) once fetch has returned beside it. It blocks the event
    loop on purpose: the loop never sees fetch finish, so only a save made in fetch's own thread
    survives."""
    if os.environ.get("CRASH") == "1":
        await asyncio.sleep(0.2)  # let fetch start in its thread, then hold the loop
        deadline = time.monotonic() + 10
        while "fetch:" not in (LOG.read_text() if LOG.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # fetch has returned; its thread saves the result
        raise KeyboardInterrupt
    _log("crash:" + item)
    return "ok " + item
'''

TASKS = """
agent: {name: worker, tools: [fetch, crash], max_steps: 5}
prompts: prompts
tools_dir: tools
tasks:
  - {name: job, input: do the job, expect_tool: crash}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return plugin_project(tmp_path, monkeypatch, plugin=PLUGIN, tasks=TASKS, plugin_name="work.py")



def test_interrupted_run_resumes_from_the_cli(project: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    first = ScriptedModel([tool_calls([("fetch", {"item": "a"}), ("crash", {"item": "b"})])])
    use_model(monkeypatch, first)
    monkeypatch.setenv("CRASH", "1")
    assert main(["run", "tasks.yaml"]) == 130
    err = capsys.readouterr().err
    assert (project / "calls.log").read_text().split() == ["fetch:a"]

    record, = Store().runs()
    run_id = record.run_id
    assert record.status == "running"
    assert f"`python -m react_agent resume {run_id}` continues" in err  # the id itself, not RUN_ID

    second = ScriptedModel([reply("all done")])
    use_model(monkeypatch, second)
    monkeypatch.setenv("CRASH", "0")
    assert main(["resume", run_id, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed" and result["output"] == "all done"
    assert (project / "calls.log").read_text().split() == ["fetch:a", "crash:b"]  # fetch ran once
    sent = second.requests[0].messages
    answers = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert sorted(answers.values()) == ["got a", "ok b"]

    assert main(["resume", run_id]) == 2
    assert "already ended with status 'completed'" in capsys.readouterr().err
