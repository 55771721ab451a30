"""Scripted, zero-latency, OpenAI-compatible Chat Completions mock server (stdlib only).

Run it as its own process so its CPU time is never charged to the client being measured::

    python bench/mock_server.py            # prints "PORT <n>" on stdout, then serves on 127.0.0.1

It exits by itself when its stdin closes (the parent exited) or after ``--idle-timeout`` seconds
without a request.

Scenario and accounting are chosen by ``key=value`` path segments in front of ``/v1``, so every
client library can select them through its ``base_url`` alone, e.g.::

    http://127.0.0.1:PORT/row=react_agent/mode=add/steps=20/v1

* ``row``   - accounting bucket (requests, request-body bytes, body size of every request);
  the ``X-Bench-Row`` header overrides it.
* ``mode``  - ``add`` (one ``add`` call per response until ``steps`` tool results exist, then a text
  answer) or ``parallel`` (the first response carries ``n`` calls to ``tool`` with arguments ``{"n": i}``,
  then a text answer).
* ``steps`` / ``n`` / ``tool`` - scenario parameters (defaults 20 / 8 / ``sleep_200ms``).

The number of completed steps is decided statelessly from the request body, so concurrent runs work:
it is the larger of the number of ``role == "tool"`` messages and ``1 + the highest step number``
found in the ids this server hands out (``call_s000017``). The second rule keeps long runs
correct when an agent trims its history, and covers agents (smolagents) that replay tool results as
plain user text. If the request offers a ``final_answer`` tool, the final answer is given by calling
it, as smolagents expects; otherwise it is a plain assistant text message.

Control endpoints: ``GET /stats`` (all buckets plus server CPU seconds), ``GET /stats/<row>``,
``POST /reset`` (clear all buckets).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

CALL_ID_RE = re.compile(rb"call_s(\d{6})")
JSONDict = dict[str, Any]


@dataclass
class RowStats:
    requests: int = 0
    body_bytes: int = 0
    body_sizes: list[int] = field(default_factory=list)

    def as_dict(self) -> JSONDict:
        return {"requests": self.requests, "body_bytes": self.body_bytes, "body_sizes": self.body_sizes}


@dataclass
class ServerState:
    rows: dict[str, RowStats] = field(default_factory=dict)
    last_request: float = field(default_factory=time.monotonic)
    counter: int = 0

    def record(self, row: str, size: int) -> None:
        stats = self.rows.setdefault(row, RowStats())
        stats.requests += 1
        stats.body_bytes += size
        stats.body_sizes.append(size)


@dataclass
class Scenario:
    row: str = "_"
    mode: str = "add"
    steps: int = 20
    n: int = 8
    tool: str = "sleep_200ms"


# --------------------------------------------------------------------------- scripting


def parse_scenario(path: str, headers: dict[str, str]) -> Scenario:
    scenario = Scenario()
    for segment in path.split("/"):
        key, sep, value = segment.partition("=")
        if not sep:
            continue
        if key in ("steps", "n"):
            setattr(scenario, key, int(value))
        elif key in ("row", "mode", "tool"):
            setattr(scenario, key, value)
    scenario.row = headers.get("x-bench-row", scenario.row)
    return scenario


def completed_steps(request: JSONDict, raw: bytes) -> int:
    messages = request.get("messages") or []
    tool_messages = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
    ids = [int(x) for x in CALL_ID_RE.findall(raw)]
    return max(tool_messages, max(ids) + 1 if ids else 0)


def offered_tools(request: JSONDict) -> set[str]:
    names: set[str] = set()
    for item in request.get("tools") or []:
        function = item.get("function") if isinstance(item, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def tool_call(step: int, name: str, arguments: JSONDict) -> JSONDict:
    return {
        "id": f"call_s{step:06d}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))},
    }


def final_message(done: int, tools: set[str]) -> JSONDict:
    text = f"Done: the running total is {done}."
    if "final_answer" in tools:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call(done, "final_answer", {"answer": text})],
        }
    return {"role": "assistant", "content": text}


def script(scenario: Scenario, request: JSONDict, raw: bytes) -> JSONDict:
    """The assistant message to answer ``request`` with."""
    done = completed_steps(request, raw)
    tools = offered_tools(request)
    if scenario.mode == "parallel":
        if done == 0:
            calls = [tool_call(i, scenario.tool, {"n": i}) for i in range(scenario.n)]
            return {"role": "assistant", "content": None, "tool_calls": calls}
        return final_message(done, tools)
    if done < scenario.steps:
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call(done, "add", {"a": done, "b": 1})],
        }
    return final_message(done, tools)


def usage(raw: bytes, message: JSONDict) -> JSONDict:
    prompt = max(1, len(raw) // 4)
    completion = max(1, len(json.dumps(message)) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(state: ServerState, request: JSONDict, message: JSONDict, raw: bytes) -> JSONDict:
    state.counter += 1
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {
        "id": f"chatcmpl-mock{state.counter:08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "mock-model"),
        "system_fingerprint": "fp_mock",
        "service_tier": "default",
        "choices": [{"index": 0, "message": {**message, "refusal": None}, "logprobs": None, "finish_reason": finish}],
        "usage": usage(raw, message),
    }


def stream_events(body: JSONDict) -> list[JSONDict]:
    """Split a finished completion into the chunk sequence OpenAI streams."""
    choice = body["choices"][0]
    message = choice["message"]
    base = {k: body[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: JSONDict, finish: str | None = None) -> JSONDict:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": "" if message.get("content") else None, "refusal": None})]
    if message.get("content"):
        text = message["content"]
        events.extend(chunk({"content": text[i : i + 16]}) for i in range(0, len(text), 16))
    for index, call in enumerate(message.get("tool_calls") or []):
        head = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append(chunk({"tool_calls": [head]}))
        arguments = call["function"]["arguments"]
        for i in range(0, len(arguments), 8):
            events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 8]}}]}))
    events.append(chunk({}, choice["finish_reason"]))
    return events


# --------------------------------------------------------------------------- HTTP


class BadRequest(Exception):
    pass


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise BadRequest(lines[0]) from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target, headers, body


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def response_head(status: str, content_type: str, extra: str) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}"
        "connection: keep-alive\r\nx-request-id: req_mock\r\n\r\n"
    ).encode()


def json_response(payload: object, status: str = "200 OK") -> bytes:
    data = json.dumps(payload, separators=(",", ":")).encode()
    return response_head(status, "application/json", f"content-length: {len(data)}\r\n") + data


def sse_response(events: list[JSONDict]) -> bytes:
    out = [response_head("200 OK", "text/event-stream; charset=utf-8", "transfer-encoding: chunked\r\n")]
    payloads = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]
    payloads.append(b"data: [DONE]\n\n")
    out.extend(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads)
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def handle_completion(state: ServerState, path: str, headers: dict[str, str], raw: bytes) -> bytes:
    scenario = parse_scenario(path, headers)
    state.record(scenario.row, len(raw))
    try:
        request = json.loads(raw)
    except ValueError:
        return json_response(
            {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}}, "400 Bad Request"
        )
    body = completion_body(state, request, script(scenario, request, raw), raw)
    if not request.get("stream"):
        return json_response(body)
    events = stream_events(body)
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append({**events[-1], "choices": [], "usage": body["usage"]})
    return sse_response(events)


def handle_control(state: ServerState, method: str, path: str) -> bytes:
    if method == "POST" and path == "/reset":
        state.rows.clear()
        return json_response({"ok": True})
    if method == "GET" and path.startswith("/stats"):
        row = path.removeprefix("/stats").strip("/")
        rows = {k: v.as_dict() for k, v in state.rows.items() if not row or k == row}
        cpu = os.times()
        return json_response({"rows": rows, "server_cpu_s": cpu.user + cpu.system})
    return json_response({"error": {"message": f"no route {method} {path}"}}, "404 Not Found")


def route(state: ServerState, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    path = target.split("?", 1)[0]
    if method == "POST" and path.endswith("/chat/completions"):
        return handle_completion(state, path, headers, body)
    return handle_control(state, method, path)


async def serve_connection(state: ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                request = await read_request(reader)
            except BadRequest:
                writer.write(json_response({"error": {"message": "bad request"}}, "400 Bad Request"))
                break
            if request is None:
                break
            state.last_request = time.monotonic()
            method, target, headers, body = request
            writer.write(route(state, method, target, headers, body))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# --------------------------------------------------------------------------- lifetime


def exit_when_stdin_closes() -> None:
    def watch() -> None:
        with contextlib.suppress(Exception):
            while sys.stdin.buffer.read(4096):
                pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="stdin-watch").start()


async def exit_when_idle(state: ServerState, idle_timeout: float) -> None:
    while time.monotonic() - state.last_request < idle_timeout:
        await asyncio.sleep(min(idle_timeout, 5.0))


async def main_async(port: int, idle_timeout: float) -> None:
    state = ServerState()
    server = await asyncio.start_server(
        lambda r, w: serve_connection(state, r, w), host="127.0.0.1", port=port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await exit_when_idle(state, idle_timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--idle-timeout", type=float, default=300.0, help="exit after this many idle seconds")
    parser.add_argument("--no-stdin-watch", action="store_true", help="do not exit when stdin closes")
    args = parser.parse_args(argv)
    if not args.no_stdin_watch:
        exit_when_stdin_closes()
    asyncio.run(main_async(args.port, args.idle_timeout))


# --------------------------------------------------------------------------- client-side helpers

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def base_url(port: int, row: str, mode: str = "add", **params: object) -> str:
    """The ``base_url`` (ending in ``/v1``) that selects ``row`` and a scenario."""
    extra = "".join(f"/{k}={v}" for k, v in params.items())
    return f"http://127.0.0.1:{port}/row={row}/mode={mode}{extra}/v1"


def control(port: int, method: str, path: str) -> JSONDict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None
    )
    with _OPENER.open(request, timeout=10) as response:
        result: JSONDict = json.loads(response.read())
        return result


def row_stats(port: int, row: str) -> RowStats:
    data = control(port, "GET", f"/stats/{row}")["rows"].get(row)
    return RowStats(**data) if data else RowStats()


class MockServer:
    """Start the server in a child process; it dies with us (its stdin is our pipe)."""

    def __init__(self, idle_timeout: float = 300.0) -> None:
        self.idle_timeout = idle_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MockServer:
        argv = [sys.executable, os.path.abspath(__file__), "--idle-timeout", str(self.idle_timeout)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "PORT":
            self.close()
            raise RuntimeError(f"mock server did not start: {line!r}")
        self.port = int(line[1])
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is None:
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def url(self, row: str, mode: str = "add", **params: object) -> str:
        return base_url(self.port, row, mode, **params)

    def stats(self) -> JSONDict:
        return control(self.port, "GET", "/stats")


if __name__ == "__main__":
    main()
