"""A process killed (SIGKILL) around a pause for approval leaves a run that `resume` continues: killed
while an approved call ran (its decision is journaled: it is not asked for again, and a side effect is
not repeated), and killed after the turn was journaled but before the pause (the run pauses again)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from react_agent import Agent, DiskStore, UserError, tool
from react_agent.testing import ScriptedModel, reply

AGENT = textwrap.dedent('''
    import sys
    from pathlib import Path

    from react_agent import Agent, Approve, DiskStore, tool
    from react_agent.testing import ScriptedModel, reply, tool_call

    LEDGER = Path(sys.argv[2]) / "ledger.txt"


    @tool(side_effects=True, requires_approval=True)
    def pay(amount: int) -> str:
        """Pay an amount."""
        with LEDGER.open("a") as ledger:
            ledger.write(f"paid {amount}\\n")
        return f"paid {amount}"


    store = DiskStore(Path(sys.argv[2]) / "store")
    step = sys.argv[1]
    if step == "start":
        agent = Agent(tools=[pay], model=ScriptedModel([tool_call("pay", {"amount": 5})]), store=store)
        print(agent.run_sync("pay 5", run_id="run1").status)
    else:  # approve
        agent = Agent(tools=[pay], model=ScriptedModel([reply("paid")]), store=store)
        print(agent.run_sync("", resume=True, run_id="run1", approvals={"call_1": Approve()}).status)
''')


def _in_a_process(tmp_path: Path, step: str, crash_at: str | None) -> int:
    script = tmp_path / "payagent.py"
    script.write_text(AGENT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("REACT_AGENT_CRASH_AT", None)
    if crash_at:
        env["REACT_AGENT_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, str(script), step, str(tmp_path)], env=env, timeout=120,
                          capture_output=True, check=False).returncode


def _ledger(tmp_path: Path) -> list[str]:
    path = tmp_path / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


@tool(side_effects=True, requires_approval=True)
def pay(amount: int) -> str:
    """Pay an amount."""
    raise AssertionError("never run here: the side effect happened in the killed process")


def test_killed_while_the_approved_call_ran_resume_goes_on_without_asking_again(tmp_path: Path) -> None:
    assert _in_a_process(tmp_path, "start", None) == 0
    assert _in_a_process(tmp_path, "approve", "tool:returned:1") == -9
    assert _ledger(tmp_path) == ["paid 5"]
    store = DiskStore(tmp_path / "store")
    assert store.run("run1").status == "running"
    model = ScriptedModel([reply("I could not confirm the payment.")])
    result = Agent(tools=[pay], model=model, store=store).run_sync("", resume=True, run_id="run1")
    assert result.status == "completed", result.error
    (observation,) = result.steps[0].observations
    assert observation.kind == "interrupted" and "outcome is unknown" in observation.content
    assert _ledger(tmp_path) == ["paid 5"], "a side effect is never repeated"


def test_killed_before_the_pause_was_journaled_resume_pauses_again(tmp_path: Path) -> None:
    assert _in_a_process(tmp_path, "start", "turn:after:1") == -9
    store = DiskStore(tmp_path / "store")
    assert store.run("run1").status == "running"
    agent = Agent(tools=[pay], model=ScriptedModel([]), store=store)
    paused = agent.run_sync("", resume=True, run_id="run1")
    assert paused.status == "awaiting_approval", paused.error
    assert [(p.call_id, p.tool) for p in paused.pending] == [("call_1", "pay")]
    assert store.run("run1").status == "awaiting_approval"
    assert _in_a_process(tmp_path, "approve", None) == 0
    assert _ledger(tmp_path) == ["paid 5"]
    assert store.run("run1").status == "completed"


def test_a_paused_run_still_needs_its_decisions(tmp_path: Path) -> None:
    """Only a run that died before its pause goes on without decisions; a paused one does not."""
    assert _in_a_process(tmp_path, "start", None) == 0
    agent = Agent(tools=[pay], model=ScriptedModel([]), store=DiskStore(tmp_path / "store"))
    with pytest.raises(UserError, match=r"awaits decisions on calls \['call_1'\]"):
        agent.run_sync("", resume=True, run_id="run1")
