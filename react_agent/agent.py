"""``Agent``: configuration (instructions, tools, model, limits) and ``run`` / ``run_sync`` / ``stream``."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, PrivateAttr

from .errors import UserError
from .log import logger
from .memory import Store
from .model import Model, resolve_model
from .prompts import Prompts
from .steps import Event, RunEnd, RunResult, RunStart, StepEnd, TextDelta, ToolEnd, ToolStart
from .tools import Tool, ToolContext, answer_tool, tool
from .usage import Usage

if TYPE_CHECKING:
    from .loop import RunState

__all__ = ["Agent", "DelegationReport", "Hook"]

Hook = Callable[[Event], Awaitable[None] | None]


class Agent:
    """A tool-using agent. Cheap to build; nothing is imported or connected until the first run."""

    def __init__(
        self,
        name: str = "agent",
        instructions: str = "You are a helpful assistant.",
        *,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        plugins: Iterable[str | Path] = (),
        model: str | Model | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        request_timeout: float | None = None,
        max_retries: int | None = None,
        max_steps: int = 10,
        max_tokens_total: int | None = None,
        context_budget: int | None = None,
        summarize_dropped: bool = False,
        summary_template: str = "summarize.j2",
        max_tool_output: int = 8000,
        output_type: type[BaseModel] | None = None,
        output_retries: int = 2,
        loop_limit: int = 4,
        max_unknown_tool_calls: int = 3,
        model_settings: dict[str, Any] | None = None,
        prompts: Iterable[str | Path] = (),
        variables: dict[str, Any] | None = None,
        system_template: str = "react_system.j2",
        store: Store | str | Path | None = None,
        hooks: Iterable[Hook] = (),
        answer_tool: bool | None = None,
    ) -> None:
        self.name = name
        self.instructions = instructions
        self._model_spec = model
        self._base_url = base_url
        self._api_key = api_key
        self.request_timeout = request_timeout  # seconds per model request; None: the model's default
        self.max_retries = max_retries  # model request retries; None: the model's default
        self.max_steps = max_steps
        self.max_tokens_total = max_tokens_total
        self.context_budget = context_budget
        self.summarize_dropped = summarize_dropped
        self.summary_template = summary_template
        self.max_tool_output = max_tool_output
        self.output_type = output_type
        self.output_retries = output_retries
        self.loop_limit = loop_limit
        self.max_unknown_tool_calls = max_unknown_tool_calls
        self.model_settings = dict(model_settings or {})
        self.prompts = Prompts(list(prompts))
        self.variables = dict(variables or {})
        self.system_template = system_template
        self.store = store if isinstance(store, Store) else Store(store)
        self.hooks = list(hooks)
        self._answer_tool = answer_tool
        self.tools: dict[str, Tool] = {}
        for item in tools:
            self.add_tool(item if isinstance(item, Tool) else tool(item))
        if plugins:
            from .plugins import discover  # noqa: PLC0415 - plugin discovery imports user files

            found = discover(list(plugins))
            for item in found.tools.values():
                self.add_tool(item)

    def add_tool(self, item: Tool) -> None:
        if item.name in self.tools and self.tools[item.name] is not item:
            from .errors import DuplicateToolError  # noqa: PLC0415

            raise DuplicateToolError(item.name, self.tools[item.name].source, item.source)
        self.tools[item.name] = item
        self.__dict__.pop("tool_schemas", None)

    @cached_property
    def model(self) -> Model:
        return resolve_model(self._model_spec, base_url=self._base_url, api_key=self._api_key,
                             request_timeout=self.request_timeout, max_retries=self.max_retries)

    @cached_property
    def answer_tool(self) -> Tool | None:
        """The ``final_answer`` tool, when the final answer is given by a tool call instead of text.

        On by default for models that prefer it (the local llama.cpp server cannot emit text when
        tools are offered); ``Agent(answer_tool=True/False)`` decides otherwise. With an
        ``output_type`` the tool's parameters are that type's schema."""
        wanted = self._answer_tool
        if wanted is None:
            wanted = bool(self.tools) and getattr(self.model, "prefers_answer_tool", False)
        return answer_tool(self.output_type) if wanted else None

    @cached_property
    def tool_schemas(self) -> list[dict[str, Any]]:
        extra = [self.answer_tool.schema()] if self.answer_tool else []
        return [*(t.schema() for t in self.tools.values()), *extra]

    def system_prompt(self, variables: dict[str, Any] | None = None) -> str:
        values = {**self.variables, **(variables or {})}
        instructions = self.prompts.instructions(self.instructions, **values)
        schema = None
        if self.output_type is not None:
            import json  # noqa: PLC0415

            schema = json.dumps(self.output_type.model_json_schema())
        values.setdefault("today", date.today().isoformat())  # a replay pins the recorded date
        reserved = {"agent_name", "instructions", "tools", "output_schema", "answer_tool"} & set(values)
        if reserved:
            raise UserError(f"template variables {sorted(reserved)} are reserved for the system prompt")
        return self.prompts.render(
            self.system_template, agent_name=self.name, instructions=instructions,
            tools=list(self.tools.values()), output_schema=schema,
            answer_tool=self.answer_tool.name if self.answer_tool else None, **values,
        )

    # -- running ----------------------------------------------------------------------------------
    async def run(self, input: str, *, session: str | None = None, user_id: str | None = None,
                  resume: bool = False, variables: dict[str, Any] | None = None, run_id: str | None = None,
                  metadata: dict[str, Any] | None = None, _depth: int = 0) -> RunResult:
        """Run to the end and return the ``RunResult`` (never raises for model or API failures)."""
        result: RunResult | None = None
        async for event in self.stream(input, session=session, user_id=user_id, resume=resume,
                                       variables=variables, run_id=run_id, metadata=metadata,
                                       _stream_tokens=False, _depth=_depth):
            if isinstance(event, RunEnd):
                result = event.result
        assert result is not None
        return result

    def run_sync(self, input: str, **kwargs: Any) -> RunResult:
        """``run`` for code without an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(input, **kwargs))
        raise UserError("run_sync() was called inside a running event loop; use `await agent.run(...)`")

    async def stream(self, input: str, *, session: str | None = None, user_id: str | None = None,
                     resume: bool = False, variables: dict[str, Any] | None = None, run_id: str | None = None,
                     metadata: dict[str, Any] | None = None, _stream_tokens: bool = True,
                     _depth: int = 0) -> AsyncIterator[Event]:
        """Yield events as the run goes: ``TextDelta`` tokens, ``ToolStart``/``ToolEnd``, ``StepEnd``,
        and last ``RunEnd`` with the result."""
        from .loop import close_interrupted, run_loop  # noqa: PLC0415 - loads pydantic models

        state = self._start(input, session=session, user_id=user_id, resume=resume, variables=variables,
                            run_id=run_id, metadata=metadata, depth=_depth)
        if not resume:
            close_interrupted(state)
            state.append({"role": "user", "content": input})
        log = logger().bind(run_id=state.run_id, session=state.session, agent=self.name)
        async for event in run_loop(state, stream=_stream_tokens, resume=resume):
            _log_event(log, event)
            await call_hooks(self.hooks, event)
            yield event

    def _start(self, input: str, *, session: str | None, user_id: str | None, resume: bool,
               variables: dict[str, Any] | None, run_id: str | None, metadata: dict[str, Any] | None,
               depth: int) -> RunState:
        from .loop import RunState  # noqa: PLC0415
        from .steps import Step  # noqa: PLC0415

        store = self.store
        steps: list[Step] = []
        if resume:
            if session is None and run_id is None:
                raise UserError("resume=True needs the session (or run id) of the run to resume")
            record = store.run(run_id) if run_id else _last_run(store, session)
            if record is None:
                raise UserError(f"no run to resume for session {session!r}" if run_id is None
                                else f"no run with id {run_id!r}")
            run_id = record["run_id"]
            session = record["session"]
            steps = [Step.model_validate(s) for s in store.run_steps(run_id)]
            variables = {**(record.get("variables") or {}), **(variables or {})}
            system = self.system_prompt(variables)
        else:
            system = self.system_prompt(variables)  # a bad template fails before anything is written
            session = session or uuid.uuid4().hex[:12]
            run_id = run_id or uuid.uuid4().hex[:12]
            if not store.exists(session):
                store.create_session(session, user_id=user_id, agent=self.name)
            store.start_run(run_id, {"run_id": run_id, "session": session, "agent": self.name, "input": input,
                                     "status": "running", "model": self.model.name, "variables": variables,
                                     **(metadata or {})})
        assert run_id is not None and session is not None
        usage = Usage()
        for step in steps:  # a resumed run goes on counting (and budgeting) from its journaled steps
            usage.add(step.usage)
        return RunState(agent=self, run_id=run_id, session=session, store=store, system=system,
                        history=store.messages(session), steps=steps, depth=depth, usage=usage)

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """This agent as a tool another agent can call; the nested run shares the store and its usage
        shows in the observation."""
        agent = self

        async def delegate(request: str, context: ToolContext) -> DelegationReport:
            session = f"{context.session}/{agent.name}" if context else None
            result = await agent.run(request, session=session, _depth=(context.depth + 1) if context else 1)
            return DelegationReport.of(result)

        summary = description or f"Ask the {agent.name} agent."
        delegate.__doc__ = f"{summary}\n\nArgs:\n    request: what to ask the {agent.name} agent, in plain words."
        built = tool(name=name or f"ask_{agent.name}")(delegate)
        built.source = f"agent:{agent.name}"
        return built


