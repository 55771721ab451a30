"""The code-review demo tools (tools/code_review.py), its sample project and task file, no network."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from react_agent import ModelRetry
from react_agent.tasks import build_agent, load_task_file, run_task
from react_agent.testing import ScriptedModel, reply, tool_call

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tasks" / "code_review.yaml"
SAMPLE = ROOT / "demo" / "sample_project"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the sample project as the review root, beside a secret file outside it."""
    root = tmp_path / "project"
    shutil.copytree(SAMPLE, root)
    (tmp_path / "secret.txt").write_text("outside the project\n")
    monkeypatch.setenv("REACT_AGENT_REVIEW_ROOT", str(root))
    return root


async def test_list_files_shows_the_sample_project(tools):
    files = (await tools["list_files"]()).splitlines()
    assert files == ["README.md", "pyproject.toml", "tests/test_cart.py", "tests/test_db.py",
                     "tests/test_reports.py", "tinyshop/__init__.py", "tinyshop/cart.py", "tinyshop/db.py",
                     "tinyshop/reports.py"]


async def test_read_file_numbers_the_lines(tools):
    out = await tools["read_file"](path="tinyshop/db.py")
    lines = out.splitlines()
    assert lines[0].startswith("tinyshop/db.py (")
    assert '   8  ADMIN_PASSWORD = "Winter2024!"' in lines
    assert await tools["read_file"](path="./tinyshop/db.py") == out


@pytest.mark.parametrize(("path", "why"), [
    ("../README.md", "'..' is not allowed"),
    ("tinyshop/../../../etc/passwd", "'..' is not allowed"),
    ("/etc/passwd", "is absolute"),
    ("C:\\Windows\\win.ini", "is absolute"),
    ("~/.ssh/id_rsa", "is absolute"),
])
async def test_paths_outside_the_root_are_refused(tools, path, why):
    with pytest.raises(ModelRetry, match=why):
        await tools["read_file"](path=path)
    with pytest.raises(ModelRetry, match=why):
        await tools["check_security"](path=path)


async def test_symlink_escaping_the_root_is_refused(tools, project):
    try:
        os.symlink(project.parent / "secret.txt", project / "notes.txt")
        os.symlink(project.parent, project / "up")
    except OSError:
        pytest.skip("symlinks are not available here")
    with pytest.raises(ModelRetry, match="outside the project"):
        await tools["read_file"](path="notes.txt")
    with pytest.raises(ModelRetry, match="outside the project"):
        await tools["read_file"](path="up/secret.txt")
    listed = (await tools["list_files"]()).splitlines()
    assert "notes.txt" not in listed and not any(f.startswith("up/") for f in listed)


async def test_missing_file_is_a_retry_listing_the_python_files(tools):
    with pytest.raises(ModelRetry, match=r"tinyshop/cart\.py"):
        await tools["read_file"](path="tinyshop/carts.py")


async def test_run_tests_reports_counts_and_the_failure(tools):
    out = await tools["run_tests"]()
    lines = out.splitlines()
    assert lines[0] == "6 passed, 1 failed"
    assert lines[1].startswith("FAILED tests/test_cart.py::test_first_page_starts_with_first_item "
                               "(tests/test_cart.py:23): AssertionError")
    assert len(lines) == 2
    assert not list(SAMPLE.rglob("__pycache__")), "running the tests must not litter the demo folder"


async def test_run_tests_when_everything_passes(tools, project):
    (project / "tests" / "test_cart.py").unlink()
    assert await tools["run_tests"]() == "3 passed"


async def test_run_tests_without_tests(tools, project):
    shutil.rmtree(project / "tests")
    assert await tools["run_tests"]() == "No tests were found in the project."


async def test_run_tests_output_is_the_same_in_any_checkout(tools, project, monkeypatch):
    in_copy = await tools["run_tests"]()
    monkeypatch.delenv("REACT_AGENT_REVIEW_ROOT")
    assert in_copy == await tools["run_tests"]()


async def test_check_security_finds_the_planted_problems(tools):
    pytest.importorskip("ruff")
    out = await tools["check_security"]()
    assert out.splitlines() == [
        "3 finding(s):",
        'tinyshop/db.py:8 S105 medium: Possible hardcoded password assigned to: "ADMIN_PASSWORD"',
        "tinyshop/db.py:28 S608 high: Possible SQL injection vector through string-based query construction",
        "tinyshop/reports.py:23 S602 high: `subprocess` call with `shell=True` identified, security issue",
    ]


async def test_check_security_of_one_clean_file(tools):
    pytest.importorskip("ruff")
    assert await tools["check_security"](path="tinyshop/cart.py") == "No security findings in tinyshop/cart.py."
    with pytest.raises(ModelRetry, match="does not exist"):
        await tools["check_security"](path="tinyshop/nope.py")


def review_json() -> str:
    summary = "Two security holes, a hard-coded password and an off-by-one in paging."
    return json.dumps({"summary": summary, "findings": [
        {"file": "tinyshop/db.py", "line": 28, "severity": "high", "category": "security",
         "message": "SQL built with an f-string from user input (SQL injection).",
         "suggested_fix": "Use a ? parameter: WHERE name LIKE ?, with f'%{name}%' as the argument."},
        {"file": "tinyshop/cart.py", "line": 40, "severity": "medium", "category": "bug",
         "message": "paginate() starts page 1 at index per_page; the first page is skipped.",
         "suggested_fix": "start = (page - 1) * per_page"},
    ]})


async def test_scripted_review_returns_a_review_object():
    model = ScriptedModel([
        tool_call("list_files", {}),
        tool_call("run_tests", {}),
        tool_call("check_security", {"path": "."}),
        tool_call("read_file", {"path": "tinyshop/cart.py"}),
        reply(review_json()),
    ])
    task_file = load_task_file(TASKS)
    agent = build_agent(task_file, model=model)
    result = await agent.run("Review the project.")
    assert result.status == "completed", result.error
    assert type(result.output).__name__ == "Review"
    assert isinstance(result.output, agent.output_type)
    assert [f.severity for f in result.output.findings] == ["high", "medium"]
    contents = [o.content for s in result.steps for o in s.observations]
    fence = f"<<untrusted:{agent.store.run(result.run_id).variables['fence']}>>\n"
    assert all(c.startswith(fence) for c in contents)  # file names, test output, scan, file: untrusted text
    assert contents[1].removeprefix(fence).startswith("6 passed, 1 failed")
    assert "S608 high" in contents[2]
    assert "start = page * per_page" in contents[3]
    assert '"suggested_fix"' in model.requests[0].messages[0]["content"]  # the schema is in the prompt


async def test_review_with_a_bad_severity_is_sent_back():
    bad = json.loads(review_json())
    bad["findings"][0]["severity"] = "severe"
    model = ScriptedModel([reply(json.dumps(bad)), reply(review_json())])
    result = await build_agent(load_task_file(TASKS), model=model).run("Review the project.")
    assert result.status == "completed"
    assert "severity" in model.requests[1].messages[-1]["content"]


async def test_task_file_expectations_pass_with_a_scripted_model():
    task_file = load_task_file(TASKS)
    task = next(t for t in task_file.tasks if t.name == "security-db")
    model = ScriptedModel([tool_call("check_security", {"path": "tinyshop/db.py"}), reply(review_json())])
    outcome = await run_task(task_file, task, model=model)
    assert outcome.passed, outcome.checks
