"""Arguments checked against a JSON schema that came from elsewhere (MCP, OpenAPI, a config file).

``Tool.from_schema`` validates the model's arguments here with the ``jsonschema`` library and gets back
exactly what the model sent. A failure is raised as a pydantic ``ValidationError`` (one line per
problem, located at the argument), so the loop turns it into the same observation as a ``@tool``'s.
Imported on first use: ``import react_agent`` does not load ``jsonschema``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaViolation
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["SchemaArguments", "SchemaError", "check_arguments", "check_object", "loads_lenient", "schema_validator"]


class SchemaArguments(BaseModel):
    """A schema tool's validated arguments: the object the model sent, untouched."""

    arguments: dict[str, Any]


def loads_lenient(raw: str) -> Any:
    """``json.loads`` that also takes literal control characters (newlines, tabs) inside strings — a
    common small-model mistake; everything else must be JSON. Raises ``ValueError``."""
    return json.loads(raw, strict=False)


def schema_validator(parameters: dict[str, Any]) -> Validator:
    """A validator for ``parameters`` (its ``$schema`` picks the draft; 2020-12 by default). Raises
    ``SchemaError`` when ``parameters`` is not a valid schema."""
    cls = validator_for(parameters, default=Draft202012Validator)
    cls.check_schema(parameters)
    return cls(parameters)


def check_arguments(validator: Validator, raw: str, title: str) -> dict[str, Any]:
    """The model's JSON arguments, validated; raises ``ValidationError`` (not JSON, not an object, or
    each place where the schema is not met)."""
    try:
        value = loads_lenient(raw)
    except ValueError as exc:
        raise ValidationError.from_exception_data(title, [InitErrorDetails(
            type="json_invalid", loc=(), input=raw, ctx={"error": str(exc)})]) from None
    if not isinstance(value, dict):
        raise ValidationError.from_exception_data(title, [InitErrorDetails(
            type="dict_type", loc=(), input=value)])
    return check_object(validator, value, title)


def check_object(validator: Validator, value: dict[str, Any], title: str) -> dict[str, Any]:
    """``value`` if it meets the schema; else a ``ValidationError`` with one line per problem."""
    problems = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    if not problems:
        return value
    lines = [line for problem in problems for line in _lines(problem)]
    raise ValidationError.from_exception_data(title, lines)


def _lines(problem: SchemaViolation) -> list[InitErrorDetails]:
    """A jsonschema error as pydantic error lines, located at the argument concerned: a missing
    required property at its own name, each unexpected property at its name."""
    path = tuple(problem.absolute_path)
    instance = problem.instance
    if problem.validator == "required" and isinstance(instance, dict):
        required = problem.validator_value if isinstance(problem.validator_value, list) else []
        missing = next((name for name in required
                        if name not in instance and problem.message.startswith(repr(name))), None)
        if missing is not None:
            return [_line("missing", "Field required", (*path, missing), instance)]
    if problem.validator == "additionalProperties" and isinstance(instance, dict):
        schema = problem.schema if isinstance(problem.schema, dict) else {}
        known = set(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        extra = [name for name in instance if name not in known and not any(re.search(p, name) for p in patterns)]
        if extra:
            return [_line("extra_forbidden", "Extra inputs are not permitted", (*path, name), instance[name])
                    for name in extra]
    return [_line(str(problem.validator), problem.message, path, instance)]


def _line(kind: str, message: str, loc: tuple[str | int, ...], value: Any) -> InitErrorDetails:
    # without a context pydantic-core does not format the message: braces in it stay as they are
    return InitErrorDetails(type=PydanticCustomError(f"jsonschema_{kind}", message), loc=loc, input=value)