class DelegationReport(BaseModel):
    """What a delegating agent's model sees of a nested run (its JSON). The loop takes the full
    ``RunResult`` from ``run`` and lists it in the parent's ``RunResult.children``. No run id: the
    model has no use for it, and a random id would make recorded requests unrepeatable."""

    agent: str
    status: str
    output: Any = None
    tokens: int  # the nested run's total, its own nested runs included
    cost_usd: float | None
    _run: RunResult | None = PrivateAttr(None)

    @property
    def run(self) -> RunResult | None:
        return self._run

    @classmethod
    def of(cls, result: RunResult) -> DelegationReport:
        output = result.output.model_dump(mode="json") if isinstance(result.output, BaseModel) else result.output
        total = result.total_usage
        report = cls(agent=result.agent, status=result.status, output=output,
                     tokens=total.total_tokens, cost_usd=total.cost_usd)
        report._run = result
        return report


async def call_hooks(hooks: Iterable[Hook], event: Event) -> None:
    """Give ``event`` to each hook in turn; a hook may be sync or async."""
    for hook in hooks:
        outcome = hook(event)
        if inspect.isawaitable(outcome):
            await outcome


def _last_run(store: Store, session: str | None) -> dict[str, Any] | None:
    runs = store.runs(session)
    return runs[-1][1] if runs else None


def _log_event(log: Any, event: Event) -> None:
    if isinstance(event, TextDelta):
        return
    if isinstance(event, RunStart):
        log.info("run_start", input=event.input[:200])
    elif isinstance(event, ToolStart):
        log.info("tool_start", step=event.step, tool=event.call.name)
    elif isinstance(event, ToolEnd):
        obs = event.observation
        log.info("tool_end", step=event.step, tool=obs.tool, kind=obs.kind, ms=round(obs.ms, 1))
    elif isinstance(event, StepEnd):
        step = event.step
        log.info("step", step=step.index, tools=[a.name for a in step.actions], final=step.answer is not None,
                 prompt_tokens=step.usage.prompt_tokens, completion_tokens=step.usage.completion_tokens,
                 ms=round(step.ms, 1))
    elif isinstance(event, RunEnd):
        result = event.result
        log.info("run_end", status=result.status, steps=len(result.steps), tokens=result.usage.total_tokens,
                 cost_usd=result.usage.cost_usd, ms=round(result.ms, 1), error=result.error)

