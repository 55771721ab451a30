"""``batch`` on Ray (``react_agent.batch``), on a real local Ray instance bound to 127.0.0.1 (started once for
this module) and, for the CLI, real ``python -m react_agent batch`` processes that start their own:

* a replayed batch of tasks/quickstart.yaml on 2 workers has the outcomes of the sequential ``run --replay``;
* a live batch against a mock OpenAI-compatible server on 127.0.0.1, tasks x trials, writes every run to the
  store (disk and the embedded Postgres) with its batch id, task and trial; ``runs list --batch`` lists them;
* a worker killed mid-batch (its tool SIGKILLs its process) is reported with the run it left open, the other
  runs finish, and ``resume`` takes that run up;
* Ctrl-C stops the CLI with 130, naming the run to resume; bad input is one line and exit 2 before Ray starts,
  an address where nothing listens one line and exit 3.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from react_agent.batch import check_store_reach, run_batch
from react_agent.cli import main
from react_agent.errors import UserError
from react_agent.runner import run_one
from react_agent.stores import DiskStore, PostgresStore, open_store
from react_agent.tasks import load_task_file

pytestmark = pytest.mark.block_network(allowed_hosts=["127.0.0.1"])

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """One local Ray instance, 2 CPUs, on 127.0.0.1, for this module's library calls (they join it)."""
    import ray  # noqa: PLC0415 - the batch extra: imported where it is used, as the package does

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves this machine
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


# -- a mock OpenAI-compatible server --------------------------------------------------------------
class MockModel:
    """Chat Completions on 127.0.0.1: answers "The answer is 42."; a question with "die" first gets a call
    of the tool ``die``; one with "slow" waits until ``release`` is set. Counts the questions it got."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_asked = threading.Event()
        self.questions: list[str] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert not request.get("stream"), "the mock answers plain requests only"
                question = next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")
                model.questions.append(question)
                answered = any(m["role"] == "tool" for m in request["messages"])
                if "slow" in question and not answered:
                    model.slow_asked.set()
                    model.release.wait(60)
                message: dict[str, Any] = {"role": "assistant", "content": "The answer is 42."}
                if "die" in question and not answered:
                    message = {"role": "assistant", "content": None, "tool_calls": [{
                        "id": "call_1", "type": "function", "function": {"name": "die", "arguments": "{}"}}]}
                body = json.dumps({
                    "id": "c1", "object": "chat.completion", "created": 0, "model": request["model"],
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the asking worker was stopped meanwhile
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


DIE_TOOL = '''
import os, signal
from react_agent import tool

@tool(side_effects=True)
def die() -> str:
    """Stop this process at once (a worker killed mid-run)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"
