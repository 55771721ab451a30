"""The CLI end to end: replaying shipped cassettes, clear one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from react_agent.cli import main
from react_agent.recording import body_differences
from react_agent.runner import cassette_path
from react_agent.tasks import load_task_file

ROOT = Path(__file__).resolve().parent.parent


def test_replay_of_the_quickstart_passes_its_checks(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tasks/quickstart.yaml", "--replay", "--json"]) == 0
    outcomes = json.loads(capsys.readouterr().out)
    assert [o["task"] for o in outcomes] == ["multiply", "convert-distance"]
    first_call = outcomes[0]["runs"][0]["steps"][0]["actions"][0]
    assert first_call["name"] == "calculate" and json.loads(first_call["arguments"]) == {"expression": "1234 * 5678"}
    assert outcomes[0]["runs"][0]["steps"][0]["observations"][0]["content"] == "1234 * 5678 = 7006652"


def test_a_diverging_replay_names_the_request_and_field(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = repo_copy / "prompts" / "calculator.j2"
    template.write_text(template.read_text() + "\nBe brief.\n")
    assert main(["run", "tasks/quickstart.yaml", "--replay", "--task", "multiply"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "diverged at request #1" in err[0] and "messages[0].content" in err[0] and "Be brief." in err[0]


def test_replay_without_a_cassette_says_how_to_record(repo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(repo_copy / "cassettes" / "quickstart")
    assert main(["run", "tasks/quickstart.yaml", "--replay"]) == 2
    assert "record it first with --record" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "expected"), [
    ("agent: [\n", "not valid YAML"),
    ("agent:\n  name: x\n  max_steps: zero\ntasks:\n  - name: a\n    input: hi\n", "agent.max_steps"),
    ("agent:\n  name: x\ntasks: []\n", "tasks"),
    ("agent:\n  name: x\n  tools: [nope]\ntools_dir: tools\ntasks:\n  - name: a\n    input: hi\n", "unknown tool"),
    ("agent:\n  name: x\n  colour: red\ntasks:\n  - name: a\n    input: hi\n", "agent.colour"),
])
def test_bad_task_files_get_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               content: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err


def test_a_bad_flag_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--no-such-flag", "x.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: python -m react_agent: unrecognized arguments: --no-such-flag (see --help)"


def test_tools_lists_what_was_found_and_what_was_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.py").write_text('from react_agent import tool\n\n@tool\ndef ping() -> str:\n    """Ping."""\n'
                                      '    return "pong"\n')
    (tmp_path / "broken.py").write_text("import does_not_exist\n")
    assert main(["tools", "--plugins", str(tmp_path), "--json"]) == 2  # listed, and a mistake to fix
    out, err = capsys.readouterr()
    listing = json.loads(out)
    assert [t["name"] for t in listing["tools"]] == ["ping"]
    assert listing["skipped"][0]["source"].endswith("broken.py")
    assert "ModuleNotFoundError" in listing["skipped"][0]["reason"]
    assert err.count("\n") == 1 and err.startswith("error: a plugin failed to load — ") and "broken.py" in err
    (tmp_path / "broken.py").unlink()
    assert main(["tools", "--plugins", str(tmp_path)]) == 0


def test_a_task_whose_plugin_folder_holds_a_broken_plugin_does_not_run(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Even when the task needs none of its tools: a broken plugin is one clear error and exit 2 (it used to
    be skipped without a word), before anything is written."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "good.py").write_text('from react_agent import tool\n\n@tool\ndef ping() -> str:\n'
                                                '    """Ping."""\n    return "pong"\n')
    (tmp_path / "tools" / "broken.py").write_text('raise RuntimeError("boom at import")\n')
    task = tmp_path / "tasks" / "t.yaml"
    task.parent.mkdir()
    task.write_text("agent:\n  name: x\n  tools: [ping]\ntasks:\n  - name: a\n    input: hi\n")
    home = tmp_path / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REACT_AGENT_HOME", str(home))
        patch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # were it to run: nothing listens there
        patch.setenv("OPENAI_API_KEY", "not-used")
        assert main(["run", str(task)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.py" in err and "RuntimeError: boom at import" in err, err
    assert not home.exists()


def test_sessions_show_of_an_unknown_session_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "show", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no session 'nope' in the store at ") and err.endswith("(see `sessions list`)")
    assert len(err.splitlines()) == 1


def test_body_differences_points_at_the_field() -> None:
    recorded = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
    live = {"model": "m", "messages": [{"role": "user", "content": "hello world"}], "stream": True}
    diffs = body_differences(recorded, live)
    assert any(d.startswith("messages[0].content") for d in diffs)
    assert "stream: not recorded, now true" in diffs


def test_cassette_paths_keep_the_sub_path_below_tasks() -> None:
    folder = Path("cassettes")
    assert cassette_path(folder, load_task_file(ROOT / "tasks" / "support.yaml"), "x") == folder / "support" / "x.yaml"
    suite = load_task_file(ROOT / "tasks" / "eval" / "support.yaml")
    assert cassette_path(folder, suite, "x") == folder / "eval" / "support" / "x.yaml"
    assert cassette_path(folder, suite, "x", trial=2) == folder / "eval" / "support" / "x.trial2.yaml"


@pytest.mark.parametrize(("answer", "passed"), [
    ("You can call functions.add and function.final_answer in a loop: ...", False),
    ("The complete final answer, in plain words.", False),
    ("1234 * 5678 is 7006652.", True),
])
async def test_the_quickstart_checks_the_answer_not_only_the_tool_call(tmp_path: Path, answer: str,
                                                                        passed: bool) -> None:
    """The right tool call followed by a nonsense answer (what the demo once passed with) fails."""
    from react_agent.stores import DiskStore  # noqa: PLC0415
    from react_agent.tasks import run_task  # noqa: PLC0415
    from react_agent.testing import ScriptedModel, reply, tool_call  # noqa: PLC0415

    task_file = load_task_file(ROOT / "tasks" / "quickstart.yaml")
    task = next(t for t in task_file.tasks if t.name == "multiply")
    model = ScriptedModel([tool_call("calculate", {"expression": "1234 * 5678"}), reply(answer)])
    outcome = await run_task(task_file, task, model=model, store=DiskStore(tmp_path / "store"))
    assert outcome.results[0].steps[0].observations[0].content == "1234 * 5678 = 7006652"
    assert outcome.passed is passed, outcome.checks
