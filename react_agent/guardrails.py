"""Guardrails: checks on a run's input and final output that can stop it, in the manner of the OpenAI
Agents SDK's tripwires.

A guardrail is a plain function (sync or async) of the text or output that returns ``None`` to let it
pass, or the reason to refuse it (raising ``RunBlocked(reason)`` does the same). A refused run ends with
status ``blocked`` and the reason in ``result.error`` — its record closed, its history valid; a refused
output is not returned. A guardrail that raises anything else ends the run with status ``error``
(``GuardrailError``), closed the same way.

    def no_card_numbers(text: str) -> str | None:
        return "the question holds a card number" if re.search(r"\\b(?:\\d[ -]?){13,16}\\b", text) else None

    Agent(..., input_guardrails=[no_card_numbers], output_guardrails=[no_card_numbers])
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import GuardrailError, RunBlocked, RunError

__all__ = ["Guardrail", "first_refusal"]

Guardrail = Callable[[Any], "Awaitable[str | None] | str | None"]


async def first_refusal(guardrails: Iterable[Guardrail], value: Any) -> RunError | None:
    """Run the guardrails in order; the first refusal (``RunBlocked``), a ``GuardrailError`` for one that
    raised anything else (it could not decide, so nothing passes), or ``None`` when all let ``value`` pass."""
    for guard in guardrails:
        try:
            verdict = guard(value)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except RunBlocked as refusal:
            return refusal
        except Exception as exc:  # noqa: BLE001 - user code: its failure ends the run, it never escapes it
            name = getattr(guard, "__qualname__", None) or type(guard).__name__
            return GuardrailError(name, f"{type(exc).__name__}: {exc}")
        if verdict:
            return RunBlocked(str(verdict))
    return None
