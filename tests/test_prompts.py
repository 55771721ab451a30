"""Jinja2 prompts: StrictUndefined, clear PromptErrors, and the default ReAct system prompt."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from react_agent import Agent, PromptError, tool
from react_agent.prompts import Prompts, default_prompt_dir
from react_agent.testing import ScriptedModel


@pytest.fixture
def prompt_dir(tmp_path):
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "greet.j2").write_text("Hello {{ name }}, welcome to {{ shop }}.\n")
    (folder / "broken.j2").write_text("{% if %}\n")
    return folder


@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return order_id


def test_render_with_all_variables(prompt_dir):
    assert Prompts([prompt_dir]).render("greet.j2", name="Ann", shop="Acme") == "Hello Ann, welcome to Acme."


def test_a_missing_variable_names_the_template(prompt_dir):
    with pytest.raises(PromptError) as info:
        Prompts([prompt_dir]).render("greet.j2", name="Ann")
    assert info.value.template == "greet.j2"
    assert "missing variable" in info.value.reason
    assert "shop" in info.value.reason
    assert str(info.value).startswith("prompt template 'greet.j2':")


def test_a_missing_template(prompt_dir):
    with pytest.raises(PromptError) as info:
        Prompts([prompt_dir]).render("nope.j2")
    assert info.value.template == "nope.j2"
    assert "template not found" in info.value.reason
    assert str(prompt_dir) in info.value.reason


def test_a_syntax_error(prompt_dir):
    with pytest.raises(PromptError, match="syntax error at line 1") as info:
        Prompts([prompt_dir]).render("broken.j2")
    assert info.value.template == "broken.j2"


def test_user_folders_come_before_the_defaults(tmp_path):
    (tmp_path / "react_system.j2").write_text("custom for {{ agent_name }}")
    assert Prompts([tmp_path]).render("react_system.j2", agent_name="bot") == "custom for bot"
    assert (default_prompt_dir() / "react_system.j2").is_file()


def test_instructions_are_text_or_a_template(prompt_dir):
    prompts = Prompts([prompt_dir])
    assert prompts.instructions("Be brief.") == "Be brief."
    assert prompts.instructions("greet.j2", name="Bo", shop="X") == "Hello Bo, welcome to X."
    assert prompts.instructions(str(prompt_dir / "greet.j2"), name="Bo", shop="X") == "Hello Bo, welcome to X."
    with pytest.raises(PromptError, match="is not a file"):
        prompts.instructions("elsewhere/missing.j2")
    with pytest.raises(PromptError, match="missing variable"):
        prompts.instructions("greet.j2", name="Bo")


def test_default_system_prompt_lists_the_tools():
    text = Agent("support", "Help customers.", tools=[refund], model=object()).system_prompt()
    assert text.startswith("You are support, an agent that solves tasks step by step with tools.")
    assert "Help customers." in text
    assert "- refund: Refund an order." in text
    assert "JSON schema" not in text


def test_default_system_prompt_without_tools_and_with_an_output_schema():
    class Answer(BaseModel):
        verdict: str

    text = Agent(model=object(), output_type=Answer).system_prompt()
    assert "You can use these tools" not in text
    assert "reply with the final answer" in text
    assert '"verdict"' in text


def test_agent_instructions_template_gets_variables(prompt_dir):
    agent = Agent(instructions="greet.j2", prompts=[prompt_dir], variables={"shop": "Acme"}, model=object())
    assert "Hello Cy, welcome to Acme." in agent.system_prompt({"name": "Cy"})
    with pytest.raises(PromptError, match=r"greet\.j2"):
        agent.system_prompt()


async def test_a_missing_template_fails_before_anything_is_written(store):
    agent = Agent(instructions="nope.j2", model=ScriptedModel([]), store=store)
    with pytest.raises(PromptError, match=r"nope\.j2"):
        await agent.run("hi", session="s1")
    assert store.sessions() == [] and store.runs() == []
