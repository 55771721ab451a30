"""Every shipped task file and eval suite replays from its cassettes: the loop, the tools and the
memory run for real against the recorded answers of the real local model. A replay that diverges
from its recording exits 2 (and says where); a check that the weak model failed exits 1 — the same
verdict the live run gave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from react_agent.cli import main

ROOT = Path(__file__).resolve().parent.parent
TASK_FILES = sorted(p.name for p in (ROOT / "tasks").glob("*.yaml"))
SUITES = sorted(p.name for p in (ROOT / "tasks" / "eval").glob("*.yaml"))
STATUSES = {"completed", "max_steps", "loop_detected", "token_budget", "error"}


def requests_made(run: dict[str, Any]) -> int:
    """Model requests of a run and of the runs nested in it (a router's own usage is empty)."""
    return int(run["usage"]["requests"]) + sum(requests_made(child) for child in run.get("children", []))


@pytest.mark.parametrize("task_file", TASK_FILES)
def test_task_file_replays(repo_copy: Path, capsys: pytest.CaptureFixture[str], task_file: str) -> None:
    code = main(["run", f"tasks/{task_file}", "--replay", "--json"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    outcomes = json.loads(captured.out)
    for outcome in outcomes:
        assert outcome["checks"], f"{outcome['task']} checks nothing"
        for run in outcome["runs"]:
            assert run["status"] in STATUSES
            assert requests_made(run) >= 1
    assert code == (0 if all(o["passed"] for o in outcomes) else 1)


@pytest.mark.parametrize("suite", SUITES)
def test_eval_suite_replays(repo_copy: Path, capsys: pytest.CaptureFixture[str], suite: str) -> None:
    code = main(["eval", f"tasks/eval/{suite}", "--replay", "--json"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    report = json.loads(captured.out)
    assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["pass_k"] <= 1.0
    assert all(case["trials"] == 1 and case["tokens"] > 0 for case in report["cases"])
    assert code == (0 if report["accuracy"] == 1.0 else 1)
