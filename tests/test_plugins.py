"""Plugin discovery: good files load, broken ones are reported with file and reason."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from react_agent import Agent, DuplicateToolError, tool
from react_agent.plugins import discover

GOOD = '''
from react_agent import tool

@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"

@tool(name="forecast")
async def tomorrow(city: str) -> str:
    """Tomorrow's weather."""
    return f"rain in {city}"

helper = 42
'''

BROKEN = {
    "syntax.py": "def oops(:\n    pass\n",
    "needs_lib.py": "import a_module_that_is_not_installed_anywhere\n",
    "raises.py": "from react_agent import tool\n\nraise ImportError('backend missing')\n",
    "no_doc.py": "from react_agent import tool\n\n@tool\ndef undocumented(x: int) -> int:\n    return x\n",
    "untyped.py": "from react_agent import tool\n\n@tool\ndef loose(x):\n    '''Has a doc.'''\n    return x\n",
}


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def plugins(tmp_path) -> Path:
    return write(tmp_path / "plugins", {"good.py": GOOD, "_private.py": "raise SystemExit", **BROKEN})


def test_good_plugins_load_and_bad_ones_are_skipped(plugins):
    found = discover([plugins], use_entry_points=False)
    assert sorted(found.tools) == ["forecast", "weather"]
    assert found.tools["weather"].source == str(plugins / "good.py")
    reasons = {Path(s.source).name: s.reason for s in found.skipped}
    assert sorted(reasons) == sorted(BROKEN)  # _private.py is not imported at all
    assert reasons["syntax.py"].startswith("SyntaxError:")
    assert "(line 1)" in reasons["syntax.py"]
    assert reasons["needs_lib.py"].startswith("ModuleNotFoundError: No module named")
    assert reasons["raises.py"] == "ImportError: backend missing (line 3)"
    assert reasons["no_doc.py"] == "bad tool 'undocumented': a tool needs a docstring " \
                                   "(the model reads it as the description)"
    assert reasons["untyped.py"] == "bad tool 'loose': parameter 'x' has no type annotation"


async def test_discovered_tools_run(plugins):
    found = discover([plugins], use_entry_points=False)
    assert (await found.tools["forecast"].invoke('{"city": "Oslo"}')).content == "rain in Oslo"


def test_a_missing_folder_is_reported(tmp_path):
    found = discover([tmp_path / "nowhere"], use_entry_points=False)
    assert found.tools == {}
    assert [(s.source, s.reason) for s in found.skipped] == [
        (str(tmp_path / "nowhere"), "plugin folder does not exist")]


def test_two_tools_with_one_name_name_both_files(tmp_path):
    first = write(tmp_path / "first", {"weather_a.py": GOOD})
    second = write(tmp_path / "second", {"weather_b.py": GOOD.replace("forecast", "forecast_b")})
    with pytest.raises(DuplicateToolError) as info:
        discover([first, second], use_entry_points=False)
    error = info.value
    assert error.name == "weather"
    assert (error.first, error.second) == (str(first / "weather_a.py"), str(second / "weather_b.py"))
    assert str(first / "weather_a.py") in str(error)
    assert str(second / "weather_b.py") in str(error)


def test_imported_tools_are_not_claimed_by_the_importing_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(write(tmp_path / "lib", {"shared_weather.py": GOOD})))
    folder = write(tmp_path / "plugins", {"reexport.py": "from shared_weather import weather\n"})
    try:
        found = discover([folder], use_entry_points=False)
    finally:
        sys.modules.pop("shared_weather", None)
    assert found.tools == {}
    assert found.skipped == []


def test_agent_loads_plugins_and_rejects_a_clash_with_its_own_tools(plugins):
    agent = Agent(plugins=[plugins], model=object())
    assert {"weather", "forecast"} <= set(agent.tools)

    @tool
    def weather(city: str) -> str:
        """Mine."""
        return city

    with pytest.raises(DuplicateToolError, match="two tools are named 'weather'"):
        Agent(tools=[weather], plugins=[plugins], model=object())