'''

TASKS = """
agent:
  name: answerer
  instructions: Answer the question.
  model: gpt-4o-mini
  tools: [die]
  max_steps: 3
prompts: prompts
tools_dir: tools
tasks:
  - {name: alpha, input: "What is six times seven?", expect_contains: "42"}
  - {name: beta, input: "And seven times six?", expect_contains: "42"}
  - {name: gamma, input: "What is 43?", expect_contains: "43"}
  - {name: doomed, input: "Please die now.", expect_contains: "42"}
  - {name: waits, input: "A slow question.", expect_contains: "42"}
"""


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MockModel, Path]]:
    """A project (tasks.yaml, tools/die.py) whose agent asks the mock model; its server and the task file."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "prompts").mkdir()
    (tmp_path / "tools" / "die.py").write_text(DIE_TOOL)
    (tmp_path / "tasks.yaml").write_text(TASKS)
    model = MockModel()
    monkeypatch.setenv("OPENAI_BASE_URL", model.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.chdir(tmp_path)
    yield model, tmp_path / "tasks.yaml"
    model.close()


def essentials(outcome: Any) -> dict[str, Any]:
    return {"task": outcome.task, "passed": outcome.passed, "checks": [(c.name, c.passed) for c in outcome.checks],
            "runs": [(r.status, r.output, r.usage.total_tokens, [a.name for a in r.tool_calls])
                     for r in outcome.results]}


# -- replay ---------------------------------------------------------------------------------------
def test_a_replayed_batch_has_the_outcomes_of_the_sequential_replay(ray_instance, repo_copy) -> None:
    task_file = load_task_file("tasks/quickstart.yaml")
    sequential = [run_one(task_file, task, mode="replay", cassettes=None, model=None, console=Console(quiet=True),
                          quiet=True) for task in task_file.tasks]
    report = run_batch("tasks/quickstart.yaml", workers=2, mode="replay")
    assert [essentials(i.outcome) for i in report.items] == [essentials(o) for o in sequential]
    assert all(o.passed for o in sequential) and report.passed and report.report.accuracy == 1.0
    assert all(i.worker and not i.worker.endswith(f":{os.getpid()}") for i in report.items)  # ran in workers
    assert report.report.tokens == sum(r.usage.total_tokens for o in sequential for r in o.results) > 0


# -- live runs in the store -----------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["disk", "postgres"])
def test_a_live_batch_writes_every_run_with_its_batch_metadata(ray_instance, live, backend, request,
                                                              monkeypatch, capsys) -> None:
    model, tasks = live
    if backend == "postgres":
        monkeypatch.setenv("REACT_AGENT_STORE", request.getfixturevalue("pg_url"))
    report = run_batch(tasks, tasks=["alpha", "beta", "gamma"], trials=2, workers=2)
    assert [(i.task, i.trial, i.passed) for i in report.items] == [
        ("alpha", 1, True), ("alpha", 2, True), ("beta", 1, True), ("beta", 2, True),
        ("gamma", 1, False), ("gamma", 2, False)]
    assert (report.report.accuracy, report.report.pass_k) == (pytest.approx(4 / 6), pytest.approx(2 / 3))
    assert report.report.tokens == 60 * 3 and report.report.cost_usd is not None and report.report.cost_usd > 0
    assert len(model.questions) == 6 and report.could_not_run == []

    store = open_store()
    assert isinstance(store, PostgresStore if backend == "postgres" else DiskStore)
    records = [r for r in store.runs() if r.metadata.get("batch_id") == report.batch_id]
    store.close()
    assert sorted((r.metadata["task"], r.metadata["trial"], r.status) for r in records) == [
        (t, n, "completed") for t in ("alpha", "beta", "gamma") for n in (1, 2)]
    assert {r.run_id for r in records} == {r.run_id for i in report.items for r in i.outcome.results}

    assert main(["runs", "list", "--batch", report.batch_id, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["run_id"] for r in listed) == sorted(r.run_id for r in records)
    assert main(["runs", "list", "--batch", "batch-none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_worker_killed_mid_batch_is_reported_and_the_other_runs_finish(ray_instance, live) -> None:
    _, tasks = live
    report = run_batch(tasks, tasks=["alpha", "doomed", "beta"], workers=2)
    alpha, beta, doomed = report.items  # in the task file's order
    assert alpha.passed and beta.passed
    assert doomed.outcome is None and "the worker died" in (doomed.error or "")
    assert len(doomed.open_runs) == 1 and not report.passed
    [left] = doomed.open_runs
    assert report.could_not_run == [f"doomed trial 1: {doomed.error}; `python -m react_agent resume {left}` "
                                    "continues it"]
    store = open_store()
    record = store.run(left)
    store.close()
    assert record is not None and record.status == "running" and record.metadata["batch_id"] == report.batch_id
    # the run is resumable: the side-effecting call is not repeated (its outcome is unknown), the run ends
    assert main(["resume", left, "--json"]) == 0
    store = open_store()
    record = store.run(left)
    store.close()
    assert record is not None and record.status == "completed" and record.output == "The answer is 42."


# -- the store a batch may use --------------------------------------------------------------------
def test_a_disk_store_on_several_hosts_is_refused(tmp_path) -> None:
    disk = DiskStore(tmp_path / "store")
    check_store_reach(["10.0.0.1"], disk)  # one host: the disk store is shared by its processes
    with pytest.raises(UserError, match=r"2 hosts .*REACT_AGENT_STORE=postgresql://"):
        check_store_reach(["10.0.0.1", "10.0.0.2"], disk)
    check_store_reach(["10.0.0.1", "10.0.0.2"], PostgresStore("postgresql://u@127.0.0.1:1/x"))


# -- the CLI --------------------------------------------------------------------------------------
def cli(*argv: str, cwd: Path, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("REACT_AGENT_", "OPENAI_"))}
    full.update(REACT_AGENT_HOME=str(cwd / "home"), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "react_agent", "batch", *argv], cwd=cwd, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_the_cli_replays_a_batch_on_a_local_instance(repo_copy) -> None:
    proc = cli("tasks/quickstart.yaml", "--replay", "--workers", "2", "--trials", "2", "--json", cwd=repo_copy)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert [(i["task"], i["trial"]) for i in report["items"]] == [
        ("multiply", 1), ("multiply", 2), ("convert-distance", 1), ("convert-distance", 2)]
    assert report["passed"] and report["report"]["pass_k"] == 1.0 and report["workers"] == 2
    assert "[4/4]" in err and "Traceback" not in err


def test_ctrl_c_stops_the_batch_and_names_the_run_to_resume(live, capsys, monkeypatch) -> None:
    model, tasks = live
    proc = cli(str(tasks), "--task", "waits", cwd=tasks.parent,
               env={"OPENAI_BASE_URL": model.url, "OPENAI_API_KEY": "sk-test"})
    assert model.slow_asked.wait(60), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted: the session and run journal are saved"), err
    run_id = line.split("resume ")[1].split("`")[0]
    model.release.set()
    monkeypatch.setenv("REACT_AGENT_HOME", str(tasks.parent / "home"))  # the store the CLI wrote
    assert main(["resume", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"


@pytest.mark.parametrize(("argv", "message"), [
    (["tasks/quickstart.yaml", "--task", "nope"], "no task named ['nope']"),
    (["tasks/quickstart.yaml", "--workers", "0"], "--workers: expected 1..1000, got 0"),
    (["tasks/quickstart.yaml", "--trails", "2"], "unrecognized arguments: --trails 2"),
    (["tasks/nothing.yaml"], "nothing.yaml"),
    (["tasks/quickstart.yaml", "--replay", "--cassettes", "nowhere"], "--cassettes nowhere: no such folder"),
])
def test_bad_input_is_one_line_and_exit_2(repo_copy, capsys, argv, message) -> None:
    assert main(["batch", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_bad_task_file_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("agent: {name: a, max_steps: 0}\ntasks: [{name: t, input: hi}]\n")
    assert main(["batch", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "max_steps" in err and err.count("\n") == 1


def test_without_the_batch_extra_the_error_names_the_install(repo_copy, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    assert main(["batch", "tasks/quickstart.yaml", "--replay"]) == 2
    out, err = capsys.readouterr()
    assert err == (f"error: batch runs need the batch extra (ray is not installed): {sys.executable} -m pip install "
                   "'react-agent[batch]'\n")
    assert out == "", "the one line only: no banner before it"


def test_a_cluster_address_where_nothing_listens_is_one_line_and_exit_3(repo_copy) -> None:
    started = time.monotonic()
    proc = cli("tasks/quickstart.yaml", "--replay", "--address", "127.0.0.1:1", cwd=repo_copy)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and time.monotonic() - started < 30
    assert err.startswith("error: could not start or join the Ray cluster at 127.0.0.1:1: nothing answers")
    assert err.count("\n") == 1, err


def test_ray_is_imported_only_when_a_batch_starts() -> None:
    code = "import sys, react_agent, react_agent.cli; react_agent.cli._parser(); print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_an_address_where_something_else_listens_is_one_line_and_exit_3(repo_copy) -> None:
    """A web server on the port passed the TCP check; Ray then retried for minutes (seen: killed at 328 s)."""
    web = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        proc = cli("tasks/quickstart.yaml", "--replay", "--address", f"127.0.0.1:{web.server_port}", cwd=repo_copy)
        _, err = proc.communicate(timeout=60)
    finally:
        web.shutdown()
    assert proc.returncode == 3 and time.monotonic() - started < 30, err
    assert "answers, but not as a Ray cluster does" in err and err.count("\n") == 1, err


def test_a_replayed_batch_of_several_trials_says_each_replays_one_recording(repo_copy) -> None:
    """As `eval --trials 2 --replay` says it: pass^2 of one recording replayed twice is its accuracy."""
    proc = cli("tasks/quickstart.yaml", "--replay", "--trials", "2", "--json", cwd=repo_copy)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (note,) = json.loads(out)["report"]["notes"]
    assert "each of their 2 trials replays it" in note


def _descendants(pid: int) -> dict[int, str]:
    """The processes below ``pid`` (Ray's node processes and their agents), with their command lines — only
    this CLI's own: other Ray instances on the machine (another test run) are not counted."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            with contextlib.suppress(OSError):
                found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # started last, while ray.init has not returned yet


def test_ctrl_c_while_ray_starts_leaves_no_ray_process(repo_copy) -> None:
    """An interrupt inside ray.init never reached the shutdown: its agents lived on for a minute or more."""
    proc = cli("tasks/quickstart.yaml", "--replay", cwd=repo_copy)
    deadline = time.monotonic() + 60
    started: dict[int, str] = {}
    while not any(a in line for line in started.values() for a in AGENTS) and time.monotonic() < deadline:
        started = _descendants(proc.pid)  # Ray is starting its node's agents
        time.sleep(0.02)
    assert any(a in line for line in started.values() for a in AGENTS), f"Ray never started: {started}"
    started = _descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 15
    while [p for p in started if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [started[p] for p in started if _alive(p)] == []
