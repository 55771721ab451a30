"""The model adapter — the only module that imports ``openai``.

We use the SDK's transport (auth, retries with backoff on 429/5xx/timeouts, error classes) but not
its response models: the body is parsed once with ``json`` into plain dicts, which is where most of
the SDK's per-request CPU goes. Parsing is tolerant of what OpenAI-compatible servers actually send
(tool calls without ``id``/``type``, arguments as objects, ``usage`` in odd chunks, SSE comments,
errors inside a stream) and fails with a clear ``ModelHTTPError`` / ``UnexpectedModelBehavior``. A stream
that stops before its answer is complete is asked again (see ``OpenAIModel.stream``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import time
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from .errors import IncompleteResponseError, ModelHTTPError, UnexpectedModelBehavior
from .log import logger
from .redact import redact_url
from .usage import Usage

if TYPE_CHECKING:
    import ssl

    from openai import AsyncOpenAI

__all__ = ["Model", "ModelResponse", "OpenAIModel", "RawToolCall", "close_clients"]

DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(slots=True)
class RawToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ModelResponse:
    """One assistant turn, normalised."""

    text: str | None
    tool_calls: list[RawToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    model: str | None = None  # which model answered, when a model stands for several (``FallbackModel``)

    def message(self) -> dict[str, Any]:
        """The assistant message in wire format, as it goes into history.

        ``content`` is always present (``""`` beside tool calls): llama.cpp answers HTTP 500 without it.
        """
        msg: dict[str, Any] = {"role": "assistant", "content": self.text or ""}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return msg


@runtime_checkable
class Model(Protocol):
    """What the loop needs from a model: one request, plain or streamed."""

    name: str

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> ModelResponse: ...

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> AsyncIterator[str | ModelResponse]:
        """Yield text deltas, then exactly one ``ModelResponse``."""
        ...


def _text_of(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _arguments_of(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _call_id(raw_id: Any, position: int, index: int) -> str:
    # Deterministic when the server omits ids, so recorded request bodies replay identically.
    return raw_id if isinstance(raw_id, str) and raw_id else f"call_{position}_{index}"


def parse_usage(model: str, raw: Any, latency_ms: float) -> Usage:
    raw = raw if isinstance(raw, dict) else {}
    details = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage.of_request(
        model,
        int(raw.get("prompt_tokens") or 0),
        int(raw.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        latency_ms,
        reasoning=int(completion.get("reasoning_tokens") or 0) if isinstance(completion, dict) else 0,
    )


def _status_of(code: int | str | None) -> int | None:
    if isinstance(code, str) and code.strip().isdigit():
        return int(code)
    return code if isinstance(code, int) else None


def _error_in(data: Any, reported_in: Literal["response", "stream"]) -> ModelHTTPError | None:
    """The ``error`` object a server put in an answer — also beside ``choices`` (OpenRouter does that
    mid-stream) — with the server's code as sent and, when that code is a number, as ``status_code``."""
    if not isinstance(data, dict) or not data.get("error"):
        return None
    err = data["error"]
    raw = err.get("code") if isinstance(err, dict) else None
    code = raw if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    message = str(err.get("message") or err) if isinstance(err, dict) else str(err)
    return ModelHTTPError(_status_of(code), data, message, code, reported_in)


def _finish_reason_of(choice: Any) -> str | None:
    value = choice.get("finish_reason") if isinstance(choice, dict) else None
    return value if isinstance(value, str) and value else None


def parse_completion(model: str, data: Any, position: int, latency_ms: float) -> ModelResponse:
    """A non-streamed ``chat.completion`` body → ``ModelResponse``."""
    if error := _error_in(data, "response"):
        raise error
    try:
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UnexpectedModelBehavior("the server's answer has no choices[0].message", data) from exc
    calls = []
    for i, raw in enumerate(message.get("tool_calls") or []):
        function = raw.get("function") or {}
        calls.append(RawToolCall(_call_id(raw.get("id"), position, i), str(function.get("name") or ""),
                                 _arguments_of(function.get("arguments"))))
    return ModelResponse(_text_of(message.get("content")), calls,
                         parse_usage(model, data.get("usage"), latency_ms), _finish_reason_of(choice))


