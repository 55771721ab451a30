"""MCP tool servers as tool sources (the official ``mcp`` SDK, the ``mcp`` extra).

``Agent(mcp_servers=[MCPServerStdio("python", ["server.py"]), MCPServerHTTP("http://127.0.0.1:8000/mcp")])``:
each server's tools become ``Tool`` objects that go through the loop like local ones — arguments
validated against the server's own JSON schema (``jsonschema``), a timeout per call, retries, error
observations, parallel calls — and their output is untrusted (fenced) unless the server is declared
``untrusted_output=False``.

A server is connected when a run starts and closed when it ends, unless the agent holds it open
(``async with agent:`` … or ``await agent.open()`` / ``await agent.aclose()``): then every run of that
agent uses the same connection (the same server process for stdio). Starting is bounded by
``start_timeout``: a server that does not answer in time, or exits, is an ``MCPServerError`` naming the
server and the end of its stderr, with nothing written. A server that dies during a run fails the calls
made to it (an observation the model reads), bounded by the tool timeout.

The connection lives in a task of its own (the SDK's transports must be entered and left in one
task); tools call it from theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import RootModel, model_validator

from .errors import RunError, UserError
from .tools import Tool

if TYPE_CHECKING:
    import mcp

__all__ = ["MCPServer", "MCPServerError", "MCPServerHTTP", "MCPServerStdio", "MCPToolError", "schema_tool"]

_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
INSTALL = "pip install 'react-agent[mcp]'"


@dataclass
class MCPServerError(UserError, RunError):
    """An MCP server could not be started or listed (or the ``mcp`` extra is missing)."""

    server: str
    reason: str

    def __str__(self) -> str:
        return f"MCP server {self.server!r}: {self.reason}"


@dataclass
class MCPToolError(RunError):
    """A call to an MCP tool failed: the server said so (``isError``), or the connection did."""

    server: str
    tool: str
    message: str

    def __str__(self) -> str:
        return self.message


def _jsonschema_validator(schema: dict[str, Any]) -> Any:
    import jsonschema  # noqa: PLC0415 - comes with the mcp extra

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


def schema_tool(name: str, description: str, parameters: dict[str, Any], fn: Any, **options: Any) -> Tool:
    """A ``Tool`` whose JSON schema is ``parameters`` as given: the model's arguments are checked against
    it with ``jsonschema``, and ``fn(arguments)`` gets exactly the object the model sent (nothing added).
    (A minimal adapter; ``Tool.from_schema`` is the general one.)"""
    validator = _jsonschema_validator(parameters)

    class Arguments(RootModel[dict[str, Any]]):
        @model_validator(mode="after")
        def _matches_schema(self) -> Arguments:
            errors = sorted(validator.iter_errors(self.root), key=lambda e: list(e.absolute_path))
            if errors:
                raise ValueError("; ".join(_describe(e) for e in errors))
            return self

    Arguments.__name__ = f"{name}_arguments"

    async def call(root: dict[str, Any]) -> Any:
        return await fn(root)

    schema = {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}
    return Tool(fn=call, name=name, description=description, args_model=Arguments, _schema=schema, **options)


def _render(result: Any) -> str:
    """What the model sees of a ``CallToolResult``: its text blocks, else its structured content; other
    blocks (images, audio, resources) are named, not inlined."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind} content: {getattr(block, 'mime_type', None) or getattr(block, 'uri', '')}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


