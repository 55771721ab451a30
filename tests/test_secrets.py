"""No credential reaches a file or a tool's subprocess: the rule in react_agent/redact.py, a recording made
against a loopback server with a fake key in every place, and the code-review tools' child processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from conftest import load_mock_server

from react_agent import Agent, tool
from react_agent.model import OpenAIModel, split_query
from react_agent.recording import cassette
from react_agent.redact import redact_url, safe_env, secret_name

# These URLs carry user:password on purpose (what must never reach a file or a message); the
# warning that the key is then not sent is tested in test_model_error_urls.py.
pytestmark = pytest.mark.filterwarnings("ignore:the base URL .* carries user.password:UserWarning")

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-FAKEKEY123456789012345"
USER_KEY = "sk-FAKEUSERINFO98765432109876"
QUERY_KEY = "sk-FAKEQUERY11112222333344445555"
TOKEN = "tok-FAKETOKEN5555666677778888"
ENV_KEY = "sk-FAKEENV000011112222333344445"
FAKES = (KEY, USER_KEY, QUERY_KEY, TOKEN, ENV_KEY)
SCENARIO = "/row=secrets/mode=add/steps=1/v1"  # the mock server: one ``add`` call, then an answer


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("name", ["key", "api-key", "api_key", "apikey", "X-Api-Key", "subscription-key", "token",
                                  "access_token", "sig", "signature", "SECRET", "client_secret", "password",
                                  "passwd", "pwd", "auth", "Authorization", "code", "X-Amz-Credential",
                                  "OPENAI_API_KEY", "FOO_TOKEN", "BAR_SECRET", "DB_PASSWORD"])
def test_secret_looking_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize("name", ["api-version", "model", "format", "PATH", "HOME", "LANG", "LC_ALL",
                                  "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "TMPDIR"])
def test_ordinary_names(name: str) -> None:
    assert not secret_name(name)


@pytest.mark.parametrize(("url", "expected"), [
    (f"http://user:{KEY}@127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080/v1/chat/completions"),
    (f"https://{KEY}@api.example.com/v1/chat/completions", "https://api.example.com/v1/chat/completions"),
    (f"https://h/v1/chat/completions?api-key={KEY}&api-version=2024-10-21&Token={TOKEN}",
     "https://h/v1/chat/completions?api-version=2024-10-21"),
    (f"https://h/v1/chat/completions?sig={KEY}&code=1#frag", "https://h/v1/chat/completions"),
    ("https://h/v1/chat/completions", "https://h/v1/chat/completions"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_split_query_keeps_the_path_a_path() -> None:
    assert split_query(f"http://h/v1?api-key={KEY}&api-version=2") == ("http://h/v1", {"api-key": KEY,
                                                                                      "api-version": "2"})
    assert split_query("http://h/v1") == ("http://h/v1", {})
    assert split_query(None) == (None, {})


def test_safe_env_keeps_what_a_program_needs_and_no_credential() -> None:
    environ = {"PATH": "/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "TMPDIR": "/tmp",
               "PYTHONPATH": "/src", "PYTHONHASHSEED": "0", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://h",
               "FOO_TOKEN": TOKEN, "BAR_SECRET": "s", "X_API_KEY": "k", "AWS_ACCESS_KEY_ID": "a",
               "AWS_REGION": "eu", "GITHUB_TOKEN": "g", "PYTHON_KEYRING_PASSWORD": "p", "EDITOR": "vi"}
    assert safe_env({"PYTHONDONTWRITEBYTECODE": "1"}, environ=environ) == {
        "PATH": "/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "TMPDIR": "/tmp",
        "PYTHONPATH": "/src", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def test_safe_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("PATH", "/opt/bin")
    env = safe_env()
    assert env["PATH"] == "/opt/bin" and "OPENAI_API_KEY" not in env


# --------------------------------------------------------------------------- a recording with keys everywhere



@pytest.fixture(scope="module")
def mock_port() -> Iterator[int]:
    with load_mock_server().MockServer(idle_timeout=60) as server:
        yield server.port


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first number.
        b: the second number.
    """
    return a + b