@dataclass(slots=True)
class StreamAccumulator:
    """Folds SSE ``chat.completion.chunk`` payloads into one ``ModelResponse``."""

    model: str
    position: int
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Any = None
    finish_reason: str | None = None
    done: bool = False  # ``data: [DONE]`` was seen

    @property
    def complete(self) -> bool:
        """The server said the answer is over: a ``finish_reason`` (some servers omit ``[DONE]``) or ``[DONE]``."""
        return self.done or self.finish_reason is not None

    def feed(self, chunk: dict[str, Any]) -> str:
        """Take one chunk; return its text delta ('' if none)."""
        if error := _error_in(chunk, "stream"):
            raise error
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        self.finish_reason = _finish_reason_of(choice) or self.finish_reason
        delta = choice.get("delta") or choice.get("message") or {}
        for raw in delta.get("tool_calls") or []:
            self._feed_call(raw)
        text = _text_of(delta.get("content")) or ""
        if text:
            self.text.append(text)
        return text

    def _feed_call(self, raw: dict[str, Any]) -> None:
        index = raw.get("index")
        if not isinstance(index, int):  # some servers omit index: a new id starts a new call
            last = max(self.calls, default=-1)
            new_id = raw.get("id")
            index = last + 1 if last < 0 or (new_id and new_id != self.calls[last]["id"]) else last
        slot = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
        slot["id"] = slot["id"] or raw.get("id")
        function = raw.get("function") or {}
        if function.get("name"):
            slot["name"] += function["name"]
        args = function.get("arguments")
        if args is not None:
            slot["arguments"] += _arguments_of(args)

    def result(self, latency_ms: float) -> ModelResponse:
        calls = [
            RawToolCall(_call_id(slot["id"], self.position, i), slot["name"], slot["arguments"])
            for i, (_, slot) in enumerate(sorted(self.calls.items()))
        ]
        return ModelResponse("".join(self.text) or None, calls,
                             parse_usage(self.model, self.usage, latency_ms), self.finish_reason)


def sse_payloads(line: str) -> str | None:
    """The JSON text of one SSE line, or None for comments, blank lines and other fields."""
    if not line or line.startswith(":"):
        return None
    if line.startswith("data:"):
        payload = line[5:].strip()
        return payload or None
    return None


def split_query(url: str | None) -> tuple[str | None, dict[str, str]]:
    """A base URL and its query parameters apart: the SDK appends the request path to the base URL's raw
    path, so ``.../v1?api-version=X`` would become ``.../v1/?api-version=Xchat/completions``."""
    if url is None or "?" not in url:
        return url, {}
    base, _, query = url.partition("?")
    return base, dict(parse_qsl(query.partition("#")[0], keep_blank_values=True))


