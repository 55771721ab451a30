"""``Agent``: configuration (instructions, tools, model, limits) and ``run`` / ``run_sync`` / ``stream``."""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ._sync import SyncRunner
from .approval import Decision, Deny, UntrustedPolicy, nested_call_id, new_fence
from .errors import HookError, PromptError, RunBlocked, RunError, UserError
from .log import logger
from .model import Model
from .prompts import Prompts
from .resolve import resolve_model
from .steps import DelegationReport, Event, RunEnd, RunResult, RunStart, StepEnd, TextDelta, ToolEnd, ToolStart
from .stores import DiskStore, Store, open_store
from .tools import STRICT_DEFAULT, Tool, ToolContext, answer_tool, describe_validation_error, tool

if TYPE_CHECKING:
    from .guardrails import Guardrail
    from .history import Turn
    from .loop import RunState
    from .mcp import MCPServer
    from .stores.base import RunRecord

__all__ = ["CANCEL", "Agent", "Hook"]

Hook = Callable[[Event], Awaitable[None] | None]
CANCEL = "react_agent.cancel"
"""``task.cancel(CANCEL)`` on the task running a run ends it with status ``cancelled``: the calls under way
answered, the end journaled, the history valid. A cancellation with any other message (Ctrl-C, a server
shutting down) leaves the run open, as a crash would, for ``resume``."""


