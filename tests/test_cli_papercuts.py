"""The command line as a new user meets it: Ctrl-C names the run to resume, chat runs resume, chat has
the calculator and streams, --log anywhere, template errors that say where, exit code 3 for "could not
run", whole tool descriptions, a header on `sessions list`, help on every flag, no server log left in /tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from conftest import use_model

import react_agent.log as log_module
from react_agent import Agent, ModelHTTPError
from react_agent.cli import _parser, first_paragraph, main
from react_agent.errors import PromptError
from react_agent.local import LocalServer, server_log_path
from react_agent.model import OpenAIModel
from react_agent.prompts import Prompts, default_prompt_dir
from react_agent.stores import DiskStore
from react_agent.testing import Request, ScriptedModel, reply, tool_call

ROOT = Path(__file__).resolve().parent.parent



def type_lines(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> None:
    """What the user types at `you>`; Ctrl-D after the last line."""
    queue = iter(lines)

    def fake_input(prompt: str = "") -> str:
        try:
            return next(queue)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)


def interrupt(request: Request) -> str:
    raise KeyboardInterrupt  # Ctrl-C while the model is answering


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)  # no tools/ here: chat finds the checkout's calculator
    yield tmp_path


# -- chat -------------------------------------------------------------------------------------------
def test_chat_without_a_task_file_has_the_calculator_streams_and_goes_on_after_an_empty_line(
        in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([tool_call("calculate", {"expression": "17*23"}), reply("17 * 23 is 391."),
                           reply("Bye for now.")])
    use_model(monkeypatch, model)
    type_lines(monkeypatch, ["", "What is 17*23?", "   ", "thanks", "/quit", "never read"])
    assert main(["chat", "--session", "s1"]) == 0
    out = capsys.readouterr().out
    assert [t["function"]["name"] for t in model.requests[0].tools] == ["calculate", "convert_units"]
    assert "17*23 = 391" in model.requests[1].messages[-1]["content"]  # the tool ran
    assert len(model.requests) == 3  # the empty lines asked nothing and ended nothing; /quit did
    assert "tools: calculate, convert_units" in out
    assert out.count("17 * 23 is 391.") == 1  # streamed, not printed again as the step's answer
    assert "Answer:" not in out
    assert [r.metadata["chat"] for r in DiskStore().runs(session="s1")] == [True, True]


def test_chat_with_a_broken_calculator_plugin_is_one_line(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "tools").mkdir()
    (in_tmp / "tools" / "calculator.py").write_text("import does_not_exist\n")
    use_model(monkeypatch, ScriptedModel([]))
    type_lines(monkeypatch, ["never read"])
    assert main(["chat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calculator.py" in err and "ModuleNotFoundError" in err, err


def test_two_chats_started_in_one_second_get_two_sessions(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The default session was `chat-<seconds>`: two people starting `chat` in one second shared a conversation."""
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)
    for question in ("my secret is alpha", "hello from B"):
        use_model(monkeypatch, ScriptedModel([reply("noted")]))
        type_lines(monkeypatch, [question, "/exit"])
        assert main(["chat"]) == 0
    first, second = DiskStore().sessions()
    assert first.id != second.id
    assert [m["content"] for m in DiskStore().messages(second.id) if m["role"] == "user"] == ["hello from B"]