async def _deltas(response: Any, acc: StreamAccumulator) -> AsyncGenerator[str, None]:
    """Feed one streamed response's SSE chunks to ``acc`` and yield their text deltas, up to ``[DONE]``
    or the end of the body. A broken connection raises the transport's own error."""
    async for line in response.aiter_lines():
        payload = sse_payloads(line)
        if payload is None:
            continue
        if payload == "[DONE]":
            acc.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise UnexpectedModelBehavior(f"a stream chunk is not JSON: {payload[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise UnexpectedModelBehavior(f"a stream chunk is not a JSON object: {payload[:200]!r}", chunk)
        if text := acc.feed(chunk):
            yield text


def _url_of(response: Any) -> str | None:
    """The URL a response answered, credentials removed (``None`` if it does not say)."""
    try:
        return redact_url(str(response.request.url))
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError for a response built without a request
        return None


def _at(error: ModelHTTPError, url: str | None) -> ModelHTTPError:
    """``error``, naming ``url`` unless it already names one."""
    if error.url is None:
        error.url = url
    return error


class OpenAIModel:
    """Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp, OpenRouter, Groq).

    ``max_retries`` and ``timeout`` (seconds per request) go to the SDK client; ``max_retries`` also
    bounds how often a stream that stopped early is asked again (``stream``)."""

    retry_backoff = 0.5  # seconds before the first new attempt at a stream that stopped early; doubles

    def __init__(
        self,
        name: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 2,
        timeout: float = 120.0,
        stream_usage: bool = True,
        price_as: str | None = None,
    ) -> None:
        self.name = name or os.environ.get("REACT_AGENT_MODEL") or DEFAULT_MODEL
        self.base_url = base_url
        self.api_key = api_key
        self.max_retries = max_retries
        self.timeout = timeout
        self.stream_usage = stream_usage
        self.price_as = price_as or self.name
        self._client: tuple[object, AsyncOpenAI] | None = None  # (loop, client) last used: one check per request
        self._clients: dict[object, tuple[tuple[Any, ...], AsyncOpenAI]] = {}  # loop -> (config, client)

    @property
    def client(self) -> AsyncOpenAI:
        """The SDK client for the running event loop, built once per loop.

        An ``AsyncOpenAI`` keeps its connection pool on the loop it first ran on, so each loop gets its
        own client: ``run_sync`` keeps one loop per thread (one client, one connection for all its
        calls), and code that calls ``asyncio.run`` itself gets a new client per loop. A client whose
        loop has closed is dropped without a sound — its HTTP client is ours, not the SDK's wrapper,
        whose finalizer would schedule ``aclose()`` on whatever loop runs next and print "Event loop
        is closed" — and ``close_clients()`` closes the clients of a loop before it closes."""
        current = self._client
        try:
            loop: object = asyncio.get_running_loop()
        except RuntimeError:  # no loop (e.g. building the client up front): keep whatever we have
            loop = current[0] if current else None
        if current is not None and current[0] is loop:
            return current[1]
        config = (self.base_url or os.environ.get("OPENAI_BASE_URL") or None,
                  self.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed", self.max_retries, self.timeout)
        known = self._clients.get(loop)
        if known is None or known[0] != config:
            for old in list(self._clients):  # a copy: other threads may add their loop's client meanwhile
                if isinstance(old, asyncio.AbstractEventLoop) and old.is_closed():
                    self._clients.pop(old, None)
            known = self._clients[loop] = (config, _new_client(*config))
            with _models_lock:
                _models_with_clients.add(self)
        self._client = (loop, known[1])
        return known[1]

    def _body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
              settings: dict[str, Any], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "messages": messages, **settings}
        if tools:
            body["tools"] = tools
            body.setdefault("tool_choice", "auto")  # some servers ignore tools unless this is explicit
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    async def _post(self, body: dict[str, Any], stream: bool) -> Any:
        import httpx2  # noqa: PLC0415 - comes with openai; loaded with it
        import openai  # noqa: PLC0415

        try:
            return await self.client.post(
                "/chat/completions", body=body, cast_to=httpx2.Response, stream=stream,
                stream_cls=None,
            )
        except openai.APIStatusError as exc:
            raise ModelHTTPError(exc.status_code, exc.body, exc.message, url=redact_url(str(exc.request.url))) from exc
        except openai.APIConnectionError as exc:  # includes timeouts, after the SDK's retries
            raise ModelHTTPError(None, None, f"{type(exc).__name__}: {exc}",
                                 url=redact_url(str(exc.request.url))) from exc

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> ModelResponse:
        started = time.perf_counter()
        response = await self._post(self._body(messages, tools, settings, stream=False), stream=False)
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise UnexpectedModelBehavior(f"the server's answer is not JSON: {response.text[:200]!r}") from exc
        try:
            return parse_completion(self.price_as, data, len(messages), (time.perf_counter() - started) * 1000)
        except ModelHTTPError as exc:  # an ``error`` object the server answered with
            raise _at(exc, _url_of(response)) from None

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> AsyncIterator[str | ModelResponse]:
        """Yield text deltas as they come, then one ``ModelResponse``.

        A stream is complete when it carries a ``finish_reason`` or ends with ``data: [DONE]``. One that
        stops before that — closed cleanly, or broken off by the connection — is asked again like a
        transport error: up to ``max_retries`` more attempts, ``retry_backoff`` seconds apart (doubling).
        A text delta already yielded cannot be taken back, so this happens only while the attempt has
        yielded no text (tool-call fragments are not yielded); after text went out the early end fails at
        once, so the caller never sees two answers run together. When the attempts are used up the error
        is ``IncompleteResponseError`` (closed early) or ``ModelHTTPError`` (broken off). HTTP errors
        and ``error`` objects from the server are not retried here (the SDK retries what it can).
        """
        import httpx2  # noqa: PLC0415 - comes with openai; loaded with it

        body = self._body(messages, tools, settings, stream=True)
        started = time.perf_counter()
        attempts = max(self.max_retries, 0) + 1
        for attempt in range(1, attempts + 1):
            acc = StreamAccumulator(self.price_as, len(messages))
            response = await self._post(body, stream=True)
            url = _url_of(response)
            failure: ModelHTTPError | None = None
            try:
                async with aclosing(_deltas(response, acc)) as deltas:
                    async for text in deltas:
                        yield text
            except httpx2.HTTPError as exc:  # the connection broke after the response had started
                failure = ModelHTTPError(None, None, f"the stream broke off: {type(exc).__name__}: {exc}", url=url)
                failure.__cause__ = exc
            except ModelHTTPError as exc:  # an ``error`` object inside the stream
                raise _at(exc, url) from None
            finally:
                await response.aclose()
            if failure is None and acc.complete:
                break
            streamed = sum(map(len, acc.text))
            if failure is None:
                failure = IncompleteResponseError(None, None, "the stream ended before the response was complete",
                                                  url=url, attempts=attempt, streamed_chars=streamed)
            if streamed or attempt == attempts:
                raise failure
            logger().info("model_stream_retry", model=self.name, attempt=attempt, reason=str(failure))
            await asyncio.sleep(min(self.retry_backoff * 2 ** (attempt - 1), 8.0))
        if acc.finish_reason is None and not acc.text and not acc.calls:
            raise UnexpectedModelBehavior("the stream ended before the model said anything")
        yield acc.result((time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        """Close the client of the running event loop (the next request builds a new one)."""
        loop = asyncio.get_running_loop()
        known = self._clients.pop(loop, None)
        if self._client is not None and self._client[0] is loop:
            self._client = None
        if known is not None:
            await known[1].close()


_models_with_clients: weakref.WeakSet[OpenAIModel] = weakref.WeakSet()
_models_lock = threading.Lock()


async def close_clients() -> None:
    """Close every model client built on the running event loop — before that loop closes, so their
    connections end cleanly instead of being left to the garbage collector."""
    with _models_lock:
        models = list(_models_with_clients)
    for model in models:
        await model.aclose()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle is most of the ~27 ms a client costs."""
    import httpx2  # noqa: PLC0415 - comes with openai; loaded with it

    return httpx2.create_ssl_context()


def _new_client(base_url: str | None, api_key: str, max_retries: int, timeout: float) -> AsyncOpenAI:
    import openai  # noqa: PLC0415 - openai costs ~1 s to import; only when a request is made

    base, query = split_query(base_url)
    if base and "@" in base.partition("://")[2].partition("/")[0] and api_key != "not-needed":
        warnings.warn(f"the base URL {redact_url(base)} carries user:password: requests use HTTP Basic auth "
                      "with it, and the API key is not sent (httpx replaces the Bearer header)", UserWarning,
                      stacklevel=2)
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=base, default_query=query or None, max_retries=max_retries, timeout=timeout,
        # the SDK's defaults (limits, redirects) without its wrapper's __del__ (see ``OpenAIModel.client``)
        http_client=openai.DefaultAsyncHttpxClient(verify=_ssl_context()),
    )
