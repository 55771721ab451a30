"""A stdio MCP server that starts but never answers, named in a task file: the command says so in one
line (no stray "Future exception was never retrieved"), exits 2, keeps to ``start_timeout`` within a
small margin, and leaves no child process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

pytest.importorskip("mcp")

START_TIMEOUT = 3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("command", ["tools", "run"])
def test_a_silent_server_is_one_error_line_within_its_start_timeout(tmp_path: Path, command: str) -> None:
    pid_file = tmp_path / "server.pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(100)"
    (tmp_path / "task.yaml").write_text(f"""
agent:
  name: helper
  model: gpt-4o-mini
  mcp_servers:
    - name: silent
      command: {json.dumps(sys.executable)}
      args: [-c, {json.dumps(code)}]
      start_timeout: {START_TIMEOUT}
tasks:
  - name: one
    input: hi
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test-not-used",
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}  # never reached: the server fails first
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "react_agent", command, "task.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    elapsed = time.monotonic() - started

    assert done.stderr.strip().splitlines() == [
        f"error: MCP server 'silent': did not answer within {START_TIMEOUT}s"], done.stderr
    assert done.returncode == 2
    assert elapsed < START_TIMEOUT + 2.5, f"took {elapsed:.1f}s for a {START_TIMEOUT}s start timeout"
    pid = int(pid_file.read_text())
    assert not _alive(pid), "the silent server's process was left running"