def test_chat_ends_on_exit_and_on_ctrl_d(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = ScriptedModel([])
    use_model(monkeypatch, model)
    for lines in (["/exit", "never read"], []):
        type_lines(monkeypatch, lines)
        assert main(["chat"]) == 0
    assert model.requests == []  # "/exit" is not a question for the model
    assert DiskStore().runs() == []


def test_a_chat_run_interrupted_by_ctrl_c_names_its_run_id_and_resumes(
        in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_model(monkeypatch, ScriptedModel([interrupt]))
    type_lines(monkeypatch, ["What is 17*23?"])
    assert main(["chat", "--session", "s2"]) == 130
    record, = DiskStore().runs(session="s2")
    assert record.status == "running"
    err = capsys.readouterr().err
    assert f"`python -m react_agent resume {record.run_id}`" in err and "RUN_ID" not in err

    resumed = ScriptedModel([tool_call("calculate", {"expression": "17*23"}), reply("391")])
    use_model(monkeypatch, resumed)
    assert main(["resume", record.run_id, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["output"]) == ("completed", "391")
    assert resumed.requests[0].messages[-1]["content"] == "What is 17*23?"
    assert [t["function"]["name"] for t in resumed.requests[0].tools] == ["calculate", "convert_units"]


def test_a_chat_on_a_task_file_stores_what_resume_needs(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_model(monkeypatch, ScriptedModel([reply("hello")]))
    type_lines(monkeypatch, ["hi"])
    assert main(["chat", str(ROOT / "tasks" / "quickstart.yaml"), "--session", "s3"]) == 0
    record, = DiskStore().runs(session="s3")
    assert record.metadata["task_file"] == str(ROOT / "tasks" / "quickstart.yaml")
    assert record.agent == "calculator"


def test_ctrl_c_with_no_open_run_says_there_is_nothing_to_resume(
        in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def ctrl_c(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", ctrl_c)
    use_model(monkeypatch, ScriptedModel([]))
    assert main(["chat"]) == 130
    assert "no run was left open" in capsys.readouterr().err


# -- flags ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--log", "json", "sessions", "list"], ["sessions", "list", "--log", "json"]])
def test_log_works_before_and_after_the_command(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(log_module, "configure_logging", lambda level, json: calls.append((level, json)))
    assert main(argv) == 0
    assert calls == [("INFO", True)]


def test_every_flag_of_every_command_has_help() -> None:
    parser = _parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"run", "chat", "tools", "sessions", "runs", "usage", "approve", "deny", "resume", "eval",
                             "serve", "show", "batch"}
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    assert "3    could not run" in parser.format_help() and "3    could not run" in commands["eval"].format_help()


# -- could not run ----------------------------------------------------------------------------------
TASKS = """
agent: {name: solo, instructions: Answer briefly.}
tools_dir: tools
tasks:
  - {name: hello, input: hi}
"""


def test_an_unreachable_server_exits_3_naming_the_url(
        in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "tasks.yaml").write_text(TASKS)
    down = ModelHTTPError(None, None, "APIConnectionError: Connection error.",
                          url="http://127.0.0.1:9/v1/chat/completions")
    use_model(monkeypatch, ScriptedModel([down]))
    assert main(["run", "tasks.yaml"]) == 3
    err = capsys.readouterr().err
    assert err == ("could not run: model request to http://127.0.0.1:9/v1/chat/completions failed "
                   "(connection failed): APIConnectionError: Connection error.\n")

    use_model(monkeypatch, ScriptedModel([reply("no")]))  # it ran; the check failed: 1, not 3
    (in_tmp / "tasks.yaml").write_text(TASKS.replace("input: hi}", "input: hi, expect_contains: sunny}"))
    assert main(["run", "tasks.yaml"]) == 1


def test_eval_against_an_unreachable_server_exits_3(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (in_tmp / "suite.yaml").write_text(TASKS)
    use_model(monkeypatch, ScriptedModel([ModelHTTPError(503, None, "unavailable", url="http://h/v1")]))
    assert main(["eval", "suite.yaml"]) == 3


@pytest.mark.filterwarnings("ignore:the base URL .* carries user.password:UserWarning")  # user info on purpose
async def test_a_connection_error_names_the_url_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    real_client = openai.AsyncOpenAI
    monkeypatch.setattr(openai, "AsyncOpenAI", lambda **kwargs: real_client(
        **{**kwargs, "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(refuse))}))
    model = OpenAIModel("gpt-4o-mini", base_url="http://user:hunter2@mock:8080/v1?api-key=s3cret", api_key="x",
                        max_retries=0)
    result = await Agent(model=model).run("hi")
    assert result.error_type == "ModelHTTPError"
    assert result.error is not None and "model request to http://mock:8080/v1/chat/completions failed" in result.error
    assert "hunter2" not in result.error and "s3cret" not in result.error


# -- prompts ----------------------------------------------------------------------------------------
def test_a_missing_template_names_the_task_file_and_field_and_each_folder_once(
        in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "tasks").mkdir()
    task_file = in_tmp / "tasks" / "t.yaml"
    task_file.write_text(TASKS.replace("instructions: Answer briefly.", "instructions: nope.j2")
                         + f"prompts: [{default_prompt_dir()}, {default_prompt_dir()}/.]\n")
    assert main(["run", str(task_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {task_file}: agent 'solo'.instructions: ")
    assert "nope.j2" in err and "not found" in err and "\n" not in err
    assert err.count(str(default_prompt_dir())) == 1


def test_a_library_agent_names_its_setting() -> None:
    with pytest.raises(PromptError) as info:
        Agent(name="bot", instructions="nope.j2", model=object()).system_prompt()  # type: ignore[arg-type]
    assert str(info.value).startswith("agent 'bot'.instructions: prompt template 'nope.j2'")
    with pytest.raises(PromptError, match=r"^agent 'bot'.system_template: prompt template 'gone.j2'"):
        Agent(name="bot", system_template="gone.j2", model=object()).system_prompt()  # type: ignore[arg-type]
    assert Prompts([default_prompt_dir(), default_prompt_dir()]).search_path == [default_prompt_dir().resolve()]


# -- tools and sessions -----------------------------------------------------------------------------
def test_tools_shows_the_whole_first_paragraph_wrapped_at_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sentence = ("Look up a customer's order by its number and report its status, carrier, tracking number "
                "and the expected delivery date. Use it whenever the customer names an order.")
    (tmp_path / "orders.py").write_text(
        f'from react_agent import tool\n\n@tool\ndef lookup(order_id: str) -> str:\n    """{sentence}\n\n'
        '    A second paragraph the listing leaves out.\n\n    Args:\n        order_id: the number.\n    """\n'
        '    return order_id\n')
    assert main(["tools", "--plugins", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    body = [line for line in out.splitlines() if line.startswith("    ")]
    assert " ".join(line.strip() for line in body) == sentence
    words = set(sentence.split())
    assert all(word in words for line in body for word in line.split())  # no word cut in two
    assert "second paragraph" not in out
    assert first_paragraph("a\nb\n\nc", width=80) == "    a b"


def test_sessions_list_has_a_header(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "list"]) == 0
    assert capsys.readouterr().out.startswith("0 session(s) in ")
    use_model(monkeypatch, ScriptedModel([reply("hello")]))
    type_lines(monkeypatch, ["hi"])
    main(["chat", "--session", "s4"])
    capsys.readouterr()
    assert main(["sessions", "list"]) == 0
    where, header, row = capsys.readouterr().out.splitlines()
    assert where.startswith("1 session(s) in ")
    assert header.split("\t") == ["SESSION", "MESSAGES", "AGENT", "USER", "CREATED"]
    assert row.split("\t")[:4] == ["s4", "2", "assistant", "-"]


# -- the local server's log -------------------------------------------------------------------------
def _server(tmp_path: Path, code: str) -> LocalServer:
    log_path = server_log_path(1234)
    with log_path.open("wb") as log:
        process: subprocess.Popen[bytes] = subprocess.Popen([sys.executable, "-c", code], stdout=log,
                                                            stderr=subprocess.STDOUT)
    return LocalServer(tmp_path / "m.gguf", 1234, process, log_path, 0.0)


def test_the_local_server_log_lives_under_the_home_and_goes_on_a_clean_stop(tmp_path: Path) -> None:
    assert server_log_path(1234) == (tmp_path / "home" / "logs" / "llama-1234.log").resolve()
    server = _server(tmp_path, "import time; print('serving', flush=True); time.sleep(60)")
    server.stop()
    assert not server.log_path.exists()


def test_a_server_that_died_keeps_its_log_and_the_error_names_it(tmp_path: Path) -> None:
    server = _server(tmp_path, "import sys; print('out of memory'); sys.exit(7)")
    server.process.wait()
    error = str(server.died())
    assert f"its log {server.log_path} ends: out of memory" in error and "code 7" in error
    server.stop()
    assert server.log_path.exists()


def test_output_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """`sessions list | head` must not end in a BrokenPipeError traceback: exit 141, nothing on stderr."""
    store = DiskStore(tmp_path / "home" / "store")
    for n in range(3000):  # more than a pipe holds, so the writer meets the closed end
        store.create_session(f"session-{n:05d}-{'x' * 40}")
    store.close()
    env = {"PATH": "/usr/bin:/bin", "REACT_AGENT_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([sys.executable, "-m", "react_agent", "sessions", "list"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"3000 session(s)")
    process.stdout.close()  # like `head -1`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr
    assert stderr == ""


@pytest.mark.parametrize("argv", [["tools"], ["run", "tasks/quickstart.yaml", "--replay", "--task", "multiply"]])
def test_rich_output_into_a_closed_pipe_exits_141_too(tmp_path: Path, argv: list[str]) -> None:
    """Commands printing through rich met a closed pipe with rich's own ``SystemExit(1)`` — the code of a
    failed check. The reader here is gone before the command writes anything."""
    read, write = os.pipe()
    os.close(read)
    env = {"PATH": "/usr/bin:/bin", "REACT_AGENT_HOME": str(tmp_path / "home")}
    try:
        process = subprocess.run([sys.executable, "-m", "react_agent", *argv], cwd=ROOT, env=env, stdout=write,
                                 stderr=subprocess.PIPE, timeout=120, check=False)
    finally:
        os.close(write)
    assert process.returncode == 141, process.stderr.decode()
    assert process.stderr.decode() == ""
