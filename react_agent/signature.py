"""A tool's arguments from a Python function: its signature and docstring become one pydantic model
(``build_args_model``), from which ``Tool`` takes both the JSON schema it sends and the validation of
what the model sends back. ``ToolContext`` is the parameter type that is injected instead of sent."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from typing_extensions import TypeVar  # PEP 696 defaults (3.13's typing)

from .errors import PluginError

__all__ = ["ToolContext", "build_args_model", "context_param_of", "parse_docstring", "source_of"]

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION_HEADER = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:\w+\s+)?(\w+)\s*:\s*(.*)$")
_SPHINX_OTHER = re.compile(r"^\s*:(returns?|rtype|raises?|yields?|type)\b")

DepsT = TypeVar("DepsT", default=Any)  # a bare ``ToolContext`` is ``ToolContext[Any]``
_NO_DEPS: Any = None


@dataclass(frozen=True, slots=True)
class ToolContext(Generic[DepsT]):
    """Injected into a tool that declares a parameter annotated ``ToolContext`` (or ``ToolContext[Deps]``;
    not in the schema). ``deps`` is what the caller passed as ``agent.run(..., deps=...)`` — database
    handles, the current user — so tools need no globals; ``None`` when none was passed. Deps are not
    journaled: a resumed run has them only if the caller passes them again."""

    run_id: str
    session: str | None
    agent: str
    step: int
    depth: int = 0
    deps: DepsT = _NO_DEPS  # None when the run was given no deps
    user_id: str | None = None
    call_id: str | None = None  # the model's id for this call: with ``run_id``, an idempotency key for side effects


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


def build_args_model(
    fn: Callable[..., Any], name: str, arg_docs: dict[str, str]
) -> tuple[type[BaseModel], str | None]:
    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn, include_extras=True)  # keep Annotated[...] constraints
    except Exception as exc:
        raise PluginError(f"{name}", f"type hints cannot be resolved: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param = None
    taken = set(signature.parameters)
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise PluginError(name, f"parameter *{param.name} is not supported in a tool signature")
        annotation = hints.get(param.name, Any)
        if _is_context(annotation):
            context_param = param.name
            continue
        if param.name not in hints:
            raise PluginError(name, f"parameter {param.name!r} has no type annotation")
        default = ... if param.default is param.empty else param.default
        described = _annotated_description(annotation)  # Annotated[..., Field(description=...)] wins
        doc = arg_docs.get(param.name) or arg_docs.get(param.name.lstrip("_"))
        extra: dict[str, Any] = {"description": doc} if doc and not described else {}
        field_name = param.name
        if param.name.startswith("_"):  # pydantic keeps _names private: a public field, aliased to it
            field_name = param.name.lstrip("_") or "arg"
            while field_name in taken:
                field_name += "_"
            taken.add(field_name)
            extra["alias"] = param.name
        fields[field_name] = (annotation, Field(default, **extra))
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model, context_param


def _is_context(annotation: Any) -> bool:
    return annotation is ToolContext or get_origin(annotation) is ToolContext


def _annotated_description(annotation: Any) -> str | None:
    if get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, FieldInfo) and meta.description:
                return meta.description
    return None


def context_param_of(function: Callable[..., Any]) -> str | None:
    """The parameter of ``function`` annotated ``ToolContext``, if any (a function whose hints cannot
    be read has none)."""
    try:
        hints = get_type_hints(function)
    except Exception:  # noqa: BLE001 - a callable without readable hints simply takes no context
        return None
    return next((name for name, hint in hints.items() if name != "return" and _is_context(hint)), None)


def source_of(function: Callable[..., Any]) -> str:
    try:
        return inspect.getsourcefile(function) or "<code>"
    except TypeError:  # a builtin or a callable object
        return "<code>"
