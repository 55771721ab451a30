"""Code-review tools: read the reviewed project's files, run its tests, scan it for security issues;
plus ``Review``, the structured final answer (task files name it as ``output_type``).

Every path is confined to the project root: ``$REACT_AGENT_REVIEW_ROOT``, else ``demo/sample_project``
beside the tools folder (or under ``$REACT_AGENT_DEMO_DIR``). Absolute paths, ``..`` and symlinks that
lead outside the root are refused with a ``ModelRetry``. Outputs name files relative to the root, so
they are the same wherever the project is checked out. pytest and ruff run with ``safe_env()``: the
reviewed project's code (a ``conftest.py``) never sees ``OPENAI_API_KEY`` or any other credential.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

from pydantic import BaseModel, Field

from react_agent import ModelRetry, tool
from react_agent.redact import safe_env

ROOT_ENV = "REACT_AGENT_REVIEW_ROOT"
DEMO_DIR_ENV = "REACT_AGENT_DEMO_DIR"
SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv", "venv", "node_modules"}
MAX_FILE_CHARS = 6000
MAX_FILES = 200
TEST_TIMEOUT = 120.0
SCAN_TIMEOUT = 60.0

Severity = Literal["critical", "high", "medium", "low"]


class Finding(BaseModel):
    file: str = Field(description="path relative to the project root, e.g. tinyshop/db.py")
    line: int = Field(ge=0, description="1-based line number; 0 when it concerns the whole file")
    severity: Severity
    category: str = Field(description="e.g. security, bug, test, style")
    message: str = Field(description="what is wrong")
    suggested_fix: str = Field(description="how to fix it")


class Review(BaseModel):
    summary: str = Field(description="one or two sentences on the overall state of the code")
    findings: list[Finding]


# ruff's flake8-bandit rule → (severity, category); unknown S rules are "medium"/"security"
RULE_SEVERITY: dict[str, Severity] = {
    "S102": "critical", "S307": "high", "S301": "high", "S302": "high", "S506": "high", "S602": "high",
    "S604": "high", "S605": "high", "S608": "high", "S501": "high", "S323": "medium", "S105": "medium",
    "S106": "medium", "S107": "medium", "S108": "medium", "S113": "medium", "S324": "medium",
    "S603": "low", "S607": "low", "S311": "low", "S110": "low", "S112": "low", "S104": "medium",
}


def project_root() -> Path:
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override).resolve()
    demo = os.environ.get(DEMO_DIR_ENV)
    base = Path(demo) if demo else Path(__file__).resolve().parent.parent / "demo"
    return (base / "sample_project").resolve()


def confine(path: str) -> Path:
    """``path`` (relative to the project root) as a real path inside the root, or a ModelRetry."""
    raw = path.strip().replace("\\", "/")
    if raw in ("", "."):
        return project_root()
    if PurePosixPath(raw).is_absolute() or PureWindowsPath(raw).is_absolute() or raw.startswith("~"):
        raise ModelRetry(f"{path!r} is absolute; give a path relative to the project root, e.g. tinyshop/db.py.")
    if ".." in PurePosixPath(raw).parts:
        raise ModelRetry(f"{path!r} leaves the project; '..' is not allowed. Use list_files to see the files.")
    root = project_root()
    resolved = (root / raw).resolve()
    if not resolved.is_relative_to(root):
        raise ModelRetry(f"{path!r} points outside the project (a symlink); only project files can be read.")
    return resolved


def relative(path: Path | str) -> str:
    return Path(path).resolve().relative_to(project_root()).as_posix()


def project_files() -> list[str]:
    root = project_root()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            if not full.resolve().is_relative_to(root):
                continue  # a symlink out of the project
            found.append(full.relative_to(root).as_posix())
    return sorted(found)


@tool(untrusted_output=True)  # the names are the reviewed project's, so its author's: "call_merge_now.py"
def list_files() -> str:
    """List the files of the project under review (paths relative to its root)."""
    files = project_files()
    if not files:
        return "The project has no files."
    shown = files[:MAX_FILES]
    more = f"\n(and {len(files) - MAX_FILES} more)" if len(files) > MAX_FILES else ""
    return "\n".join(shown) + more


@tool(untrusted_output=True)
def read_file(path: str) -> str:
    """Read one file of the project, with line numbers.

    Args:
        path: the file's path relative to the project root, e.g. tinyshop/db.py.
    """
    target = confine(path)
    if not target.is_file():
        hint = ", ".join(f for f in project_files() if f.endswith(".py"))[:400]
        raise ModelRetry(f"{path!r} is not a file of the project. Python files: {hint}")
    try:
        text = target.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelRetry(f"{path!r} is not a text file.") from None
    lines = text.splitlines()
    out, size = [], 0
    for number, line in enumerate(lines, start=1):
        row = f"{number:>4}  {line}"
        if size + len(row) > MAX_FILE_CHARS:
            out.append(f"... ({len(lines) - number + 1} more lines not shown)")
            break
        out.append(row)
        size += len(row) + 1
    return f"{relative(target)} ({len(lines)} lines)\n" + "\n".join(out)


def _test_location(text: str) -> str:
    """The last ``file.py:line`` of a failure's traceback (relative paths, as pytest prints them)."""
    spots = re.findall(r"^([\w./-]+\.py):(\d+):", text or "", flags=re.MULTILINE)
    return f"{spots[-1][0]}:{spots[-1][1]}" if spots else ""