class Agent:
    """A tool-using agent. Cheap to build; nothing is imported or connected until the first run."""

    def __init__(
        self,
        name: str = "agent",
        instructions: str = "You are a helpful assistant.",
        *,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        plugins: Iterable[str | Path] = (),
        model: str | Model | Sequence[str | Model] | None = None,
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
        strict_tools: bool = STRICT_DEFAULT,
        model_settings: dict[str, Any] | None = None,
        prompts: Iterable[str | Path] = (),
        variables: dict[str, Any] | None = None,
        system_template: str = "react_system.j2",
        store: Store | str | Path | None = None,
        hooks: Iterable[Hook] = (),
        answer_tool: bool | None = None,
        untrusted_policy: UntrustedPolicy = "approve",
        input_guardrails: Iterable[Guardrail] = (),
        output_guardrails: Iterable[Guardrail] = (),
        mcp_servers: Iterable[MCPServer] = (),
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
        self.strict_tools = strict_tools  # the default of tools that set no ``strict`` of their own
        self.model_settings = dict(model_settings or {})
        self.prompts = Prompts(list(prompts))
        self.variables = dict(variables or {})
        self.system_template = system_template
        # none given: the store $REACT_AGENT_STORE names, else the disk store (stores.selection); a path: disk
        self.store = store if isinstance(store, Store) else open_store() if store is None else DiskStore(store)
        self.hooks = list(hooks)
        self.origin = f"agent {name!r}"  # where it was configured, for errors (a task file sets its own)
        self._answer_tool = answer_tool
        self.untrusted_policy = untrusted_policy
        self.input_guardrails = list(input_guardrails)
        self.output_guardrails = list(output_guardrails)
        self.mcp_servers = list(mcp_servers)  # their tools join ``tools`` when a run connects them
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
        from dataclasses import replace  # noqa: PLC0415

        values = self._run_variables(variables)
        try:
            instructions = self.prompts.instructions(self.instructions, **values)
        except PromptError as exc:  # name the setting that points at the template
            raise replace(exc, where=exc.where or f"{self.origin}.instructions") from None
        schema = None
        if self.output_type is not None:
            import json  # noqa: PLC0415

            schema = json.dumps(self.output_type.model_json_schema())
        reserved = {"agent_name", "instructions", "tools", "output_schema", "answer_tool", "untrusted"} & set(values)
        if reserved:
            raise UserError(f"template variables {sorted(reserved)} are reserved for the system prompt")
        try:
            return self.prompts.render(
                self.system_template, agent_name=self.name, instructions=instructions,
                tools=list(self.tools.values()), output_schema=schema,
                answer_tool=self.answer_tool.name if self.answer_tool else None,
                untrusted=any(t.untrusted_output for t in self.tools.values()), **values,
            )
        except PromptError as exc:
            raise replace(exc, where=exc.where or f"{self.origin}.system_template") from None

    # -- running ----------------------------------------------------------------------------------
    async def run(self, input: str, *, session: str | None = None, user_id: str | None = None,
                  resume: bool = False, variables: dict[str, Any] | None = None, run_id: str | None = None,
                  metadata: dict[str, Any] | None = None, approvals: Mapping[str, Decision] | None = None,
                  deps: Any = None, model_settings: dict[str, Any] | None = None, _depth: int = 0) -> RunResult:
        """Run to the end and return the ``RunResult`` (never raises for model or API failures).

        ``resume=True`` takes up the run ``run_id`` (or the session's last run) where its journal ends:
        after a crash, or — with ``approvals`` ({call id: ``Approve()`` / ``Deny("why")``}) — a run that
        is ``awaiting_approval``. ``deps`` reach the tools as ``ToolContext.deps``; they are not
        journaled, so a resumed run has them only when they are passed again. ``model_settings`` (e.g.
        ``{"temperature": 0}``) override the agent's for this run (kept in its record, so a resumed run
        uses them too)."""
        result: RunResult | None = None
        async for event in self.stream(input, session=session, user_id=user_id, resume=resume,
                                       variables=variables, run_id=run_id, metadata=metadata, approvals=approvals,
                                       deps=deps, model_settings=model_settings, _stream_tokens=False,
                                       _depth=_depth):
            if isinstance(event, RunEnd):
                result = event.result
        assert result is not None
        return result

    def run_sync(self, input: str, **kwargs: Any) -> RunResult:
        """``run`` for code without an event loop. Calls from one thread share one event loop, and with
        it the model's client and connections; ``close()`` (or interpreter exit) closes them."""
        return self._sync.run(lambda: self.run(input, **kwargs))

    def close(self) -> None:
        """Close the event loops ``run_sync`` kept, with their model clients. The agent stays usable."""
        self._sync.close()

    @cached_property
    def _sync(self) -> SyncRunner:
        return SyncRunner()

    async def resume(self, run_id: str, approvals: Mapping[str, Decision] | None = None, *,
                     deps: Any = None) -> RunResult:
        """Take up run ``run_id``: after a crash, or with the decisions on the calls it awaits approval for.
        ``deps`` are not journaled: pass the run's deps again."""
        return await self.run("", run_id=run_id, resume=True, approvals=approvals, deps=deps)

    async def stream(self, input: str, *, session: str | None = None, user_id: str | None = None,
                     resume: bool = False, variables: dict[str, Any] | None = None, run_id: str | None = None,
                     metadata: dict[str, Any] | None = None, approvals: Mapping[str, Decision] | None = None,
                     deps: Any = None, model_settings: dict[str, Any] | None = None, _stream_tokens: bool = True,
                     _depth: int = 0) -> AsyncGenerator[Event, None]:
        """Yield events as the run goes: ``TextDelta`` tokens, ``ToolStart``/``ToolEnd``, ``StepEnd``,
        and last ``RunEnd`` with the result. ``task.cancel(CANCEL)`` on the task consuming it ends the run
        ``cancelled`` (closed; the ``CancelledError`` still propagates); any other cancellation leaves it
        open for ``resume``.

        A hook that raises ends the run — status ``blocked`` for ``RunBlocked``, else ``error`` — with
        its record closed and its history valid; only a hook raising once the run's end is journaled
        (on the last ``StepEnd`` or on ``RunEnd``) propagates, as a ``HookError``.

        The agent's MCP servers are connected first (unless it holds them open): one that cannot be
        started is an ``MCPServerError``, raised before anything is written."""
        from contextlib import aclosing  # noqa: PLC0415

        options: dict[str, Any] = {"session": session, "user_id": user_id, "resume": resume, "variables": variables,
                   "run_id": run_id, "metadata": metadata, "approvals": approvals,
                   "deps": deps, "model_settings": model_settings, "_stream_tokens": _stream_tokens,
                   "_depth": _depth}
        servers = list(self.mcp_servers)
        if servers:
            await self._acquire_servers()
        try:
            async with aclosing(self._events(input, **options)) as events:
                async for event in events:
                    yield event
        finally:
            for server in servers:
                await server.release()

    # -- MCP servers ---------------------------------------------------------------------------------
    async def _acquire_servers(self, *, hold: bool = False) -> None:
        """Connect the MCP servers (those not connected yet) and put their current tools on the agent."""
        acquired = []
        try:
            for server in self.mcp_servers:
                tools = await server.acquire(hold=hold)
                acquired.append(server)
                for name in [n for n, t in self.tools.items() if t.source == server.source]:
                    del self.tools[name]
                for item in tools:
                    self.add_tool(item)
        except BaseException:
            for server in acquired:
                await (server.close() if hold else server.release())
            raise
        self.__dict__.pop("answer_tool", None)  # it depends on whether the agent has tools

    async def open(self) -> Agent:
        """Connect the MCP servers and keep them open across runs until ``aclose()``."""
        await self._acquire_servers(hold=True)
        return self

    async def aclose(self) -> None:
        """Close the MCP servers held open by ``open()`` / ``async with`` (stdio servers' processes end).
        (``close()`` is the sync one: it closes the loops ``run_sync`` kept.)"""
        for server in self.mcp_servers:
            await server.close()

    async def __aenter__(self) -> Agent:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _events(self, input: str, *, session: str | None, user_id: str | None, resume: bool,
                      variables: dict[str, Any] | None, run_id: str | None, metadata: dict[str, Any] | None,
                      approvals: Mapping[str, Decision] | None, deps: Any, model_settings: dict[str, Any] | None,
                      _stream_tokens: bool, _depth: int) -> AsyncGenerator[Event, None]:
        from contextlib import aclosing  # noqa: PLC0415

        from .loop import Stop, best_partial, finish, run_loop  # noqa: PLC0415 - loads pydantic models
        from .tracing import tracing_hooks  # noqa: PLC0415

        tracers = tracing_hooks()  # OpenTelemetry spans, when it is installed and configured
        hooks: list[Hook] = [*tracers, *self.hooks]
        if model_settings and not resume:
            metadata = {**(metadata or {}), "model_settings": dict(model_settings)}
        state = self._start(input, session=session, user_id=user_id, resume=resume, variables=variables,
                            run_id=run_id, metadata=metadata, approvals=approvals, depth=_depth)
        state.deps = deps
        if model_settings:  # given again on a resume: over the ones in the record
            state.model_settings = {**state.model_settings, **model_settings}
        log = logger().bind(run_id=state.run_id, session=state.session, agent=self.name)
        stop: Stop | None = None
        try:
            async with aclosing(run_loop(state, stream=_stream_tokens)) as events:
                async for event in events:
                    _log_event(log, event)
                    try:
                        await call_hooks(hooks, event)
                    except RunError as exc:
                        if state.closed:  # the run's end is journaled already: nothing left to close
                            raise
                        stop = Stop("blocked" if isinstance(exc, RunBlocked) else "error", exc)
                        break
                    yield event
        except asyncio.CancelledError as exc:
            if exc.args[:1] == (CANCEL,) and not state.closed:  # cancelled on purpose: end it, closed
                _log_event(log, RunEnd(finish(state, Stop("cancelled", output=best_partial(state)))))
            else:  # any other cancellation (Ctrl-C, a server stopping) leaves it to `resume`, like a crash
                _keep_deferred(state, log)
            raise
        except BaseException:  # a bug, or the consumer stopped listening: open for `resume`, nothing lost
            _keep_deferred(state, log)
            raise
        if stop is not None:
            stop.output = best_partial(state)
            end = RunEnd(finish(state, stop))
            _log_event(log, end)
            await call_hooks(tracers, end)
            yield end

    def _start(self, input: str, *, session: str | None, user_id: str | None, resume: bool,
               variables: dict[str, Any] | None, run_id: str | None, metadata: dict[str, Any] | None,
               approvals: Mapping[str, Decision] | None, depth: int) -> RunState:
        """The run's state: a new run is journaled (record and question in one commit) before anything
        else happens; a resumed one is read back from the journal."""
        from .history import fold  # noqa: PLC0415
        from .journal import Journal, start_entries  # noqa: PLC0415
        from .loop import RunState  # noqa: PLC0415
        from .stores.base import RunRecord, SessionInfo  # noqa: PLC0415

        store = self.store
        if resume:
            return self._resume(session, run_id, approvals, variables, depth)
        if approvals:
            raise UserError("approvals are decisions on a paused run: pass them with resume=True and its run_id")
        values = self._run_variables(variables)
        system = self.system_prompt(values)  # a bad template fails before anything is written
        session = session or uuid.uuid4().hex[:12]
        record = RunRecord(run_id=run_id or uuid.uuid4().hex[:12], session=session, agent=self.name, input=input,
                           model=self.model.name, user_id=user_id, variables=values, metadata=dict(metadata or {}))
        journal = Journal(store, record)
        entries = store.entries(session)
        closing, superseded = start_entries(store, entries)
        question = {"role": "user", "content": input}
        journal.start([question], info=SessionInfo(session, user_id, self.name), closing=closing,
                      superseded=superseded)
        folded = fold([*entries, *closing, {"kind": "start", "run": record.run_id, "messages": [question]}])
        return RunState(agent=self, journal=journal, system=system, history=folded.history, steps=[], depth=depth,
                        fence=values["fence"], tainted=folded.tainted)

    def _resume(self, session: str | None, run_id: str | None, approvals: Mapping[str, Decision] | None,
                variables: dict[str, Any] | None, depth: int) -> RunState:
        from .acting import restore_streaks  # noqa: PLC0415
        from .history import fold  # noqa: PLC0415
        from .journal import RESUMABLE, Journal  # noqa: PLC0415
        from .loop import RunState  # noqa: PLC0415

        store = self.store
        if session is None and run_id is None:
            raise UserError("resume=True needs the session (or run id) of the run to resume")
        record = store.run(run_id) if run_id else _last_run(store, session)
        if record is None:
            raise UserError(f"no run to resume for session {session!r}" if run_id is None
                            else f"no run with id {run_id!r}")
        if record.status not in RESUMABLE:
            raise UserError(f"run {record.run_id} already ended with status {record.status!r}")
        values = {**(record.variables or {}), **(variables or {})}
        system = self.system_prompt(values)
        folded = fold(store.entries(record.session))
        last = folded.last_turn()
        resumed = last if last is not None and last.run == record.run_id else None
        decisions, nested = self._decisions(record, resumed, approvals)
        journal = Journal(store, record)
        journal.resume(decisions)
        if resumed is not None:
            for _, index, decision in decisions:
                resumed.decisions[index] = decision
        steps = folded.steps(record.run_id)
        if resumed is not None and resumed.open:  # that step is taken up again by the loop
            steps.pop()
        state = RunState(agent=self, journal=journal, system=system, history=folded.history, steps=steps,
                         depth=depth, usage=folded.usage(record.run_id), resumed=resumed,
                         fence=values.get("fence") or new_fence(), tainted=folded.tainted,
                         model_settings=dict((record.metadata or {}).get("model_settings") or {}),
                         nested_approvals=nested)
        restore_streaks(state, [t for t in folded.run_turns(record.run_id) if t is not resumed or not t.open])
        return state

    def _decisions(self, record: RunRecord, turn: Turn | None, approvals: Mapping[str, Decision] | None
                   ) -> tuple[list[tuple[int, int, dict[str, Any]]], dict[str, dict[str, Decision]]]:
        """The decisions on a paused run's waiting calls, checked before anything is written: one per
        waiting call — its own, and those of the nested runs its calls wait on (passed on to them, by
        run id) — and edited arguments valid for the tool.

        A call decided before a crash keeps its journaled decision (it is not waiting any more). A run
        that died before its pause was journaled (status still ``running``) and is resumed without
        decisions goes on to that pause: its undecided calls wait again (``acting``)."""
        decided = set(turn.decisions) if turn else set()
        waiting = {turn.calls[i]["id"]: i for i in sorted(turn.pending - set(turn.results) - decided)} if turn else {}
        nested_waiting = self._nested_waiting(turn) if turn else {}
        if not waiting and not nested_waiting:
            if approvals:
                raise UserError(f"run {record.run_id} has no call waiting for approval")
            return [], {}
        if not approvals and record.status != "awaiting_approval":
            return [], {}
        given = dict(approvals or {})
        if missing := [c for c in [*waiting, *nested_waiting] if c not in given]:
            raise UserError(f"run {record.run_id} awaits decisions on calls {missing}; pass approvals="
                            "{call_id: Approve() or Deny(reason)}")
        if unknown := [c for c in given if c not in waiting and c not in nested_waiting]:
            raise UserError(f"run {record.run_id} has no waiting call {unknown}; waiting: "
                            f"{[*waiting, *nested_waiting]}")
        nested: dict[str, dict[str, Decision]] = {}
        for call_id, (nested_run, its_id) in nested_waiting.items():
            nested.setdefault(nested_run, {})[its_id] = given[call_id]
        return [(turn.seq, index, self._decision_entry(turn, call_id, index, given[call_id]))
                for call_id, index in waiting.items()] if turn else [], nested

    def _nested_waiting(self, turn: Turn) -> dict[str, tuple[str, str]]:
        """The calls that the paused nested runs of ``turn``'s open calls wait on, by the id this run lists
        them under (``nested_call_id``) -> (the nested run, the id that run knows the call by)."""
        found: dict[str, tuple[str, str]] = {}
        for index, nested_run in turn.delegated.items():
            if index not in turn.results and (nested := self.store.run(nested_run)) is not None:
                for waiting in nested.pending:
                    its_id = str(waiting["call_id"])
                    mine = its_id if waiting.get("run_id") else nested_call_id(nested_run, its_id)
                    found[mine] = (nested_run, its_id)
        return found

    def _decision_entry(self, turn: Turn, call_id: str, index: int, decision: Decision) -> dict[str, Any]:
        """A decision as the journal keeps it; edited arguments are validated like the model's."""
        if isinstance(decision, Deny):
            return {"approve": False, "reason": decision.reason}
        entry: dict[str, Any] = {"approve": True}
        if decision.arguments is not None:
            name = turn.calls[index]["function"]["name"]
            found = self.tools.get(name)
            if found is None:
                raise UserError(f"call {call_id}: no tool {name!r} on agent {self.name!r}")
            try:  # validated as JSON, like the model's arguments
                parsed = found.validate(json.dumps(decision.arguments), strict=self.strict_tools)
                entry["arguments"] = found.dump_arguments(parsed, mode="json")
            except ValidationError as exc:
                raise UserError(f"call {call_id}: edited arguments for {name!r} are not valid: "
                                f"{describe_validation_error(found, json.dumps(decision.arguments), exc)}"
                                ) from None
        return entry

    def _run_variables(self, variables: dict[str, Any] | None) -> dict[str, Any]:
        """The variables a run's prompts render with, kept in its record so a resumed run renders the
        same: the agent's, the run's, the date, and the run's fence for untrusted output."""
        values = {**self.variables, **(variables or {})}
        values.setdefault("today", date.today().isoformat())  # a replay pins the recorded date
        if not values.get("fence"):
            values["fence"] = new_fence()  # a replay pins the recorded fence
        return values

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """This agent as a tool another agent can call; the nested run shares the store and its usage
        shows in the observation."""
        agent = self

        async def delegate(request: str, context: ToolContext) -> DelegationReport:
            session = f"{context.session}/{agent.name}" if context else None
            result = await agent.run(request, session=session, _depth=(context.depth + 1) if context else 1,
                                     deps=context.deps if context else None,
                                     user_id=context.user_id if context else None,
                                     metadata={"parent_run": context.run_id, "parent_step": context.step,
                                               "parent_call": context.call_id}
                                     if context else None)  # where the run viewer nests it (and resume finds it)
            return DelegationReport.of(result)

        async def go_on(run_id: str, approvals: Mapping[str, Decision], context: ToolContext) -> DelegationReport:
            """The nested run ``run_id`` that paused for approval, taken up again: with the decisions on
            its calls; read back as it is if it ended meanwhile (a crash after its resume)."""
            from .history import fold, result_from_store  # noqa: PLC0415
            from .journal import RESUMABLE  # noqa: PLC0415

            record = agent.store.run(run_id)
            if record is None:
                raise UserError(f"the nested run {run_id} of agent {agent.name!r} is not in its store")
            if record.status not in RESUMABLE or (record.status == "awaiting_approval" and not approvals):
                return DelegationReport.of(result_from_store(record, fold(agent.store.entries(record.session))))
            return DelegationReport.of(await agent.run("", run_id=run_id, resume=True, approvals=approvals or None,
                                                       deps=context.deps, _depth=context.depth + 1))

        summary = description or f"Ask the {agent.name} agent."
        delegate.__doc__ = f"{summary}\n\nArgs:\n    request: what to ask the {agent.name} agent, in plain words."
        tools = agent.tools.values()  # the nested run may act, and may repeat what it read
        built = tool(name=name or f"ask_{agent.name}", side_effects=any(t.side_effects for t in tools),
                     untrusted_output=any(t.untrusted_output for t in tools))(delegate)
        built.source = f"agent:{agent.name}"
        built.go_on = go_on
        return built


async def call_hooks(hooks: Iterable[Hook], event: Event) -> None:
    """Give ``event`` to each hook in turn; a hook may be sync or async. A hook's ``RunBlocked`` passes
    through; any other exception becomes a ``HookError`` naming the hook."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.isawaitable(outcome):
                await outcome
        except RunBlocked:
            raise
        except Exception as exc:
            name = getattr(hook, "__qualname__", None) or type(hook).__name__
            raise HookError(name, f"{type(exc).__name__}: {exc}") from exc


def _last_run(store: Store, session: str | None) -> RunRecord | None:
    runs = store.runs(session=session)
    return runs[-1] if runs else None


def _keep_deferred(state: RunState, log: Any) -> None:
    """The run stops open while the process lives on: commit the results that were to ride on its next
    commit. A store that fails here must not hide why the run stopped: it is logged, not raised."""
    try:
        state.journal.flush()
    except Exception as exc:  # noqa: BLE001 - the exception on its way out is the one to report
        log.warning("journal_flush_failed", error=f"{type(exc).__name__}: {exc}")


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

