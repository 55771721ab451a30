"""Hostile task files and flags through the real CLI: each is exit code 2, one stderr line naming the file
(and the field or line), no traceback, and nothing written — no store, no session, no state, no cassette."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from react_agent import tasks
from react_agent._yaml import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES
from react_agent.cli import main
from react_agent.tasks import MAX_INPUT_CHARS, build_agent, load_task_file

ROOT = Path(__file__).resolve().parent.parent

AGENT = "agent:\n  name: helper\n  instructions: You help.\n  tools: []\n"
REST = "prompts: prompts\ntools_dir: tools\n"
TASK = "tasks:\n  - name: greet\n    input: hello\n"
VALID = AGENT + REST + TASK


def agent_line(line: str) -> str:
    return AGENT + f"  {line}\n" + REST + TASK


def task_line(line: str) -> str:
    return AGENT + REST + TASK + f"    {line}\n"


def laughs(levels: int, fan: int) -> str:
    """The 'billion laughs': each level an anchored list of ``fan`` aliases of the level before."""
    lines = ['    l0: &l0 "lol"']
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
    return AGENT + "  variables:\n" + "\n".join(lines) + "\n" + REST + TASK


def deep_flow(depth: int) -> str:
    return agent_line(f"variables: {{v: {'[' * depth}1{']' * depth}}}")


def deep_block(depth: int) -> str:
    body = "".join(f"{'  ' * (i + 2)}k{i}:\n" for i in range(depth)) + f"{'  ' * (depth + 2)}end: 1\n"
    return AGENT + "  variables:\n" + body + REST + TASK


# (id, file content, a word the error line must hold besides the file name)
CASES: list[tuple[str, str | bytes, str]] = [
    # encoding and bytes
    ("latin-1 byte", VALID.replace("You help.", "Caf\xe9.").encode("latin-1"), "not UTF-8"),
    ("utf-16-le bom", codecs.BOM_UTF16_LE + VALID.encode("utf-16-le"), "UTF-16"),
    ("utf-16-be bom", codecs.BOM_UTF16_BE + VALID.encode("utf-16-be"), "UTF-16"),
    ("utf-16 no bom", VALID.encode("utf-16-le"), "NUL byte"),
    ("utf-32", VALID.encode("utf-32"), "UTF-32"),
    ("png header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
    ("nul in text", VALID.replace("hello", "hel\x00lo").encode(), "NUL byte"),
    ("bell control char", VALID.replace("hello", "hel\x07lo"), "not allowed in YAML"),
    ("utf-8 surrogate", VALID.encode().replace(b"hello", b"hel\xed\xa0\x80lo"), "not UTF-8"),
    ("truncated utf-8", VALID.encode() + b"# \xe2\x82", "not UTF-8"),
    # YAML syntax
    ("unclosed flow", "agent: [\n", "not valid YAML"),
    ("bad indentation", "agent:\n  name: a\n name: b\n" + REST + TASK, "not valid YAML"),
    ("tab indentation", "agent:\n\tname: a\n" + REST + TASK, "not valid YAML"),
    ("unclosed quote", VALID.replace("input: hello", 'input: "hello'), "not valid YAML"),
    ("two documents", VALID + "---\n" + VALID, "not valid YAML"),
    ("undefined alias", agent_line("variables: {a: *nowhere}"), "undefined alias"),
    ("duplicate anchor", agent_line("variables: {a: &x 1, b: &x 2}"), "duplicate anchor"),
    ("python tag", agent_line("variables: {a: !!python/object/apply:os.system [ls]}"), "not valid YAML"),
    ("unhashable key", agent_line("variables: {[a, b]: 1}"), "unhashable"),
    ("self alias", agent_line("variables: &me {a: *me}"), "refers to itself"),
    # structure
    ("empty file", "", "empty file"),
    ("comments only", "# nothing here\n", "empty file"),
    ("top-level list", "- agent: {}\n- tasks: []\n", "got a list"),
    ("top-level string", "hello\n", "got a string"),
    ("top-level number", "42\n", "got a number"),
    ("no tasks", AGENT + REST, "tasks"),
    ("empty tasks", AGENT + REST + "tasks: []\n", "tasks"),
    ("tasks a string", AGENT + REST + "tasks: greet\n", "tasks"),
    ("task without input", AGENT + REST + "tasks:\n  - name: greet\n", "tasks.0.input"),
    ("task without name", AGENT + REST + "tasks:\n  - input: hi\n", "tasks.0.name"),
    ("task name with slash", VALID.replace("name: greet", "name: a/b"), "tasks.0.name"),
    ("unknown top-level field", VALID + "colour: red\n", "colour"),
    ("unknown agent field", agent_line("colour: red"), "agent.colour"),
    ("unknown task field", task_line("colour: red"), "tasks.0.colour"),
    ("no agent section", REST + TASK, "agent"),
    ("task names no agent", task_line("agent: ghost"), "one of ['helper'], got 'ghost'"),
    ("delegate to no agent", agent_line("agents_as_tools: [ghost]"), "agent.agents_as_tools"),
    ("agent is a list", "agent: [a, b]\n" + REST + TASK, "agent"),
    # wrong types (strict: no coercion)
    ("max_steps true", agent_line("max_steps: true"), "agent.max_steps"),
    ("max_steps string", agent_line('max_steps: "5"'), "agent.max_steps"),
    ("max_steps float", agent_line("max_steps: 2.5"), "agent.max_steps"),
    ("summarize_dropped yes string", agent_line('summarize_dropped: "yes"'), "agent.summarize_dropped"),
    ("expect_output 1", task_line("expect_output: 1"), "tasks.0.expect_output"),
    ("input a number", VALID.replace("input: hello", "input: 42"), "tasks.0.input"),
    ("input an empty list", VALID.replace("input: hello", "input: []"), "tasks.0.input: List should have at least 1"),
    ("input list with a number", VALID.replace("input: hello", "input: [hi, 7]"), "tasks.0.input.1"),
    ("max_tool_output string", agent_line('max_tool_output: "8000"'), "agent.max_tool_output"),
    ("request_timeout word", agent_line("request_timeout: fast"), "agent.request_timeout"),
    ("max_retries true", agent_line("max_retries: true"), "agent.max_retries"),
    ("instructions a number", VALID.replace("You help.", "12"), "agent.instructions"),
    # bounds
    ("max_steps 0", agent_line("max_steps: 0"), "agent.max_steps"),
    ("max_steps -1", agent_line("max_steps: -1"), "agent.max_steps"),
    ("max_steps 10^22", agent_line("max_steps: 10000000000000000000000"), "agent.max_steps"),
    ("max_tokens_total 10^22", agent_line("max_tokens_total: 10000000000000000000000"), "agent.max_tokens_total"),
    ("context_budget 100", agent_line("context_budget: 100"), "agent.context_budget"),
    ("max_tool_output 10^12", agent_line("max_tool_output: 1000000000000"), "agent.max_tool_output"),
    ("request_timeout 0", agent_line("request_timeout: 0"), "agent.request_timeout"),
    ("request_timeout negative", agent_line("request_timeout: -5"), "agent.request_timeout"),
    ("request_timeout a day", agent_line("request_timeout: 86400"), "less than or equal to 3600"),
    ("request_timeout nan", agent_line("request_timeout: .nan"), "agent.request_timeout"),
    ("request_timeout inf", agent_line("request_timeout: .inf"), "agent.request_timeout"),
    ("max_retries 11", agent_line("max_retries: 11"), "agent.max_retries"),
    ("max_retries -1", agent_line("max_retries: -1"), "agent.max_retries"),
    # regular expressions
    ("regex open group", task_line('expect_matches: "("'), "tasks.0.expect_matches"),
    ("regex open class", task_line('expect_matches: "[a-"'), "expect_matches: not a valid regular expression"),
    ("regex nothing to repeat", task_line('expect_matches: "*abc"'), "tasks.0.expect_matches"),
    # nesting depth
    ("5000-deep flow lists", deep_flow(5000), f"more than {MAX_DEPTH} levels"),
    ("100-deep flow mappings", agent_line("variables: " + "{a: " * 100 + "1" + "}" * 100), "levels deep"),
    ("100-deep block mappings", deep_block(100), "levels deep"),
    # aliases
    ("billion laughs", laughs(10, 10), "aliases"),
    ("binary laughs", laughs(40, 2), "expands"),
    ("alias of a big string", AGENT + f"  variables:\n    s: &s {'x' * 100_000}\n    t: [{', '.join(['*s'] * 30)}]\n"
     + REST + TASK, "expands"),
    ("too many small aliases", agent_line("variables: {a: &a 1, b: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]}"),
     "aliases"),
    # duplicate keys
    ("duplicate top-level key", VALID + "tasks:\n  - name: again\n    input: hi\n", "duplicate key 'tasks'"),
    ("duplicate agent key", agent_line("name: other"), "duplicate key 'name'"),
    ("duplicate task key", task_line("input: bye"), "duplicate key 'input'"),
    ("duplicate flow key", agent_line("variables: {a: 1, a: 2}"), "duplicate key 'a'"),
    ("duplicate key spelled two ways", agent_line("variables: {true: 1, yes: 2}"), "duplicate key True"),
    # size
    ("file over the size cap", VALID + "#" * MAX_FILE_BYTES + "\n", "byte limit"),
    ("input over the cap", VALID.replace("input: hello", f"input: {'a' * (MAX_INPUT_CHARS + 1)}"), "tasks.0.input"),
    ("input turn over the cap", VALID.replace("input: hello", f"input: [hi, {'a' * (MAX_INPUT_CHARS + 1)}]"),
     "tasks.0.input.1"),
    ("task name too long", VALID.replace("name: greet", f"name: {'g' * 101}"), "tasks.0.name"),
    # resolved after loading, still before anything runs
    ("unknown tool", VALID.replace("tools: []", "tools: [nope]"), "unknown tool"),
    ("bad output_type", agent_line("output_type: no_such_module:Thing"), "agent.output_type"),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of a run, with empty prompt and plugin folders; store and state point at
    folders that must never appear."""
    for name in ("prompts", "tools", "cassettes"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("REACT_AGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REACT_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, content: str | bytes, name: str = "task.yaml") -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def listing(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def assert_one_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_the_cases_are_distinct() -> None:
    assert len(CASES) >= 50
    assert len({c[0] for c in CASES}) == len({c[1] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_task_file_is_one_line_exit_2_and_writes_nothing(
        workdir: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, expected: str) -> None:
    path = write(workdir, content)
    before = listing(workdir)
    assert main(["run", str(path)]) == 2
    assert_one_line(capsys, str(path), expected)
    assert listing(workdir) == before
    assert not (workdir / "home").exists() and not (workdir / "state").exists()


def test_the_valid_file_of_the_same_fixtures_loads_and_builds(workdir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(workdir, VALID)
    spec = load_task_file(path)
    assert spec.tasks[0].inputs == ["hello"] and build_agent(spec).name == "helper"
    assert main(["run", str(path), "--task", "nope"]) == 2  # past loading: the task filter is what fails
    assert_one_line(capsys, "no task named ['nope']", "greet")


def test_values_at_the_limits_are_accepted(workdir: Path) -> None:
    aliases = ", ".join(["*a"] * (MAX_ALIASES - 1))
    content = (AGENT + "  max_steps: 1000\n  max_tokens_total: 100000000\n  context_budget: 256\n"
               "  max_tool_output: 1000000\n  request_timeout: 3600\n  max_retries: 10\n"
               f"  variables: {{a: &a 1, b: [{aliases}], deep: {deep_flow_value(MAX_DEPTH - 4)}}}\n" + REST
               + f"tasks:\n  - name: {'g' * 100}\n    input: {'a' * MAX_INPUT_CHARS}\n"
               "    expect_matches: '^a+$'\n    expect_output: false\n")
    spec = load_task_file(write(workdir, "\ufeff" + content))  # a UTF-8 byte order mark is fine
    agent = spec.agent
    assert agent is not None and (agent.max_steps, agent.request_timeout, agent.max_retries) == (1000, 3600.0, 10)
    assert len(spec.tasks[0].inputs[0]) == MAX_INPUT_CHARS and agent.variables["b"] == [1] * (MAX_ALIASES - 1)


def deep_flow_value(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def test_merge_keys_still_override(workdir: Path) -> None:
    content = agent_line("variables: {base: &b {x: 1, y: 2}, mine: {<<: *b, y: 3}}")
    agent = load_task_file(write(workdir, content)).agent
    assert agent is not None and agent.variables["mine"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(("line", "expected"), [
    ("", {}),
    ("request_timeout: 30", {"request_timeout": 30.0}),
    ("max_retries: 0", {"max_retries": 0}),
])
def test_request_timeout_and_max_retries_reach_the_agent_only_when_set(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, line: str, expected: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}
    real = tasks.Agent

    def agent(**kwargs: Any) -> Any:  # records the keywords; the real Agent may not take them yet
        seen.update(kwargs)
        return real(**{k: v for k, v in kwargs.items() if k not in expected})

    monkeypatch.setattr(tasks, "Agent", agent)
    build_agent(load_task_file(write(workdir, agent_line(line) if line else VALID)))
    assert {k: seen[k] for k in ("request_timeout", "max_retries") if k in seen} == expected


@pytest.mark.parametrize(("argv", "expected"), [
    (["eval", "{valid}", "--trials", "0"], "--trials: expected 1..1000, got 0"),
    (["eval", "{valid}", "--trials", "-1"], "--trials"),
    (["eval", "{valid}", "--trials", "abc"], "expected a whole number, got 'abc'"),
    (["eval", "{valid}", "--trials", "10000000000"], "--trials"),
    (["eval", "{missing}"], "no such file"),
    (["eval", "{valid}", "--replay", "--cassettes", "{missing}"], "--cassettes"),
    (["run", "{missing}"], "no such file"),
    (["run", "{dir}"], "is a directory"),
    (["run", "{valid}", "--replay", "--cassettes", "{missing}"], "no such folder"),
    (["run", "{valid}", "--task", "nope"], "no task named"),
    (["run", "{valid}", "--record", "--replay"], "not allowed with"),
    (["run", "--no-such-flag", "{valid}"], "unrecognized arguments"),
    (["run"], "taskfile"),
    ([], "COMMAND"),
    (["bogus"], "invalid choice"),
    (["--log", "loud", "tools"], "--log"),
    (["tools", "--plugins", "{missing}"], "no such folder"),
    (["tools", "--plugins", "{valid}"], "no such folder"),
    (["chat", "{missing}"], "no such file"),
    (["sessions", "show"], "needs a SESSION id"),
    (["sessions", "rm"], "needs a SESSION id"),
    (["sessions", "show", "nope"], "no session 'nope'"),
    (["sessions", "frobnicate"], "invalid choice"),
    (["resume", "nope"], "no run with id 'nope'"),
    (["resume"], "run_id"),
])
def test_a_bad_flag_or_argument_is_one_line_exit_2_and_writes_nothing(
        workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    places = {"valid": str(write(workdir, VALID)), "missing": str(workdir / "missing"), "dir": str(workdir / "tools")}
    before = listing(workdir)
    assert main([a.format(**places) for a in argv]) == 2
    assert_one_line(capsys, expected)
    assert listing(workdir) == before


SUBPROCESS_CASES = ["latin-1 byte", "utf-16-le bom", "regex open group", "5000-deep flow lists", "billion laughs",
                    "duplicate agent key"]


def test_no_traceback_reaches_stderr_of_the_real_command(tmp_path: Path) -> None:
    by_id = {c[0]: c for c in CASES}
    env = {**os.environ, "REACT_AGENT_HOME": str(tmp_path / "home"), "REACT_AGENT_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": str(ROOT)}
    for n, case_id in enumerate(SUBPROCESS_CASES):
        path = write(tmp_path, by_id[case_id][1], f"case{n}.yaml")
        done = subprocess.run([sys.executable, "-m", "react_agent", "run", str(path)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, (case_id, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert done.stderr.count("\n") == 1 and str(path) in done.stderr and by_id[case_id][2] in done.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "state").exists()
