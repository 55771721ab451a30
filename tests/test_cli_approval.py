"""Approval from the command line: a `run` pauses, `runs list` shows it, `approve` / `deny` continue it
later (a fresh agent, a fresh model: only the journal carries the run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import plugin_project, use_model

from react_agent.cli import main
from react_agent.testing import ScriptedModel, reply, tool_call

PLUGIN = '''
import os
from pathlib import Path
from react_agent import tool

@tool(side_effects=True, requires_approval=True)
def refund(order: str, amount: int) -> str:
    """Refund an order."""
    with Path(os.environ["CALLS_LOG"]).open("a") as f:
        f.write(f"refund {order} {amount}\\n")
    return f"refunded {amount} on {order}"
'''

TASKS = """
agent: {name: clerk, tools: [refund], max_steps: 4}
prompts: prompts
tools_dir: tools
tasks:
  - {name: job, input: refund order 7, expect_tool: refund}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return plugin_project(tmp_path, monkeypatch, plugin=PLUGIN, tasks=TASKS, plugin_name="money.py")



def paused(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    use_model(monkeypatch, ScriptedModel([tool_call("refund", {"order": "7", "amount": 40})]))
    assert main(["run", "tasks.yaml"]) == 1  # the task did not complete: it waits for a human
    out = capsys.readouterr().out
    assert "awaiting_approval" in out
    assert main(["runs", "list", "--status", "awaiting_approval", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    # no terminal to ask (stdin is not one here): the run says what waits and how to go on
    assert f"run {record['run_id']} awaits approval:" in out and 'call_1: refund({"order": "7", "amount": 40})' in out
    assert f"python -m react_agent approve {record['run_id']}" in out
    assert [(p["call_id"], p["tool"]) for p in record["pending"]] == [("call_1", "refund")]
    assert not (project / "calls.log").exists()
    return record["run_id"]


def test_approve_continues_the_run_later(project, monkeypatch, capsys):
    run_id = paused(project, monkeypatch, capsys)
    assert main(["runs", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"{run_id}\tawaiting_approval\tclerk" in listing and "call_1=refund" in listing
    use_model(monkeypatch, ScriptedModel([reply("refunded 40")]))
    assert main(["approve", run_id, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["output"]) == ("completed", "refunded 40")
    assert (project / "calls.log").read_text().split("\n")[0] == "refund 7 40"
    assert main(["approve", run_id]) == 2
    assert "not awaiting approval" in capsys.readouterr().err


def test_approve_with_edited_arguments(project, monkeypatch, capsys):
    run_id = paused(project, monkeypatch, capsys)
    use_model(monkeypatch, ScriptedModel([reply("refunded 25")]))
    assert main(["approve", run_id, "call_1", "--arguments", '{"order": "7", "amount": "x"}']) == 2
    assert "amount" in capsys.readouterr().err
    assert main(["approve", run_id, "call_1", "--arguments", '{"order": "7", "amount": 25}', "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert (project / "calls.log").read_text().strip() == "refund 7 25"


def test_deny_tells_the_model_why(project, monkeypatch, capsys):
    run_id = paused(project, monkeypatch, capsys)
    model = ScriptedModel([reply("no refund then")])
    use_model(monkeypatch, model)
    assert main(["deny", run_id, "--reason", "paid with a gift card", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert model.requests[0].messages[-1]["content"] == "Denied by a human: paid with a gift card"
    assert not (project / "calls.log").exists()
    assert main(["deny", "nope", "--reason", "x"]) == 2


NESTED_TASKS = """
agents:
  desk: {tools: [], agents_as_tools: [clerk], max_steps: 4}
  clerk: {tools: [refund], max_steps: 4}
prompts: prompts
tools_dir: tools
tasks:
  - {name: job, agent: desk, input: refund order 7, expect_tool: ask_clerk}
"""


def test_a_nested_pause_is_approved_on_the_callers_run(project, monkeypatch, capsys):
    (project / "tasks.yaml").write_text(NESTED_TASKS)
    use_model(monkeypatch, ScriptedModel([tool_call("ask_clerk", {"request": "refund order 7 by 40"}),
                                          tool_call("refund", {"order": "7", "amount": 40})]))
    assert main(["run", "tasks.yaml"]) == 1
    capsys.readouterr()
    assert main(["runs", "list", "--status", "awaiting_approval", "--json"]) == 0
    waiting = {r["agent"]: r for r in json.loads(capsys.readouterr().out)}
    desk, clerk = waiting["desk"], waiting["clerk"]
    assert [p["call_id"] for p in desk["pending"]] == [f"{clerk['run_id']}:{clerk['pending'][0]['call_id']}"]
    use_model(monkeypatch, ScriptedModel([reply("refunded 40"), reply("The clerk refunded 40.")]))
    assert main(["approve", desk["run_id"], "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["output"]) == ("completed", "The clerk refunded 40.")
    assert (project / "calls.log").read_text().split("\n")[0] == "refund 7 40"