class MCPServer:
    """One MCP server: its connection, and its tools as ``Tool`` objects. Use ``MCPServerStdio`` or
    ``MCPServerHTTP``.

    ``prefix`` goes before each tool's name (two servers with a ``search`` tool); ``tools`` keeps only the
    named ones; ``timeout`` (seconds) bounds each call, ``max_retries`` the failures in a row;
    ``untrusted_output`` (default ``True``) fences their output as data; ``side_effects`` marks every tool
    of the server (default: what a tool's annotations say — ``destructiveHint``, or ``readOnlyHint:
    false`` — else none)."""

    def __init__(self, name: str, *, prefix: str = "", tools: Sequence[str] | None = None,
                 timeout: float | None = 60.0, start_timeout: float = 30.0, max_retries: int = 3,
                 untrusted_output: bool = True, side_effects: bool | None = None) -> None:
        self.name = name
        self.prefix = prefix
        self.only = list(tools) if tools is not None else None
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.max_retries = max_retries
        self.untrusted_output = untrusted_output
        self.side_effects = side_effects
        self.tools: list[Tool] = []
        self.died: str | None = None  # why the connection ended on its own
        self._client: mcp.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._users = 0  # runs using the connection now
        self._held = False  # kept open across runs (``Agent.open`` / ``async with agent``)
        self._errlog: Any = None
        self._process: Any = None  # a stdio server's child, once spawned (see ``_watch_spawns``)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def source(self) -> str:
        return f"mcp:{self.name}"

    @property
    def connected(self) -> bool:
        task = self._task
        if task is None or task.done() or self._client is None:
            return False
        try:
            return task.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def _transport(self) -> Any:
        raise NotImplementedError

    def _stderr_tail(self) -> str:
        if self._errlog is None:
            return ""
        try:
            self._errlog.seek(0)
            text: str = self._errlog.read()[-600:].strip()
        except (OSError, ValueError):
            return ""
        return f"; its stderr ends: {text}" if text else ""

    # -- lifetime -----------------------------------------------------------------------------------
    async def connect(self) -> list[Tool]:
        """Start (or reuse) the connection and list the tools; ``MCPServerError`` if that fails in time."""
        if self.connected:
            return self.tools
        try:
            import mcp  # noqa: PLC0415, F401 - the extra
        except ImportError:
            raise MCPServerError(self.name, f"the mcp extra is not installed: {INSTALL}") from None
        self.died = None
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[Any]] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._own(ready, self._stop), name=f"mcp-server-{self.name}")
        try:
            async with asyncio.timeout(self.start_timeout):
                listed = await asyncio.shield(ready)
        except TimeoutError:
            self._kill()  # it never answered: no grace period for a polite exit (the SDK's is 2 s)
            tail = await self._end()
            _retrieved(ready)
            raise MCPServerError(self.name, f"did not answer within {self.start_timeout:g}s{tail}") from None
        except Exception as exc:  # noqa: BLE001 - whatever the transport raised, said in one line
            tail = await self._end()
            raise MCPServerError(self.name, f"could not be started: {_why(exc)}{tail}") from None
        self.tools = [self._tool(t) for t in listed if self.only is None or t.name in self.only]
        return self.tools

    async def _own(self, ready: asyncio.Future[list[Any]], stop: asyncio.Event) -> None:
        """The connection's task: enter the client, list the tools, wait until told to stop."""
        import mcp  # noqa: PLC0415

        try:
            async with mcp.Client(self._transport(), read_timeout_seconds=self.timeout) as client:
                listed: list[Any] = []
                cursor: str | None = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self._client = client
                ready.set_result(listed)
                await stop.wait()
        except BaseException as exc:  # handed to ``connect``, or kept in ``died``; a cancel goes on
            if not ready.done():
                if isinstance(exc, asyncio.CancelledError):  # ``connect`` gave up (or is cancelled): no
                    ready.cancel()  # exception left on a future nobody reads ("never retrieved")
                else:
                    ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(_why(exc)))
            elif not stop.is_set():
                self.died = _why(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._client = None

    def _kill(self) -> None:
        """Kill a stdio server's process (its process group on POSIX) at once; nothing for other kinds."""

    async def _end(self) -> str:
        """Stop the connection's task (and a stdio server's process); the end of its stderr."""
        task, self._task = self._task, None
        if self._stop is not None:
            self._stop.set()
        if task is not None and not task.done():
            if self._client is None:  # still starting: nothing waits on ``stop`` yet
                task.cancel()
            with contextlib.suppress(Exception):
                done, _ = await asyncio.wait({task}, timeout=10)
                if not done:
                    task.cancel()
                    await asyncio.wait({task}, timeout=5)
        self._process = None
        tail = self._stderr_tail()
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None
        return tail

    async def close(self) -> None:
        """Close the connection (a stdio server's process is stopped)."""
        self._held = False
        self._users = 0
        await self._end()

    async def acquire(self, *, hold: bool = False) -> list[Tool]:
        """A run (or ``hold``: the agent) uses the server from now on."""
        tools = await self.connect()
        if hold:
            self._held = True
        else:
            self._users += 1
        return tools

    async def release(self) -> None:
        """A run is done with the server; the last one out closes it unless it is held."""
        self._users = max(self._users - 1, 0)
        if self._users == 0 and not self._held:
            await self._end()

    async def __aenter__(self) -> MCPServer:
        await self.acquire(hold=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- tools ------------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """Call ``tool`` on the server; a failure is ``MCPToolError`` (an observation for the model)."""
        client = self._client if self.connected else None
        if client is None:
            why = f": {self.died}" if self.died else ""
            raise MCPToolError(self.name, tool, f"MCP server {self.name!r} is not running{why}{self._stderr_tail()}")
        try:
            result = await client.call_tool(tool, arguments)
        except Exception as exc:
            raise MCPToolError(self.name, tool, f"MCP server {self.name!r} failed the call: {_why(exc)}") from exc
        text = _render(result)
        if result.is_error:
            raise MCPToolError(self.name, tool, text or "the tool reported an error")
        return text

    def _tool(self, listed: Any) -> Tool:
        name = _INVALID.sub("_", f"{self.prefix}{listed.name}")[:64]
        hints = listed.annotations
        side_effects = self.side_effects
        if side_effects is None:
            side_effects = bool(hints and (hints.destructive_hint or hints.read_only_hint is False))
        idempotent = hints.idempotent_hint if hints and hints.idempotent_hint is not None else None

        async def run(arguments: dict[str, Any]) -> str:
            return await self.call(listed.name, arguments)

        description = (listed.description or "").strip() or f"The {listed.name} tool of MCP server {self.name}."
        made = schema_tool(name, description, dict(listed.input_schema), run, timeout=self.timeout,
                           max_retries=self.max_retries, source=self.source, side_effects=side_effects,
                           idempotent=idempotent, untrusted_output=self.untrusted_output)
        return made


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen: nobody else will read it."""
    if future.done() and not future.cancelled():
        future.exception()


def _why(exc: BaseException) -> str:
    """An exception in one line; an exception group by its first leaf (anyio wraps transport errors)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class MCPServerStdio(MCPServer):
    """A server started as a child process and spoken to over its stdin/stdout. The child's environment
    is the SDK's safe default (``PATH``, ``HOME``, … — no credentials) plus ``env``; its stderr is kept
    to explain a failure."""

    def __init__(self, command: str, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None, name: str | None = None, **options: Any) -> None:
        super().__init__(name or Path(command).name, **options)
        self.command = command
        self.args = list(args)
        self.env = dict(env or {})
        self.cwd = cwd

    def _transport(self) -> Any:
        from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: PLC0415

        self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in _end
        params = StdioServerParameters(command=self.command, args=self.args, env=self.env or None, cwd=self.cwd)
        self._process = None
        _watch_spawns()
        _spawned.set(self)  # in the connection's own task (its own context): only this server's spawn
        return stdio_client(params, errlog=self._errlog)

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(OSError, ProcessLookupError):
            if sys.platform != "win32":
                os.killpg(process.pid, signal.SIGKILL)  # the SDK starts it in a new session: pgid == pid
            else:  # pragma: no cover - the SDK's Windows job object ends the tree when it closes
                process.kill()


_spawned: contextvars.ContextVar[MCPServerStdio | None] = contextvars.ContextVar("mcp_spawned", default=None)
_wrappers: list[Any] = []  # the SDK spawn function's wrapper, once made


def _watch_spawns() -> None:
    """Let a stdio server see its child process: the SDK's ``stdio_client`` keeps it to itself, and on
    leaving waits 2 s for a server that never answered to exit on its own (its stdin closed) before
    killing it, which a start timeout must not add. Wraps the SDK's spawn function once; the server
    being started in the current task (``_spawned``) is told the process. Without that function (another
    SDK version) nothing is wrapped: a timed-out start is then just slower to clean up."""
    import mcp.client.stdio as sdk  # noqa: PLC0415

    spawn = getattr(sdk, "_create_platform_compatible_process", None)
    if spawn is None or spawn in _wrappers:
        return

    async def watched(*args: Any, **kwargs: Any) -> Any:
        process = await spawn(*args, **kwargs)
        server = _spawned.get()
        if server is not None:
            server._process = process
        return process

    _wrappers.append(watched)
    sdk._create_platform_compatible_process = watched


class MCPServerHTTP(MCPServer):
    """A server at a streamable-HTTP URL (``http://host:port/mcp``); ``headers`` go with every request."""

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, name: str | None = None,
                 **options: Any) -> None:
        from .redact import redact_url  # noqa: PLC0415

        super().__init__(name or redact_url(url), **options)
        self.url = url
        self.headers = dict(headers or {})

    def _transport(self) -> Any:
        return _http_transport(self.url, self.headers)


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """The SDK's streamable-HTTP transport on an HTTP client with ``headers``, closed with it."""
    from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415
    from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: PLC0415 - the SDK's own defaults

    async with create_mcp_http_client(headers=headers or None) as client, \
            streamable_http_client(url, http_client=client) as streams:
        yield streams
