"""Tools from plain typed functions.

``@tool`` builds one pydantic model from the function's signature and docstring; the JSON schema sent
to the model and the validation of the model's arguments both come from that same model.
``Tool.from_schema`` takes a JSON schema from elsewhere as it is and validates against it with
``jsonschema`` (``react_agent.schema``).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import json
import math
import re
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    overload,
)

from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypeVar  # PEP 696 defaults (3.13's typing)

from ._sync import call_here
from .errors import ModelRetry, PluginError
from .signature import ToolContext, build_args_model, context_param_of, parse_docstring, source_of

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from .approval import ApprovalPolicy, Decision

__all__ = ["ANSWER_TOOL", "DEFAULT_TOOL_TIMEOUT", "STRICT_DEFAULT", "Tool", "ToolContext", "ToolOutcome", "answer_tool",
           "tool"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

F = TypeVar("F", bound=Callable[..., Any])

# Validate the model's arguments without coercion ("7" is not an int, true is not 1, "yes" is not a
# bool) unless a tool or agent says otherwise: the recorded models never needed coercion (README,
# "Argument strictness"), and coercion hides a model's mistakes instead of showing them to it.
STRICT_DEFAULT = True

DEFAULT_TOOL_TIMEOUT = 60.0  # seconds per call, for a tool that sets no timeout of its own (see ``Tool.timeout``)
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
    "ok", "invalid_arguments", "unknown_tool", "tool_error", "timeout", "retry", "skipped", "loop", "interrupted",
    "blocked", "denied",
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
    # Seconds per call. None: ``DEFAULT_TOOL_TIMEOUT`` wherever a limit can hold — an async tool, a sync
    # tool in a worker thread — and none for a sync call run in the caller's thread (a lone call under
    # ``run_sync``). A number always holds: such a sync tool always runs in a worker thread. ``math.inf``:
    # no limit.
    timeout: float | None = None
    sequential: bool = False
    max_retries: int = 3
    source: str = "<code>"
    context_param: str | None = None
    side_effects: bool = False  # acts on the world (tickets, payments, writes): at most once across crashes
    idempotent: bool | None = None  # safe to run again after a crash; None: True unless side_effects
    requires_approval: bool | ApprovalPolicy = False  # or a policy of (arguments, context) -> bool
    untrusted_output: bool = False  # returns text others wrote (pages, articles, files): fenced as data
    strict: bool | None = None  # validate without coercion; None: the agent's ``strict_tools``
    parameters: dict[str, Any] | None = None  # a schema tool's JSON schema (``from_schema``), sent as given
    # An agent called as a tool (``Agent.as_tool``): take up its nested run that paused for approval, with the
    # decisions on its calls. The call then goes on where it stopped instead of running anew.
    go_on: Callable[[str, Mapping[str, Decision], ToolContext], Awaitable[Any]] | None = field(
        default=None, repr=False)
    _schema: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.idempotent is None:
            self.idempotent = not self.side_effects

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    @classmethod
    def from_schema(
        cls, name: str, description: str | None, parameters: dict[str, Any], function: Callable[..., Any], *,
        timeout: float | None = None, sequential: bool = False, max_retries: int = 3, side_effects: bool = False,
        idempotent: bool | None = None, requires_approval: bool | ApprovalPolicy = False,
        untrusted_output: bool = False,
    ) -> Tool:
        """A tool whose JSON schema comes from elsewhere (MCP, OpenAPI, a config file).

        The schema is sent as given; the model's arguments are validated against it with ``jsonschema``
        and ``function`` (sync or async) is called with exactly the arguments the model sent, as keyword
        arguments — no defaults or ``None`` added. A parameter of ``function`` annotated ``ToolContext``
        gets the run's context. A tool without a description is allowed, with a warning."""
        from .schema import SchemaArguments, SchemaError, schema_validator  # noqa: PLC0415 - loads jsonschema

        if not _NAME_RE.match(name):
            raise PluginError(name, "a tool name must match ^[a-zA-Z0-9_-]{1,64}$")
        if not isinstance(parameters, dict):
            raise PluginError(name, f"parameters must be a JSON schema object, not {type(parameters).__name__}")
        try:
            schema_validator(parameters)
        except SchemaError as exc:
            raise PluginError(name, f"parameters are not a valid JSON schema: {exc.message}") from None
        if not description:
            warnings.warn(f"tool {name!r} has no description: the model sees only its name and parameters",
                          UserWarning, stacklevel=2)
        context_param = context_param_of(function)
        if context_param is not None and context_param in parameters.get("properties", {}):
            raise PluginError(name, f"{context_param!r} is both the ToolContext parameter and a schema property")
        return cls(
            fn=function, name=name, description=description or "", args_model=SchemaArguments, timeout=timeout,
            sequential=sequential, max_retries=max_retries, source=source_of(function),
            context_param=context_param, side_effects=side_effects, idempotent=idempotent,
            requires_approval=requires_approval, untrusted_output=untrusted_output,
            parameters=copy.deepcopy(parameters),
        )

    @functools.cached_property
    def _validator(self) -> Validator:
        from .schema import schema_validator  # noqa: PLC0415

        assert self.parameters is not None
        return schema_validator(self.parameters)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry: built once, from the same model that validates (a schema tool's
        is its schema, as given)."""
        if self._schema is None and self.parameters is not None:
            function = {"name": self.name, "description": self.description, "parameters": self.parameters}
            if not self.description:
                del function["description"]
            self._schema = {"type": "function", "function": function}
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

    def validate(self, raw_arguments: str, *, strict: bool | None = None) -> BaseModel:
        """Parse the model's JSON arguments; raises ``ValidationError`` (JSON or schema problems).

        Literal newlines (any control character) inside JSON strings are accepted: small models write
        them. ``strict`` is the agent's default, used when the tool sets none (``STRICT_DEFAULT`` when
        neither does): no coercion of ``"7"`` or ``true`` to an int, nor of ``"yes"`` to a bool. A
        schema tool is checked by its JSON schema, which never coerces."""
        raw = raw_arguments.strip() or "{}"
        if self.parameters is not None:
            from .schema import SchemaArguments, check_arguments  # noqa: PLC0415

            return SchemaArguments.model_construct(arguments=check_arguments(self._validator, raw, self.name))
        chosen = self.strict if self.strict is not None else strict
        strict = STRICT_DEFAULT if chosen is None else chosen
        try:
            return self.args_model.model_validate_json(raw, strict=strict)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if not errors or errors[0]["type"] != "json_invalid":
                raise
            try:  # JSON but for control characters in strings: validated as the same JSON, escaped
                value = json.loads(raw, strict=False)
            except ValueError:
                raise exc from None
        return self.args_model.model_validate_json(json.dumps(value), strict=strict)

    def arguments_of(self, parsed: BaseModel) -> dict[str, Any]:
        """Validated arguments by the names the schema gives them (the function's parameter names)."""
        if self.parameters is not None:
            return dict(getattr(parsed, "arguments", {}))
        return {info.alias or name: getattr(parsed, name) for name, info in type(parsed).model_fields.items()}

    def dump_arguments(self, parsed: BaseModel, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """Validated arguments as plain data, by the schema's names (what approval policies read)."""
        if self.parameters is not None:
            return dict(getattr(parsed, "arguments", {}))
        return parsed.model_dump(mode=mode, by_alias=True)

    async def invoke(self, raw_arguments: str, context: ToolContext | None = None,
                     keep: Keep | None = None, *, parsed: BaseModel | None = None, here: bool = False) -> ToolOutcome:
        """Validate (unless ``parsed`` is given) and run. Every model-side failure becomes a
        ``ToolOutcome`` the model can read.

        ``keep`` gets the outcome the moment the tool returns or fails — in the tool's own thread for
        a sync tool — so a result is saved even if the process dies before the loop sees it. It is
        not called for a call that timed out (its late result belongs to no one).

        A sync tool runs in a worker thread, so the event loop goes on meanwhile and the timeout holds;
        with ``here=True`` (the caller's thread has nothing else to do: ``run_sync``) a sync tool that
        sets no timeout of its own runs in this thread instead, without a limit, as the caller's own
        code would."""
        if parsed is None:
            try:
                parsed = self.validate(raw_arguments)
            except ValidationError as exc:
                return ToolOutcome("invalid_arguments", describe_validation_error(self, raw_arguments, exc))
        arguments = self.arguments_of(parsed)
        call_args = dict(arguments)
        if self.context_param is not None:
            call_args[self.context_param] = context
        started = time.perf_counter()
        settle, abandoned = self._settler(arguments, keep, started)

        def run_sync() -> ToolOutcome:
            try:
                value = self.fn(**call_args)
            except Exception as exc:  # noqa: BLE001 - any tool failure is an observation for the model
                return settle(error=exc)
            return settle(value)

        async def run_async() -> ToolOutcome:
            try:
                value = await self.fn(**call_args)
            except Exception as exc:  # noqa: BLE001 - as above; a timeout is not an Exception here
                return settle(error=exc)
            return settle(value)

        if not self.is_async and here and self.timeout is None:
            return call_here(run_sync)
        if self.is_async:
            return await self._bounded(run_async(), arguments, started, abandoned)
        run = functools.partial(contextvars.copy_context().run, run_sync)  # in our pool, with the caller's context
        return await self._bounded(asyncio.get_running_loop().run_in_executor(tool_executor(), run), arguments,
                                   started, abandoned)

    async def go_on_with(self, run_id: str, approvals: Mapping[str, Decision], context: ToolContext,
                         keep: Keep | None = None) -> ToolOutcome:
        """The call of an agent called as a tool, taken up where it waited: its nested run ``run_id``
        goes on with ``approvals`` (``go_on``), bounded by the tool's timeout like a fresh call."""
        started = time.perf_counter()
        settle, abandoned = self._settler({}, keep, started)

        async def resume() -> ToolOutcome:
            try:
                if self.go_on is None:
                    raise RuntimeError(f"{self.name!r} is not an agent called as a tool: run {run_id} cannot go on")
                value = await self.go_on(run_id, approvals, context)
            except Exception as exc:  # noqa: BLE001 - a failure is an observation for the model, as in ``invoke``
                return settle(error=exc)
            return settle(value)

        return await self._bounded(resume(), {}, started, abandoned)

    def _settler(self, arguments: dict[str, Any], keep: Keep | None, started: float
                 ) -> tuple[Callable[..., ToolOutcome], threading.Event]:
        """``settle(value=None, error=None)``: the call's outcome, given to ``keep`` unless the call was
        abandoned (it timed out: its late result belongs to no one) — and the event that abandons it."""
        abandoned = threading.Event()

        def settle(value: Any = None, error: Exception | None = None) -> ToolOutcome:
            outcome = self._outcome(arguments, value, error, (time.perf_counter() - started) * 1000)
            if keep is not None and not abandoned.is_set():
                keep(outcome)
            return outcome

        return settle, abandoned

    async def _bounded(self, work: Awaitable[ToolOutcome], arguments: dict[str, Any], started: float,
                       abandoned: threading.Event) -> ToolOutcome:
        """``work`` within the tool's timeout (``DEFAULT_TOOL_TIMEOUT`` when it sets none); past it the
        call is abandoned and its outcome is ``timeout``."""
        limit = DEFAULT_TOOL_TIMEOUT if self.timeout is None else self.timeout
        deadline = asyncio.timeout(None if limit == math.inf else limit)
        try:
            async with deadline:
                return await work
        except TimeoutError:
            if not deadline.expired():
                raise
            abandoned.set()
            return ToolOutcome("timeout", f"Tool {self.name!r} timed out after {limit:g}s.", arguments,
                               ms=(time.perf_counter() - started) * 1000)

    def _outcome(self, arguments: dict[str, Any], value: Any, error: Exception | None, ms: float) -> ToolOutcome:
        if isinstance(error, ModelRetry):
            return ToolOutcome("retry", error.message, arguments, ms=ms)
        if error is not None:  # a TimeoutError the tool raised itself lands here too: an error like any other
            return ToolOutcome("tool_error", f"Tool {self.name!r} raised {type(error).__name__}: {error}",
                               arguments, ms=ms)
        return ToolOutcome("ok", render_result(value), arguments, value, ms=ms)

    async def __call__(self, **kwargs: Any) -> Any:
        """Call the underlying function directly (validated, with Python values), e.g. from tests."""
        if self.parameters is not None:
            from .schema import check_object  # noqa: PLC0415

            arguments = check_object(self._validator, kwargs, self.name)
        else:
            arguments = self.arguments_of(self.args_model.model_validate(kwargs))
        result = self.fn(**arguments)
        if isinstance(result, Awaitable):
            return await result
        return result


def describe_validation_error(tool: Tool, raw: str, exc: ValidationError) -> str:
    """What the model needs to fix the call: each problem, and for each argument involved only its own
    expected type (or allowed values), whether it is required, and its description — not the whole
    schema again. (Arguments that are not JSON get every argument's line: nothing in them can be read.)"""
    errors = exc.errors(include_url=False)
    parameters = tool.schema()["function"]["parameters"]
    if errors and errors[0]["type"] == "json_invalid":
        every = "; ".join(argument_hint(parameters, name) for name in parameters.get("properties", {}))
        return (f"The arguments for {tool.name!r} are not valid JSON ({errors[0]['msg']}): {raw[:200]!r}. "
                f"Send one JSON object with: {every or 'nothing (send {})'}.")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in errors
    )
    involved = [str(err["loc"][0]) for err in errors if err["loc"]]
    if len(involved) < len(errors):  # the arguments as a whole were wrong (e.g. not an object): list them all
        involved += list(parameters.get("properties", {}))
    hints = "; ".join(argument_hint(parameters, name) for name in dict.fromkeys(involved))
    return f"Invalid arguments for {tool.name!r}: {problems}. Fix: {hints or 'send {} (it takes no arguments)'}."


def argument_hint(parameters: dict[str, Any], name: str) -> str:
    """One argument of a tool's JSON schema in a line: ``name (type, required): description``."""
    properties = parameters.get("properties", {})
    if name not in properties:
        known = ", ".join(properties) or "none"
        return f"{name} is not an argument of this tool (its arguments: {known})"
    prop = properties[name]
    default = json.dumps(prop["default"]) if "default" in prop else "none"
    required = "required" if name in parameters.get("required", []) else f"optional, default {default}"
    description = f": {prop['description'].rstrip('. ')}" if prop.get("description") else ""
    return f"{name} ({_kind(prop, parameters.get('$defs', {}))}, {required}){description}"


def _kind(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A schema's type in a few words: ``string``, ``one of "a", "b"``, ``array of integer``, ``object``."""
    if "$ref" in prop:
        prop = {**defs.get(prop["$ref"].rsplit("/", 1)[-1], {}), **{k: v for k, v in prop.items() if k != "$ref"}}
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {json.dumps(prop['const'])}"
    if "anyOf" in prop:
        return " or ".join(dict.fromkeys(_kind(option, defs) for option in prop["anyOf"]))
    kind = prop.get("type", "any value")
    if isinstance(kind, list):  # a JSON schema from elsewhere may list several types
        return " or ".join(_kind({**prop, "type": k}, defs) for k in kind)
    if kind == "array":
        return f"array of {_kind(prop.get('items', {}), defs)}"
    return str(kind)


@overload
def tool(fn: F, /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None,
    sequential: bool = False, max_retries: int = 3, side_effects: bool = False, idempotent: bool | None = None,
    requires_approval: bool | ApprovalPolicy = False, untrusted_output: bool = False, strict: bool | None = None,
) -> Callable[[F], Tool]: ...
def tool(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None,
    timeout: float | None = None, sequential: bool = False, max_retries: int = 3, side_effects: bool = False,
    idempotent: bool | None = None, requires_approval: bool | ApprovalPolicy = False, untrusted_output: bool = False,
    strict: bool | None = None,
) -> Tool | Callable[[F], Tool]:
    """Turn a typed function (sync or async) into a ``Tool``.

    The docstring's first part is the description; an ``Args:`` section gives each argument's.
    ``sequential=True`` keeps the tool from running beside other calls of the same turn.
    ``side_effects=True`` marks a tool that acts on the world; such a tool is not ``idempotent`` unless
    said so, and a call of it that a crash interrupted is never run a second time on resume.
    ``requires_approval`` (``True`` or a policy of the arguments and context) pauses the run before the
    call for a human decision; ``untrusted_output=True`` fences the tool's output as data (see
    ``react_agent.approval``). ``strict=True`` validates the model's arguments without coercion
    (``"7"`` is not an int), ``False`` coerces as pydantic's lax mode does; unset, the agent's
    ``strict_tools`` decides. A parameter may start with ``_`` (``_from``): the schema uses that name.
    ``timeout`` (seconds per call): unset, ``DEFAULT_TOOL_TIMEOUT`` (60 s) where a limit can hold — an
    async tool, or a sync tool in a worker thread; a lone sync call under ``run_sync`` runs in the
    caller's thread without one. A sync tool that sets its own always runs in a worker thread, so it holds.
    """

    def build(func: F) -> Tool:
        tool_name = name or func.__name__
        if not _NAME_RE.match(tool_name):
            raise PluginError(tool_name, "a tool name must match ^[a-zA-Z0-9_-]{1,64}$")
        summary, arg_docs = parse_docstring(func.__doc__)
        if not (description or summary):
            raise PluginError(tool_name, "a tool needs a docstring (the model reads it as the description)")
        args_model, context_param = build_args_model(func, tool_name, arg_docs)
        source = inspect.getsourcefile(func) or "<code>"
        return Tool(
            fn=func, name=tool_name, description=description or summary, args_model=args_model,
            timeout=timeout, sequential=sequential, max_retries=max_retries, source=source,
            context_param=context_param, side_effects=side_effects, idempotent=idempotent,
            requires_approval=requires_approval, untrusted_output=untrusted_output, strict=strict,
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
