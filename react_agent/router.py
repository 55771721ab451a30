"""Routing: a classifier agent picks a category with a constrained output, the category's specialist
answers. The routed run's output says who handled the request.

    router = Router(routes={"support": support, "technical": tech, "billing": billing})
    result = await router.run("Was I refunded for order 1003?")
    result.output.handled_by       # "billing"
    result.children                # [classifier run, specialist run]
    result.total_usage             # both runs' tokens and cost

The classifier's ``output_type`` is ``route_type(categories)``: ``category`` is a ``Literal`` of the
route names, so a model that supports constrained output (the local llama.cpp server, through the
``final_answer`` tool's grammar) cannot name another category, and any other model gets its invalid
answer sent back (``output_retries``) like every other output validation failure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from ._sync import SyncRunner
from .agent import Agent, Hook, call_hooks
from .errors import UserError
from .steps import Event, RunEnd, RunResult, RunStart

__all__ = ["Route", "Routed", "Router", "classifier_agent", "route_type"]

CLASSIFIER_INSTRUCTIONS = (
    "Classify the user's request into exactly one category: {categories}. "
    "Do not answer the request; give only the category and a one-sentence reason."
)


class Route(BaseModel):  # route_type() narrows ``category`` to the route names
    """Which specialist should handle the request, and why."""

    category: str = Field(description="the category of the request")
    reason: str = Field(description="one short sentence saying why")


def route_type(categories: Sequence[str]) -> type[Route]:
    """A ``Route`` whose ``category`` is ``Literal[*categories]`` (the constrained classification)."""
    names = tuple(categories)
    if not names:
        raise UserError("a router needs at least one route")
    choice: Any = Literal.__getitem__(names)
    return create_model("Route", __base__=Route, __doc__=Route.__doc__,
                        category=(choice, Field(description=f"one of: {', '.join(names)}")))


class Routed(BaseModel):
    """A routed run's output: who handled it, why, and the specialist's answer."""

    handled_by: str  # the specialist agent's name
    category: str
    reason: str
    answer: Any = None  # the specialist's output (text, or its output_type instance)


def classifier_agent(categories: Iterable[str], *, name: str = "router", instructions: str | None = None,
                     **agent_kwargs: Any) -> Agent:
    """An ``Agent`` that answers with a ``route_type(categories)`` through the ``final_answer`` tool."""
    names = list(categories)
    return Agent(name=name, instructions=instructions or CLASSIFIER_INSTRUCTIONS.format(categories=", ".join(names)),
                 output_type=route_type(names), answer_tool=True, **agent_kwargs)


class Router:
    """Classify with ``classifier``, then run ``routes[category]`` on the same input and session.

    Quacks like an ``Agent`` where task files need it: ``name``, ``hooks``, ``output_type``, ``run``.
    Hooks get the router's own ``RunStart`` / ``RunEnd`` around the events of the two nested runs."""

    output_type: type[BaseModel] = Routed

    def __init__(self, routes: Mapping[str, Agent], *, classifier: Agent | None = None, name: str | None = None,
                 hooks: Iterable[Hook] = (), **classifier_kwargs: Any) -> None:
        self.routes = dict(routes)
        if classifier is None:
            classifier = classifier_agent(self.routes, name=name or "router", **classifier_kwargs)
        elif classifier_kwargs:
            raise UserError(f"{sorted(classifier_kwargs)} only apply when the router builds its classifier")
        self.classifier = classifier
        self.name = name or classifier.name
        self.hooks: list[Hook] = list(hooks)
        self._sync = SyncRunner()
        self._check_categories()

    def _check_categories(self) -> None:
        output_type = self.classifier.output_type
        field = output_type.model_fields.get("category") if output_type else None
        if field is None:
            raise UserError(f"classifier {self.classifier.name!r} needs an output_type with a 'category' field "
                            "(use route_type(categories))")
        allowed = getattr(field.annotation, "__args__", None)
        if allowed is not None and set(allowed) != set(self.routes):
            raise UserError(f"classifier categories {sorted(allowed)} differ from the routes {sorted(self.routes)}")

    async def run(self, input: str, *, session: str | None = None, user_id: str | None = None,
                  variables: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
                  deps: Any = None, run_id: str | None = None) -> RunResult:
        """Classify, hand over, and return one ``RunResult`` whose output is a ``Routed`` (or ``None``
        when the classification failed; its status and error then come from the classifier's run)."""
        started = time.perf_counter()
        session = session or uuid.uuid4().hex[:12]
        run_id = run_id or uuid.uuid4().hex[:12]
        await self._emit(RunStart(run_id, self.name, session, input))
        kwargs: dict[str, Any] = {"user_id": user_id, "variables": variables, "metadata": metadata, "deps": deps}
        decision = await self._run(self.classifier, input, session=f"{session}/{self.classifier.name}", **kwargs)
        route = decision.output if decision.status == "completed" else None
        category = getattr(route, "category", None)
        if not isinstance(category, str) or category not in self.routes:
            problem = decision.error or f"the classifier gave no valid category (got {category!r})"
            result = RunResult(run_id=run_id, agent=self.name, session=session, model=decision.model,
                               status="error" if decision.status == "completed" else decision.status,
                               error=f"routing failed: {problem}",
                               error_type=decision.error_type or "UnexpectedModelBehavior", children=[decision])
        else:
            specialist = self.routes[category]
            answer = await self._run(specialist, input, session=session, **kwargs)
            output = Routed(handled_by=specialist.name, category=category, reason=getattr(route, "reason", ""),
                            answer=answer.output)
            result = RunResult(run_id=run_id, agent=self.name, session=session, model=answer.model,
                               status=answer.status, output=output, error=answer.error,
                               error_type=answer.error_type, children=[decision, answer],
                               pending=answer.pending)  # the specialist's run id continues it
        result.ms = (time.perf_counter() - started) * 1000
        await self._emit(RunEnd(result))
        return result

    def run_sync(self, input: str, **kwargs: Any) -> RunResult:
        """``run`` for code without an event loop, on one kept loop per thread (see ``Agent.run_sync``)."""
        return self._sync.run(lambda: self.run(input, **kwargs))

    def close(self) -> None:
        """Close the event loops ``run_sync`` kept, with the model clients of every agent on them."""
        self._sync.close()

    async def _run(self, agent: Agent, input: str, **kwargs: Any) -> RunResult:
        """One nested run; its events go to the router's hooks as well as the agent's own."""
        result: RunResult | None = None
        async for event in agent.stream(input, _stream_tokens=False, **kwargs):
            await self._emit(event)
            if isinstance(event, RunEnd):
                result = event.result
        assert result is not None
        return result

    async def _emit(self, event: Event) -> None:
        await call_hooks(self.hooks, event)
