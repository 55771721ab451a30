"""Shared fixtures and helpers for the core unit tests. Nothing here touches the network."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from react_agent.memory import Store
from react_agent.testing import ScriptedModel


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Each test gets its own store folder and no model configuration from the environment."""
    monkeypatch.setenv("REACT_AGENT_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REACT_AGENT_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    s.close()


def history_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Why ``messages`` is not a valid Chat Completions history ([] when it is): every assistant tool
    call must be followed, right after that assistant message, by exactly one tool message with its id,
    and no tool message may stand anywhere else."""
    problems = []
    i = 0
    while i < len(messages):
        message = messages[i]
        if message["role"] == "tool":
            problems.append(f"#{i}: tool message {message.get('tool_call_id')!r} answers no open tool call")
            i += 1
            continue
        i += 1
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        expected = Counter(call["id"] for call in message["tool_calls"])
        answered: Counter[str] = Counter()
        while i < len(messages) and messages[i]["role"] == "tool":
            answered[messages[i]["tool_call_id"]] += 1
            i += 1
        if answered != expected:
            problems.append(f"assistant tool calls {dict(expected)} answered by {dict(answered)}")
    return problems


def assert_valid_history(model: ScriptedModel) -> None:
    """Every request the model got had a valid history (and there was at least one request)."""
    assert model.requests, "the model was never asked"
    for n, request in enumerate(model.requests):
        assert request.messages[0]["role"] == "system"
        assert history_problems(request.messages) == [], f"request #{n}"
