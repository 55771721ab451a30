"""``FallbackModel``: several models as one — the next is asked when one fails for good.

``Agent(model=["gpt-4o-mini", "local"])`` builds one. Each model keeps its own retries (the SDK's, on
429/5xx/timeouts); only when those are spent does the request go to the next model, and only for
failures another model may not have: HTTP 429 and 5xx, a connection that failed or broke off, a stream
that ended early (``IncompleteResponseError``), an ``error`` object the server sent without a 4xx code.
A 4xx answer (a bad request, a bad key, a context that is too long) is the caller's mistake and is
raised at once. The answering model's name is in ``ModelResponse.model``; the loop keeps it in
``Step.model`` and ``Usage.by_model``. Every model that failed, handed over or not, is told to the
callbacks of ``watch_failures`` (tracing gives each a span; the loop knows nothing of them).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from .errors import ModelHTTPError, RunError, UserError
from .log import logger
from .model import Model, ModelResponse

__all__ = ["FallbackModel", "FallbackStep", "should_fall_back", "stop_watching", "watch_failures"]


def should_fall_back(error: ModelHTTPError) -> bool:
    """A failure another model may not have (see the module's docstring)."""
    status = error.status_code
    if status is None:  # the connection failed, a stream broke off or ended early, a server error object
        return True
    return status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class FallbackStep:
    """One model's failed request: the ones another model answered are kept in ``FallbackModel.failures``."""

    model: str
    error: str
    error_type: str = ""  # the exception's class name
    started_ns: int = 0  # when the request was sent and when it failed (``time.time_ns()``)
    ended_ns: int = 0


_watchers: contextvars.ContextVar[tuple[Callable[[FallbackStep], None], ...]] = contextvars.ContextVar(
    "react_agent_fallback_watchers", default=())


def watch_failures(callback: Callable[[FallbackStep], None]) -> contextvars.Token[Any] | None:
    """Call ``callback`` with each failed request of a ``FallbackModel`` in this context (and the tasks
    started from it), as it fails. The token resets it (``None``: it was already watching)."""
    watching = _watchers.get()
    return None if callback in watching else _watchers.set((*watching, callback))


def stop_watching(token: contextvars.Token[Any]) -> None:
    """Undo ``watch_failures``; in another context (a stream closed elsewhere) nobody is watched any more."""
    try:
        _watchers.reset(token)
    except ValueError:
        _watchers.set(())


class FallbackModel:
    """Ask ``models`` in order; the first that answers answers. ``name`` is the first model's."""

    def __init__(self, *models: Model) -> None:
        if not models:
            raise UserError("FallbackModel needs at least one model")
        self.models: tuple[Model, ...] = tuple(models)
        self.name = models[0].name
        self.failures: list[FallbackStep] = []  # every failure that sent a request on to the next model
        # the final answer comes through a tool if any model needs that (the embedded one does)
        self.prefers_answer_tool = any(getattr(m, "prefers_answer_tool", False) for m in models)

    def __repr__(self) -> str:
        return f"FallbackModel({', '.join(m.name for m in self.models)})"

    @staticmethod
    def _settings(model: Model, settings: dict[str, Any]) -> dict[str, Any]:
        return {**getattr(model, "default_settings", {}), **settings}

    def _failed(self, model: Model, error: RunError, started_ns: int, last: bool) -> None:
        failure = FallbackStep(model.name, str(error), type(error).__name__, started_ns, time.time_ns())
        for watcher in _watchers.get():
            watcher(failure)
        if last or not isinstance(error, ModelHTTPError) or not should_fall_back(error):
            raise error
        self.failures.append(failure)
        logger().info("model_fallback", model=model.name, error=str(error))

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> ModelResponse:
        for position, model in enumerate(self.models):
            started_ns = time.time_ns()
            try:
                response = await model.complete(messages, tools, self._settings(model, settings))
            except RunError as exc:
                self._failed(model, exc, started_ns, position == len(self.models) - 1)
                continue
            response.model = response.model or model.name
            return response
        raise AssertionError("unreachable: the last model's failure is raised")

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> AsyncIterator[str | ModelResponse]:
        """As ``complete``; a model that fails after its text began to stream is not replaced (the text
        cannot be taken back): its error is raised."""
        for position, model in enumerate(self.models):
            streamed = False
            started_ns = time.time_ns()
            try:
                async for item in model.stream(messages, tools, self._settings(model, settings)):
                    if isinstance(item, str):
                        streamed = True
                        yield item
                    else:
                        item.model = item.model or model.name
                        yield item
                return
            except RunError as exc:
                self._failed(model, exc, started_ns, streamed or position == len(self.models) - 1)

    async def aclose(self) -> None:
        for model in self.models:
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()

