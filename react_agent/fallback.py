"""``FallbackModel``: several models as one — the next is asked when one fails for good.

``Agent(model=["gpt-4o-mini", "local"])`` builds one. Each model keeps its own retries (the SDK's, on
429/5xx/timeouts); only when those are spent does the request go to the next model, and only for
failures another model may not have: HTTP 429 and 5xx, a connection that failed or broke off, a stream
that ended early (``IncompleteResponseError``), an ``error`` object the server sent without a 4xx code.
A 4xx answer (a bad request, a bad key, a context that is too long) is the caller's mistake and is
raised at once. The answering model's name is in ``ModelResponse.model``; the loop keeps it in
``Step.model`` and ``Usage.by_model``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .errors import ModelHTTPError, UserError
from .log import logger
from .model import Model, ModelResponse

__all__ = ["FallbackModel", "FallbackStep", "should_fall_back"]


def should_fall_back(error: ModelHTTPError) -> bool:
    """A failure another model may not have (see the module's docstring)."""
    status = error.status_code
    if status is None:  # the connection failed, a stream broke off or ended early, a server error object
        return True
    return status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class FallbackStep:
    """One model that failed before another answered (kept in ``FallbackModel.failures``)."""

    model: str
    error: str


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

    def _failed(self, model: Model, error: ModelHTTPError, last: bool) -> None:
        if last or not should_fall_back(error):
            raise error
        self.failures.append(FallbackStep(model.name, str(error)))
        logger().info("model_fallback", model=model.name, error=str(error))

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], settings: dict[str, Any]
    ) -> ModelResponse:
        for position, model in enumerate(self.models):
            try:
                response = await model.complete(messages, tools, self._settings(model, settings))
            except ModelHTTPError as exc:
                self._failed(model, exc, position == len(self.models) - 1)
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
            try:
                async for item in model.stream(messages, tools, self._settings(model, settings)):
                    if isinstance(item, str):
                        streamed = True
                        yield item
                    else:
                        item.model = item.model or model.name
                        yield item
                return
            except ModelHTTPError as exc:
                self._failed(model, exc, streamed or position == len(self.models) - 1)

    async def aclose(self) -> None:
        for model in self.models:
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()

