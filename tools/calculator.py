"""Arithmetic the model should not do in its head."""

from __future__ import annotations

import ast
import math
import operator

from react_agent import ModelRetry, tool

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "log": math.log, "exp": math.exp, "abs": abs, "round": round,
              "min": min, "max": max}
_MAX_POWER = 10_000


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POWER:
            raise ModelRetry(f"exponent {right} is too large (limit {_MAX_POWER})")
        return _BINARY[type(node.op)](left, right)  # type: ignore[no-any-return]  # operator funcs are untyped
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]  # as above
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        return _FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args))  # type: ignore[no-any-return, operator]  # math funcs
    raise ModelRetry(f"unsupported expression element: {ast.dump(node)[:80]}. "
                     f"Use numbers, + - * / // % ** and {', '.join(_FUNCTIONS)}.")


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "1234 * 5678" or "sqrt(2) * 3".

    Args:
        expression: the arithmetic expression, using numbers, + - * / // % ** and sqrt, log, exp, abs,
            round, min, max.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ModelRetry(f"{expression!r} is not an arithmetic expression ({exc.msg})") from None
    try:
        value = _evaluate(tree)
    except ZeroDivisionError:
        raise ModelRetry("division by zero") from None
    return f"{expression.strip()} = {value}"


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a length, mass or temperature between units.

    Args:
        value: the number to convert.
        from_unit: the unit of value: km, m, cm, mm, mi, yd, ft, in, kg, g, lb, oz, C, F or K.
        to_unit: the unit to convert to (same kind as from_unit).
    """
    lengths = {"km": 1000.0, "m": 1.0, "cm": 0.01, "mm": 0.001, "mi": 1609.344, "yd": 0.9144, "ft": 0.3048,
               "in": 0.0254}
    masses = {"kg": 1.0, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125}
    for table in (lengths, masses):
        if from_unit in table and to_unit in table:
            return f"{value} {from_unit} = {value * table[from_unit] / table[to_unit]:.6g} {to_unit}"
    temps = {"C": (1.0, 0.0), "F": (5 / 9, -32.0), "K": (1.0, -273.15)}
    if from_unit in temps and to_unit in temps:
        scale, offset = temps[from_unit]
        celsius = (value + offset) * scale
        back_scale, back_offset = temps[to_unit]
        return f"{value} {from_unit} = {celsius / back_scale - back_offset:.6g} {to_unit}"
    raise ModelRetry(f"cannot convert {from_unit!r} to {to_unit!r}; units: {', '.join([*lengths, *masses, *temps])}")
