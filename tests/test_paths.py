"""Paths in a task file do not depend on the working directory: cassettes, prompts and tools are found
relative to the task file; a template that is not where the task file says is an error naming the file
and the field — never the packaged demo prompt of the same name. Replays with ``--trials K`` work from
the one recording shipped per case, and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from react_agent import Agent
from react_agent.cli import main
from react_agent.errors import PromptError, TaskFileError
from react_agent.prompts import Prompts
from react_agent.runner import cassette_path, default_cassettes, project_root, replay_cassette
from react_agent.tasks import build_agent, load_task_file
from react_agent.testing import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def elsewhere(repo_copy: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository copy, run from an unrelated working directory."""
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    return repo_copy


def test_a_replay_finds_its_cassettes_from_any_directory(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(elsewhere / "tasks" / "quickstart.yaml"), "--replay", "--json"])
    assert code in (0, 1), capsys.readouterr().err  # 2 would be "no cassette ... record it first"
    outcomes = json.loads(capsys.readouterr().out)
    assert [o["task"] for o in outcomes] == ["multiply", "convert-distance"]
    assert not Path("cassettes").exists(), "nothing is looked for or made in the working directory"


def test_a_replay_says_which_cassette_and_model_it_replayed(elsewhere: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", str(elsewhere / "tasks" / "quickstart.yaml"), "--replay", "--task", "multiply"])
    out = capsys.readouterr().out
    assert f"replayed {elsewhere / 'cassettes' / 'quickstart' / 'multiply.yaml'}" in out
    assert "recorded from model 'local'" in out


def test_a_missing_default_cassette_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task_file = tmp_path / "proj" / "agent.yaml"
    task_file.parent.mkdir()
    task_file.write_text("agent:\n  name: a\n  tools: []\ntasks:\n  - name: t\n    input: hi\n")
    assert main(["run", str(task_file), "--replay"]) == 2
    err = capsys.readouterr().err
    assert f"no cassette folder at {tmp_path / 'proj' / 'cassettes'}" in err and "--cassettes" in err


def test_the_cassette_folder_is_in_the_task_files_project_root(tmp_path: Path) -> None:
    for where, root in [("repo/tasks/eval/support.yaml", "repo"), ("repo/tasks/x.yaml", "repo"),
                        ("proj/agents/x.yaml", "proj/agents")]:
        path = tmp_path / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("agent:\n  name: a\ntasks:\n  - name: t\n    input: hi\n")
        task_file = load_task_file(path)
        assert project_root(task_file) == tmp_path / root
        assert default_cassettes(task_file) == tmp_path / root / "cassettes"
    assert default_cassettes(load_task_file(ROOT / "tasks" / "eval" / "support.yaml")) == ROOT / "cassettes"


# -- --trials K on a replay -------------------------------------------------------------------------
def test_a_trial_without_its_own_recording_replays_the_cases_one(tmp_path: Path) -> None:
    task_file = load_task_file(ROOT / "tasks" / "eval" / "support.yaml")
    single = cassette_path(tmp_path, task_file, "case")
    assert replay_cassette(tmp_path, task_file, "case", 2) == single  # neither: the one `--record` makes
    single.parent.mkdir(parents=True)
    single.write_text("interactions: []\n")
    assert replay_cassette(tmp_path, task_file, "case", 2) == single
    own = cassette_path(tmp_path, task_file, "case", 2)
    own.write_text("interactions: []\n")
    assert replay_cassette(tmp_path, task_file, "case", 2) == own
    assert replay_cassette(tmp_path, task_file, "case") == single


def test_eval_trials_replay_the_shipped_recording_and_say_so(elsewhere: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The README's `eval SUITE --trials 2 --replay`, with one cassette per case as shipped."""
    code = main(["eval", str(elsewhere / "tasks" / "quickstart.yaml"), "--trials", "2", "--replay", "--json"])
    assert code in (0, 1), capsys.readouterr().err  # 2 was "no cassette ... multiply.trial1.yaml"
    report = json.loads(capsys.readouterr().out)
    assert [(c["case"], c["trials"]) for c in report["cases"]] == [("multiply", 2), ("convert-distance", 2)]
    assert all(c["passed"] in (0, 2) for c in report["cases"]), "a replayed recording answers the same every trial"
    assert len(report["notes"]) == 1 and "multiply, convert-distance" in report["notes"][0]
    assert "each of their 2 trials replays it" in report["notes"][0]


def test_eval_trials_replay_of_a_suite_never_recorded_names_the_cassette_to_record(
        elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It named `<case>.trial1.yaml` and first claimed that every case had one recording."""
    suite = elsewhere / "tasks" / "never.yaml"
    suite.write_text((elsewhere / "tasks" / "quickstart.yaml").read_text())
    assert main(["eval", str(suite), "--trials", "2", "--replay"]) == 2
    out, err = capsys.readouterr()
    assert "one recording" not in out + err
    assert err.strip() == (f"error: no cassette at {elsewhere / 'cassettes' / 'never' / 'multiply.yaml'}: "
                           "record it first with --record"), err


def test_a_replay_reports_the_task_files_own_mistake_before_a_missing_cassette(
        elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Recording, as the cassette error advised, would only have met the bad prompt then."""
    suite = elsewhere / "tasks" / "badprompt.yaml"
    text = (elsewhere / "tasks" / "quickstart.yaml").read_text()
    suite.write_text(text.replace("instructions: calculator.j2", "instructions: prompts/does-not-exist.j2"))
    assert "does-not-exist" in suite.read_text()
    for argv in (["run", str(suite), "--replay"], ["eval", str(suite), "--replay"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "prompts/does-not-exist.j2" in err and "cassette" not in err, err


def test_a_model_given_to_a_replay_is_refused_not_ignored(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--replay --model gpt-4o-mini` replayed the `local` recording and passed, silently."""
    for command in ("run", "eval"):
        assert main([command, str(elsewhere / "tasks" / "quickstart.yaml"), "--replay", "--model", "gpt-4o-mini"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --model gpt-4o-mini does nothing with --replay") and err.count("\n") == 1


def test_a_task_file_sets_the_untrusted_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = tmp_path / "t.yaml"
    task.write_text("agent: {name: a, tools: [], untrusted_policy: block}\ntasks: [{name: x, input: hi}]\n")
    assert build_agent(load_task_file(task)).untrusted_policy == "block"
    task.write_text("agent: {name: a, tools: [], untrusted_policy: never}\ntasks: [{name: x, input: hi}]\n")
    assert main(["run", str(task)]) == 2
    err = capsys.readouterr().err
    assert "untrusted_policy" in err and err.count("\n") == 1


# -- templates --------------------------------------------------------------------------------------
def _task_file(folder: Path, instructions: str, prompts: str = "prompts") -> Path:
    path = folder / "agent.yaml"
    path.write_text(f"agent:\n  name: helper\n  instructions: {instructions}\n  tools: []\nprompts: {prompts}\n"
                    "tasks:\n  - name: t\n    input: hi\n")
    return path


def test_a_missing_template_names_the_task_file_and_field(tmp_path: Path) -> None:
    """`support.j2` exists among the packaged demo prompts; a task file whose prompt folder lacks it gets
    an error, not the demo's prompt."""
    (tmp_path / "prompts").mkdir()
    for instructions in ("prompts/support.j2", "support.j2"):
        path = _task_file(tmp_path, instructions)
        with pytest.raises(TaskFileError) as info:
            build_agent(load_task_file(path), model=ScriptedModel([]))
        assert info.value.path == str(path) and info.value.field == "agent 'helper'.instructions"
        assert "not found" in info.value.expected and instructions in info.value.expected


def test_a_missing_template_is_one_line_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _task_file(tmp_path, "prompts/support.j2")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {path}: agent 'helper'.instructions: template 'prompts/support.j2' not found")
    assert str(tmp_path / "prompts" / "support.j2") in err


def test_templates_are_found_relative_to_the_task_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "own.j2").write_text("Own words from {{ place }}.")
    (project / "prompts").mkdir()
    (project / "prompts" / "named.j2").write_text("Named words.")
    monkeypatch.chdir(tmp_path)  # not the task file's folder
    by_path = build_agent(load_task_file(_task_file(project, "agents/own.j2")), model=ScriptedModel([]),
                          variables={"place": "here"})
    assert "Own words from here." in by_path.system_prompt()
    by_name = build_agent(load_task_file(_task_file(project, "named.j2")), model=ScriptedModel([]))
    assert "Named words." in by_name.system_prompt()


def test_instructions_never_come_from_the_packaged_demo_prompts(tmp_path: Path) -> None:
    assert (Prompts().env.loader is not None) and "support.j2" in Prompts().env.list_templates()  # it is there
    with pytest.raises(PromptError, match="template not found"):
        Prompts().instructions("support.j2")
    with pytest.raises(PromptError, match="template not found"):
        Prompts([tmp_path]).instructions("support.j2")
    with pytest.raises(PromptError, match=r"is not a file"):
        Agent(instructions="prompts/nowhere.j2", model=ScriptedModel([])).system_prompt()


def test_a_not_found_error_lists_each_folder_once(tmp_path: Path) -> None:
    """In a checkout the task files' `../prompts` is the package's default folder too."""
    with pytest.raises(PromptError) as info:
        Prompts([ROOT / "prompts", ROOT / "tasks" / ".." / "prompts"]).render("nope.j2")
    assert info.value.reason.count(str(ROOT / "prompts")) == 1


# -- the store --------------------------------------------------------------------------------------
def test_sessions_list_says_which_store_it_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "list"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("0 session(s) in the store at ") and "$REACT_AGENT_HOME" in first