def keyed_url(host: str) -> str:
    return f"http://user:{USER_KEY}@{host}{SCENARIO}?api-key={QUERY_KEY}&token={TOKEN}&api-version=2024-10-21"


def make_agent(configured_by: str, host: str, today: str, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    if configured_by == "environment":
        monkeypatch.setenv("OPENAI_BASE_URL", keyed_url(host))
        model: OpenAIModel | str = "mock-model"
    else:
        model = OpenAIModel("mock-model", base_url=keyed_url(host), api_key=KEY, max_retries=0)
    return Agent(name="adder", instructions="Add with the add tool.", tools=[add], model=model,
                 variables={"today": today})


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])
@pytest.mark.parametrize("configured_by", ["arguments", "environment"])
async def test_no_key_reaches_a_cassette_and_it_replays(
    configured_by: str, mock_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.yaml"
    with cassette(path, "record", "mock-model") as tape:
        recorded = await make_agent(configured_by, f"127.0.0.1:{mock_port}", tape.today, monkeypatch).run("1 + 0?")
    assert recorded.status == "completed", recorded.error  # the server saw /v1/chat/completions, not /v1?...
    assert [c.name for c in recorded.tool_calls] == ["add"]

    text = path.read_text(encoding="utf-8")
    leaked = [fake for fake in FAKES if fake in text]
    assert not leaked, f"keys in the cassette: {leaked}"
    interactions = yaml.safe_load(text)["interactions"]
    assert len(interactions) == 2
    for interaction in interactions:
        uri = urlsplit(interaction["request"]["uri"])
        assert uri.path == f"{SCENARIO}/chat/completions"
        assert "@" not in uri.netloc and uri.username is None and uri.password is None
        assert parse_qs(uri.query) == {"api-version": ["2024-10-21"]}
        assert set(interaction["request"]["headers"]) == {"content-type"}
        assert set(interaction["response"]["headers"]) <= {"content-type"}

    # replay: the live request still carries its userinfo and keys; the host cannot be reached
    with cassette(path, "replay") as tape:
        replayed = await make_agent(configured_by, "replay.invalid", tape.today, monkeypatch).run("1 + 0?")
    assert replayed.status == "completed" and replayed.output == recorded.output
    assert all(tape.raw.play_counts[i] == 1 for i in range(len(interactions)))


# --------------------------------------------------------------------------- tool subprocesses


@pytest.fixture
def leaky_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    secrets = {"OPENAI_API_KEY": ENV_KEY, "FOO_TOKEN": TOKEN, "BAR_SECRET": "bar-secret-value",
               "X_API_KEY": "x-api-key-value", "AWS_SECRET_ACCESS_KEY": "aws-secret-value"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    return secrets


async def test_run_tests_child_sees_no_credential(tools: Any, tmp_path: Path, leaky_env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    seen = tmp_path / "child_env.json"
    (project / "conftest.py").write_text(
        f"import json, os\nwith open({str(seen)!r}, 'w') as f:\n    json.dump(dict(os.environ), f)\n")
    (project / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    monkeypatch.setenv("REACT_AGENT_REVIEW_ROOT", str(project))

    assert await tools["run_tests"]() == "1 passed"
    child = json.loads(seen.read_text())
    assert not set(leaky_env) & set(child), f"credentials reached the reviewed project: {set(leaky_env) & set(child)}"
    assert not [value for value in leaky_env.values() if value in json.dumps(child)]
    assert child["PATH"] and child["PYTHONDONTWRITEBYTECODE"] == "1"


async def test_check_security_child_sees_no_credential(tools: Any, leaky_env: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    envs: list[dict[str, str]] = []

    def fake_run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        envs.append(options.get("env") or {})
        assert options.get("env") is not None, "a tool subprocess must get an explicit environment"
        return subprocess.CompletedProcess(command, 0, "[]", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert (await tools["check_security"]()).startswith("No security findings")
    assert len(envs) == 1 and envs[0]["PATH"]
    assert not set(leaky_env) & set(envs[0])