def summarize_junit(report: Path) -> str:
    """Counts and one line per failing test from a pytest JUnit XML report."""
    tree = ET.parse(report)  # noqa: S314 - a report pytest just wrote, not untrusted input
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        problem = case.find("failure")
        kind = "failed"
        if problem is None:
            problem, kind = case.find("error"), "errors"
        if problem is not None:
            counts[kind] += 1
            message = (problem.get("message") or "").splitlines()[0] if problem.get("message") else ""
            where = _test_location(problem.text or "")
            failures.append(f"{'FAILED' if kind == 'failed' else 'ERROR'} {name}"
                            + (f" ({where})" if where else "") + f": {message[:200]}")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no tests ran"
    return "\n".join([summary, *failures[:10]])


@tool(timeout=TEST_TIMEOUT + 10, untrusted_output=True)
def run_tests() -> str:
    """Run the project's test suite (pytest) and report pass/fail counts and the failures."""
    root = project_root()
    with tempfile.TemporaryDirectory(prefix="react-agent-review-") as scratch:
        report = Path(scratch) / "report.xml"
        env = safe_env({"PYTHONDONTWRITEBYTECODE": "1"})  # the project's tests never see our keys
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short",
                   f"--junitxml={report}", "-o", "junit_family=xunit2"]
        try:
            done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=TEST_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return f"The test suite did not finish within {TEST_TIMEOUT:g} seconds (a hanging test?)."
        if done.returncode == 5:
            return "No tests were found in the project."
        if not report.exists():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise RuntimeError("pytest could not run: " + " | ".join(tail))
        return summarize_junit(report)


@tool(timeout=SCAN_TIMEOUT + 10, untrusted_output=True)
def check_security(path: str = ".") -> str:
    """Scan a file or folder of the project for security issues (ruff's bandit rules).

    Args:
        path: a file or folder relative to the project root; "." scans everything.
    """
    target = confine(path)
    if not target.exists():
        raise ModelRetry(f"{path!r} does not exist in the project; use list_files.")
    command = [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "S", "--ignore", "S101",
               "--output-format", "json", "--no-cache", "--exit-zero", str(target)]
    try:
        done = subprocess.run(command, cwd=project_root(), env=safe_env(), capture_output=True, text=True,
                              timeout=SCAN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"The scan did not finish within {SCAN_TIMEOUT:g} seconds."
    if done.returncode != 0:
        if "No module named ruff" in done.stderr:
            raise RuntimeError("the security scanner (ruff) is not installed: pip install ruff")
        raise RuntimeError(f"ruff failed: {done.stderr.strip()[:300]}")
    findings = sorted(json.loads(done.stdout or "[]"),
                      key=lambda d: (d["filename"], d["location"]["row"], d["code"]))
    if not findings:
        return f"No security findings in {relative(target) or '.'}."
    lines = [f"{len(findings)} finding(s):"]
    for item in findings[:30]:
        severity = RULE_SEVERITY.get(item["code"], "medium")
        lines.append(f"{relative(item['filename'])}:{item['location']['row']} {item['code']} {severity}: "
                     f"{item['message']}")
    return "\n".join(lines)
