"""Tools from plain typed functions.

``@tool`` builds one pydantic model from the function's signature and docstring; the JSON schema sent
to the model and the validation of the model's arguments both come from that same model.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import ModelRetry, PluginError

__all__ = ["ANSWER_TOOL", "Tool", "ToolContext", "ToolOutcome", "answer_tool", "tool"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION_HEADER = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:\w+\s+)?(\w+)\s*:\s*(.*)$")
_SPHINX_OTHER = re.compile(r"^\s*:(returns?|rtype|raises?|yields?|type)\b")

F = TypeVar("F", bound=Callable[..., Any])

TOOL_THREADS = 64  # sync tools run here; asyncio's default pool (min(32, cpus + 4)) queues an 8-call turn
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def tool_executor() -> ThreadPoolExecutor:
    """The thread pool sync tools run in, created on first use and shared by every agent."""
    global _executor  # noqa: PLW0603 - one lazily created pool per process
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=TOOL_THREADS, thread_name_prefix="react-agent-tool")
    return _executor


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Injected into a tool that declares a parameter annotated ``ToolContext`` (not in the schema)."""

    run_id: str
    session: str | None
    agent: str
    step: int
    depth: int = 0


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google- or Sphinx-style docstring into (description, {arg: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    in_args = False
    in_other = False  # a Returns/Raises/... section: not part of the description
    for line in lines:
        if sphinx := _SPHINX_PARAM.match(line):
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if _ARGS_HEADER.match(line):
            in_args, in_other, current = True, False, None
            continue
        if _SECTION_HEADER.match(line) or _SPHINX_OTHER.match(line):
            in_args, in_other, current = False, True, None
            continue
        if in_args:
            arg = _ARG_LINE.match(line)
            if arg and (len(line) - len(line.lstrip())) <= 4:
                current = arg.group(1).lstrip("*")
                params[current] = arg.group(3).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
            continue
        if current is None and not in_other:
            summary.append(line)
    return "\n".join(summary).strip(), params


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def render_result(value: Any) -> str:
    """What the model sees of a tool's return value."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=_json_default, ensure_ascii=False)


OutcomeKind = Literal[
    "ok", "invalid_arguments", "unknown_tool", "tool_error", "timeout", "retry", "skipped", "loop", "interrupted"
]


@dataclass(slots=True)
class ToolOutcome:
    """The result of one tool call, as the loop records it."""

    kind: OutcomeKind
    content: str
    arguments: dict[str, Any] | None = None  # validated arguments; None when they were not valid
    value: Any = None
    ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


Keep = Callable[["ToolOutcome"], None]  # called with a call's outcome where the tool ran


@dataclass(eq=False)
class Tool:
    """A callable the model may use. Build one with ``@tool``."""

    fn: Callable[..., Any]
    name: str
    description: str
    args_model: type[BaseModel]
    timeout: float | None = 60.0
    sequential: bool = False
    max_retries: int = 3
    source: str = "<code>"
    context_param: str | None = None
    side_effects: bool = False  # acts on the world (tickets, payments, writes): at most once across crashes
    idempotent: bool | None = None  # safe to run again after a crash; None: True unless side_effects
    _schema: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.idempotent is None:
            self.idempotent = not self.side_effects

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry: built once, from the same model that validates."""
        if self._schema is None:
            parameters = self.args_model.model_json_schema()
            parameters.pop("title", None)
            for prop in parameters.get("properties", {}).values():
                prop.pop("title", None)
            self._schema = {
                "type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": parameters},
            }
        return self._schema

    def validate(self, raw_arguments: str) -> BaseModel:
        """Parse the model's JSON arguments; raises ``ValidationError`` (JSON or schema problems).

        Control characters inside strings — a literal newline, as small models write them — are
        accepted: JSON forbids them, but what the model meant is not in doubt."""
        raw = raw_arguments.strip() or "{}"
        try:
            return self.args_model.model_validate_json(raw)
        except ValidationError as exc:
            if exc.errors()[0]["type"] != "json_invalid":
                raise
            try:
                lenient = json.loads(raw, strict=False)
            except ValueError:
                raise exc from None
            return self.args_model.model_validate_json(json.dumps(lenient))

    async def invoke(self, raw_arguments: str, context: ToolContext | None = None,
                     keep: Keep | None = None, *, parsed: BaseModel | None = None) -> ToolOutcome:
        """Validate (unless ``parsed`` is given) and run. Every model-side failure becomes a
        ``ToolOutcome`` the model can read.

        ``keep`` gets the outcome the moment the tool returns or fails — in the tool's own thread for
        a sync tool — so a result is saved even if the process dies before the loop sees it. It is
        not called for a call that timed out (its late result belongs to no one)."""
        if parsed is None:
            try:
                parsed = self.validate(raw_arguments)
            except ValidationError as exc:
                return ToolOutcome("invalid_arguments", describe_validation_error(self, raw_arguments, exc))
        arguments = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        call_args = dict(arguments)
        if self.context_param is not None:
            call_args[self.context_param] = context
        started = time.perf_counter()
        abandoned = threading.Event()

        def settle(value: Any = None, error: Exception | None = None) -> ToolOutcome:
            outcome = self._outcome(arguments, value, error, (time.perf_counter() - started) * 1000)
            if keep is not None and not abandoned.is_set():
                keep(outcome)
            return outcome

        def run_sync() -> ToolOutcome:
            try:
                value = self.fn(**call_args)
            except Exception as exc:  # noqa: BLE001 - any tool failure is an observation for the model
                return settle(error=exc)
            return settle(value)

        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                if not self.is_async:  # in a thread of our own pool, with the caller's contextvars
                    run = functools.partial(contextvars.copy_context().run, run_sync)
                    return await asyncio.get_running_loop().run_in_executor(tool_executor(), run)
                try:
                    value = await self.fn(**call_args)
                except Exception as exc:  # noqa: BLE001 - as above; a timeout is not an Exception here
                    return settle(error=exc)
                return settle(value)
        except TimeoutError:
            if not deadline.expired():
                raise
            abandoned.set()
            return ToolOutcome("timeout", f"Tool {self.name!r} timed out after {self.timeout:g}s.", arguments,
                               ms=(time.perf_counter() - started) * 1000)

    def _outcome(self, arguments: dict[str, Any], value: Any, error: Exception | None, ms: float) -> ToolOutcome:
        if isinstance(error, ModelRetry):
            return ToolOutcome("retry", error.message, arguments, ms=ms)
        if error is not None:  # a TimeoutError the tool raised itself lands here too: an error like any other
            return ToolOutcome("tool_error", f"Tool {self.name!r} raised {type(error).__name__}: {error}",
                               arguments, ms=ms)
        return ToolOutcome("ok", render_result(value), arguments, value, ms=ms)

    async def __call__(self, **kwargs: Any) -> Any:
        """Call the underlying function directly (validated), e.g. from tests."""
        parsed = self.args_model.model_validate(kwargs)
        result = self.fn(**{name: getattr(parsed, name) for name in type(parsed).model_fields})
        if isinstance(result, Awaitable):
            return await result
        return result


def describe_validation_error(tool: Tool, raw: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return (
            f"The arguments for {tool.name!r} are not valid JSON ({errors[0]['msg']}): {raw[:200]!r}. "
            f"Send a JSON object matching: {json.dumps(tool.schema()['function']['parameters'])}"
        )
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in errors
    )
    return (
        f"Invalid arguments for {tool.name!r}: {problems}. "
        f"Expected: {json.dumps(tool.schema()['function']['parameters'])}"
    )


def _build_args_model(
    fn: Callable[..., Any], name: str, arg_docs: dict[str, str]
) -> tuple[type[BaseModel], str | None]:
    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn, include_extras=True)  # keep Annotated[...] constraints
    except Exception as exc:
        raise PluginError(f"{name}", f"type hints cannot be resolved: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param = None
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise PluginError(name, f"parameter *{param.name} is not supported in a tool signature")
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.name not in hints:
            raise PluginError(name, f"parameter {param.name!r} has no type annotation")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, Field(default, description=arg_docs.get(param.name)))
    model = create_model(
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model, context_param


@overload
def tool(fn: F, /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = 60.0,
    sequential: bool = False, max_retries: int = 3, side_effects: bool = False, idempotent: bool | None = None,
) -> Callable[[F], Tool]: ...
def tool(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None,
    timeout: float | None = 60.0, sequential: bool = False, max_retries: int = 3, side_effects: bool = False,
    idempotent: bool | None = None,
) -> Tool | Callable[[F], Tool]:
    """Turn a typed function (sync or async) into a ``Tool``.

    The docstring's first part is the description; an ``Args:`` section gives each argument's.
    ``sequential=True`` keeps the tool from running beside other calls of the same turn.
    ``side_effects=True`` marks a tool that acts on the world; such a tool is not ``idempotent`` unless
    said so, and a call of it that a crash interrupted is never run a second time on resume.
    """

    def build(func: F) -> Tool:
        tool_name = name or func.__name__
        if not _NAME_RE.match(tool_name):
            raise PluginError(tool_name, "a tool name must match ^[a-zA-Z0-9_-]{1,64}$")
        summary, arg_docs = parse_docstring(func.__doc__)
        if not (description or summary):
            raise PluginError(tool_name, "a tool needs a docstring (the model reads it as the description)")
        args_model, context_param = _build_args_model(func, tool_name, arg_docs)
        source = inspect.getsourcefile(func) or "<code>"
        return Tool(
            fn=func, name=tool_name, description=description or summary, args_model=args_model,
            timeout=timeout, sequential=sequential, max_retries=max_retries, source=source,
            context_param=context_param, side_effects=side_effects, idempotent=idempotent,
        )

    if fn is not None:
        return build(fn)
    return build


ANSWER_TOOL = "final_answer"


def answer_tool(output_type: type[BaseModel] | None = None) -> Tool:
    """The tool a model calls to finish: ``final_answer(answer)``, or with ``output_type``'s fields."""
    if output_type is None:
        def final_answer(answer: Annotated[str, Field(min_length=1)]) -> str:
            """Give the final answer to the user. Call this once you know the answer; it ends the task.

            Args:
                answer: the complete final answer, in plain words.
            """
            return answer

        return tool(final_answer)
    return Tool(fn=output_type, name=ANSWER_TOOL, args_model=output_type,
                description="Give the final answer to the user, as these fields; this ends the task.")
