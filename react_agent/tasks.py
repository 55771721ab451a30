"""Task files (YAML) → validated pydantic models → agent runs → checks.

A task file names an agent (instructions, tools, model, limits), where its prompts and plugin tools
live (relative to the file), and the tasks: inputs plus optional checks. A bad file gets one
``TaskFileError`` line: which file, which field, what was expected. Files are read within the limits of
``_yaml`` (size, encoding, nesting, aliases, duplicate keys); numbers and booleans are strict (``true``
is not a step count, ``"5"`` is not a number) and bounded.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .agent import Agent
from .errors import TaskFileError, UserError
from .model import Model
from .steps import RunResult
from .stores import Store

if TYPE_CHECKING:
    from .approval import Decision
    from .mcp import MCPServer
    from .router import Router

Decider = Callable[[RunResult], "Mapping[str, Decision] | None"]  # decisions on a paused run, or None to stop

__all__ = ["COULD_NOT_RUN_ERRORS", "MAX_INPUT_CHARS", "AgentSpec", "Check", "TaskFile", "TaskOutcome", "TaskSpec",
           "build_agent", "build_runner", "check_result", "could_not_run", "load_task_file", "run_task"]


MAX_INPUT_CHARS = 100_000  # one user turn of a task
Input = Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MCPServerSpec(_Strict):
    """One MCP server of an agent: ``command`` (+ ``args``, ``env``, ``cwd``) for stdio, or ``url``."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None  # relative to the task file; default: the task file's folder
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    prefix: str = ""
    tools: list[str] | None = None  # only these tools of the server
    timeout: float | None = Field(60.0, gt=0, le=3600, allow_inf_nan=False)  # seconds per call
    start_timeout: float = Field(30.0, gt=0, le=600, allow_inf_nan=False)
    max_retries: int = Field(3, ge=0, le=10)
    untrusted_output: bool = True
    side_effects: bool | None = None

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (a streamable-HTTP server)")
        return self


class AgentSpec(_Strict):
    name: str = "agent"
    instructions: str = "You are a helpful assistant."
    model: str | list[str] | None = None  # a list: fallback models, in order
    tools: list[str] | None = None  # names among the discovered tools; None = all of them
    agents_as_tools: list[str] = Field(default_factory=list)  # other agents of this file, as tools
    routes: dict[str, str] = Field(default_factory=dict)  # category -> agent of this file: a Router
    max_steps: int = Field(10, ge=1, le=1000)
    max_tokens_total: int | None = Field(None, ge=1, le=100_000_000)
    context_budget: int | None = Field(None, ge=256, le=10_000_000)
    summarize_dropped: bool = False  # summarize what the context budget leaves out (one model call)
    max_tool_output: int = Field(8000, ge=100, le=1_000_000)
    request_timeout: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False)  # seconds per model call
    max_retries: int | None = Field(None, ge=0, le=10)  # retries of a failed model call
    output_type: str | None = None  # "module:Class" of a pydantic model
    model_settings: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    mcp_servers: list[MCPServerSpec] = Field(default_factory=list)
    untrusted_policy: Literal["approve", "block", "off"] = "approve"  # side effects after untrusted output


class ToolExpectation(_Strict):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)  # each given argument must match


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)  # also a cassette's file name
    input: Input | Annotated[list[Input], Field(min_length=1)] = Field(union_mode="left_to_right")
    agent: str | None = None
    session: str | None = None
    expect_tool: str | list[str | ToolExpectation] | ToolExpectation | None = None
    expect_contains: str | list[str] | None = None
    expect_matches: str | None = None
    expect_status: str | None = "completed"
    expect_output: bool = False  # the final output validates against the agent's output_type
    expect_handled_by: str | None = None  # a routing agent handed the request to this agent

    @field_validator("expect_matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class TaskFile(_Strict):
    agent: AgentSpec | None = None
    agents: dict[str, AgentSpec] = Field(default_factory=dict)
    prompts: str | list[str] = "../prompts"
    tools_dir: str | list[str] = "../tools"
    tasks: list[TaskSpec] = Field(min_length=1)
    path: Path = Field(Path("."), exclude=True)

    @field_validator("agents", mode="before")
    @classmethod
    def _names_from_keys(cls, value: Any) -> Any:
        """In ``agents:``, an agent's name defaults to its key."""
        if isinstance(value, dict):
            return {k: {"name": k, **v} if isinstance(v, dict) else v for k, v in value.items()}
        return value

    def agent_spec(self, name: str | None) -> AgentSpec:
        if name is None:
            if self.agent is not None:
                return self.agent
            if len(self.agents) == 1:
                return next(iter(self.agents.values()))
            raise TaskFileError(str(self.path), "tasks[].agent", f"one of {self.agent_names()}")
        found = self.agent_spec_or_none(name)
        if found is None:
            raise TaskFileError(str(self.path), "tasks[].agent", f"one of {self.agent_names()}, got {name!r}")
        return found

    def check_references(self) -> None:
        """``agents_as_tools`` and ``routes`` name other (non-routing) agents of this file."""
        for key, agent in [(None, self.agent), *self.agents.items()]:
            if agent is None:
                continue
            for field, names in (("agents_as_tools", agent.agents_as_tools), ("routes", [*agent.routes.values()])):
                for name in names:
                    other = self.agent_spec_or_none(name)
                    problem = (f"another agent of this file, one of {self.agent_names()}, got {name!r}"
                               if other is None or other is agent else
                               f"an agent without routes ({name!r} is a router)" if other.routes else None)
                    if problem:
                        raise TaskFileError(str(self.path), f"{f'agents.{key}' if key else 'agent'}.{field}", problem)

    def agent_spec_or_none(self, name: str) -> AgentSpec | None:
        if name in self.agents:
            return self.agents[name]
        return self.agent if self.agent is not None and self.agent.name == name else None

    def agent_names(self) -> list[str]:
        return sorted({*self.agents, *([self.agent.name] if self.agent else [])})

    def resolve(self, value: str | list[str]) -> list[Path]:
        return [(self.path.parent / v).resolve() for v in ([value] if isinstance(value, str) else value)]


def _short(value: Any, limit: int = 60) -> str:
    """A rejected value for an error line: a 20 MB input is named by its size, not printed."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}..." + (f" ({len(value):,} characters)" if isinstance(value, str) else "")


_UNION_TAGS = ("str", "constrained-str", "ToolExpectation")  # pydantic names union members in an error's loc


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _UNION_TAGS or part.startswith(("list[", "function-")))


def _loc(err: Any) -> tuple[Any, ...]:
    return tuple(p for p in err["loc"] if not _is_union_tag(p))


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """Where and what, for the first error; of a union's alternatives the one that got furthest (the list
    item that is not a string, the string that is too long — rather than 'not a list')."""
    errors = exc.errors(include_url=False)
    where = _loc(errors[0])
    err = max((e for e in errors if _loc(e)[:len(where)] == where),
              key=lambda e: (len(_loc(e)), not e["type"].endswith("_type")))
    got = f" (got {_short(err['input'])})" if not isinstance(err["input"], dict | list) else ""
    return ".".join(str(p) for p in _loc(err)) or "(top)", f"{err['msg'].removeprefix('Value error, ')}{got}"


_YAML_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}


def load_task_file(path: str | Path) -> TaskFile:
    from ._yaml import read_yaml  # noqa: PLC0415 - only task files need YAML

    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _YAML_KINDS.get(type(data), type(data).__name__)
        raise TaskFileError(str(path), "", f"expected a mapping with 'agent' and 'tasks' at the top, got {got}")
    try:
        spec = TaskFile.model_validate({**data, "path": path})
    except ValidationError as exc:
        raise TaskFileError(str(path), *_first_error(exc)) from None
    if spec.agent is None and not spec.agents:
        raise TaskFileError(str(path), "agent", "an 'agent' (or 'agents') section is required")
    for task in spec.tasks:
        spec.agent_spec(task.agent)
    spec.check_references()
    return spec


def _import_output_type(task_file: TaskFile, ref: str) -> type[BaseModel]:
    """``module:Class`` (importable) or ``path/to/file.py:Class`` (relative to the task file)."""
    from .plugins import _import_file  # noqa: PLC0415

    module_name, _, attr = ref.rpartition(":")
    try:
        if module_name.endswith(".py"):
            module = _import_file((task_file.path.parent / module_name).resolve())
        else:
            module = importlib.import_module(module_name)
        found = getattr(module, attr)
    except Exception as exc:  # noqa: BLE001 - any import failure is a task file error
        raise TaskFileError(str(task_file.path), "agent.output_type",
                            f"'module:Class' or 'file.py:Class' that imports ({type(exc).__name__}: {exc})") from None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise TaskFileError(str(task_file.path), "agent.output_type", f"a pydantic model class, got {ref}")
    return found


def _instructions(task_file: TaskFile, spec: AgentSpec) -> str:
    """The agent's instructions with a template resolved where the task file says: a bare name in the
    file's ``prompts`` folders, a path relative to the task file (never the working directory, never
    the package's demo prompts). A template that is not there is a ``TaskFileError`` naming the field."""
    from .prompts import is_template  # noqa: PLC0415

    if not is_template(spec.instructions):
        return spec.instructions
    relative = Path(spec.instructions)
    if len(relative.parts) > 1:
        path = (task_file.path.parent / relative).resolve()  # an absolute path stays as it is
        if path.is_file():
            return str(path)
        problem = (f"template {spec.instructions!r} not found: {path} is not a file "
                   "(paths are relative to the task file)")
    else:
        folders = list(dict.fromkeys(task_file.resolve(task_file.prompts)))
        found = next((folder / relative for folder in folders if (folder / relative).is_file()), None)
        if found is not None:
            return str(found)
        problem = (f"template {spec.instructions!r} not found in the task file's prompt folders "
                   f"({', '.join(map(str, folders))}; set `prompts:` or give a path relative to the task file)")
    raise TaskFileError(str(task_file.path), f"agent {spec.name!r}.instructions", problem)


def _transport(spec: AgentSpec) -> dict[str, Any]:
    """``request_timeout`` / ``max_retries`` for ``Agent``, only those the file sets."""
    return {key: value for key, value in (("request_timeout", spec.request_timeout),
                                          ("max_retries", spec.max_retries)) if value is not None}


def mcp_servers(task_file: TaskFile, spec: AgentSpec) -> list[MCPServer]:
    """The agent's MCP servers; a stdio server runs in the task file's folder unless ``cwd`` says otherwise."""
    from .mcp import MCPServerHTTP, MCPServerStdio  # noqa: PLC0415

    servers: list[MCPServer] = []
    for each in spec.mcp_servers:
        options: dict[str, Any] = each.model_dump(include={
            "name", "prefix", "tools", "timeout", "start_timeout", "max_retries", "untrusted_output", "side_effects"})
        if each.url is not None:
            servers.append(MCPServerHTTP(each.url, headers=each.headers, **options))
        else:
            assert each.command is not None
            cwd = (task_file.path.parent / (each.cwd or ".")).resolve()
            servers.append(MCPServerStdio(each.command, each.args, env=each.env, cwd=cwd, **options))
    return servers


def build_agent(task_file: TaskFile, name: str | None = None, *, model: str | Model | None = None,
                store: Store | None = None, variables: dict[str, Any] | None = None,
                built: dict[str, Agent] | None = None) -> Agent:
    """An ``Agent`` from a task file's agent section; unknown tool names are a ``TaskFileError``."""
    from .plugins import discover  # noqa: PLC0415

    spec = task_file.agent_spec(name)
    built = {} if built is None else built
    if spec.name in built:
        return built[spec.name]
    found = discover(task_file.resolve(task_file.tools_dir))
    if found.broken:  # a broken plugin is a mistake to fix, even when this agent needs none of its tools
        raise TaskFileError(str(task_file.path), "tools_dir", f"a plugin failed to load — {found.broken_text()} "
                            "(every *.py in the plugin folders is loaded: fix the file or move it out)")
    wanted = spec.tools if spec.tools is not None else [] if spec.routes else list(found.tools)
    unknown = [t for t in wanted if t not in found.tools]
    if unknown:
        raise TaskFileError(str(task_file.path), f"agent {spec.name!r}.tools",
                            f"unknown tool(s) {unknown}; available: {sorted(found.tools)}")
    output_type = _import_output_type(task_file, spec.output_type) if spec.output_type else None
    instructions = _instructions(task_file, spec)
    if spec.routes and output_type is None:  # a router's classifier: a constrained category
        from .router import route_type  # noqa: PLC0415

        output_type = route_type(list(spec.routes))
    agent = Agent(
        name=spec.name, instructions=instructions, tools=[found.tools[t] for t in wanted],
        model=model or spec.model, max_steps=spec.max_steps, max_tokens_total=spec.max_tokens_total,
        context_budget=spec.context_budget, summarize_dropped=spec.summarize_dropped,
        max_tool_output=spec.max_tool_output, output_type=output_type,
        model_settings=spec.model_settings, prompts=task_file.resolve(task_file.prompts),
        variables={**spec.variables, **(variables or {})}, store=store, answer_tool=True if spec.routes else None,
        mcp_servers=mcp_servers(task_file, spec), untrusted_policy=spec.untrusted_policy,
        **_transport(spec),
    )
    agent.origin = f"{task_file.path}: agent {spec.name!r}"  # a prompt error names the file and the field
    built[spec.name] = agent
    for other in spec.agents_as_tools:
        agent.add_tool(build_agent(task_file, other, model=model, store=store, variables=variables,
                                   built=built).as_tool())
    return agent


def build_runner(task_file: TaskFile, name: str | None = None, *, model: str | Model | None = None,
                 store: Store | None = None, variables: dict[str, Any] | None = None) -> Agent | Router:
    """What a task runs: the agent, or for an agent with ``routes`` a ``Router`` (that agent classifies,
    the routed agents answer)."""
    spec = task_file.agent_spec(name)
    built: dict[str, Agent] = {}
    classifier = build_agent(task_file, name, model=model, store=store, variables=variables, built=built)
    if not spec.routes:
        return classifier
    from .router import Router  # noqa: PLC0415

    routes = {category: build_agent(task_file, target, model=model, store=store, variables=variables, built=built)
              for category, target in spec.routes.items()}
    try:
        return Router(routes, classifier=classifier)
    except UserError as exc:
        raise TaskFileError(str(task_file.path), f"agent {spec.name!r}.routes", str(exc)) from None


class Check(BaseModel):
    name: str
    passed: bool
    detail: str = ""


def _expected_tools(task: TaskSpec) -> list[ToolExpectation]:
    raw = task.expect_tool
    items = [] if raw is None else raw if isinstance(raw, list) else [raw]
    return [ToolExpectation(name=i) if isinstance(i, str) else i for i in items]


def _same(got: Any, want: Any) -> bool:
    """Equal, or the same scalar spelled as a number or a string (1042 and "1042")."""
    if got == want:
        return True
    scalars = (str, int, float)
    return (isinstance(got, scalars) and isinstance(want, scalars) and not isinstance(got, bool)
            and not isinstance(want, bool) and str(got).strip() == str(want).strip())


def _run_tree(results: list[RunResult]) -> list[RunResult]:
    """The runs and, depth first, their nested runs (routed or delegated): tool checks look at all."""
    return [run for r in results for run in (r, *_run_tree(r.children))]


def check_result(task: TaskSpec, results: list[RunResult], output_type: type[BaseModel] | None) -> list[Check]:
    """The task's expectations against its runs (all turns and nested runs for tools, the last turn for
    the answer)."""
    import json  # noqa: PLC0415

    last = results[-1]
    calls = [(c, o) for r in _run_tree(results) for s in r.steps
             for c, o in zip(s.actions, s.observations, strict=False)]
    checks: list[Check] = []
    if task.expect_status:
        checks.append(Check(name=f"status is {task.expect_status}", passed=last.status == task.expect_status,
                            detail=f"got {last.status}" + (f": {last.error}" if last.error else "")))
    for want in _expected_tools(task):
        def matches(call_args: str, want: ToolExpectation = want) -> bool:
            try:
                args = json.loads(call_args or "{}")
            except ValueError:
                return False
            return isinstance(args, dict) and all(_same(args.get(k), v) for k, v in want.arguments.items())
        hit = any(c.name == want.name and o.ok and matches(c.arguments) for c, o in calls)
        label = f"called {want.name}" + (f" with {want.arguments}" if want.arguments else "")
        checks.append(Check(name=label, passed=hit, detail=f"calls: {[c.name for c, _ in calls]}"))
    text = last.output.model_dump_json() if isinstance(last.output, BaseModel) else str(last.output or "")
    wanted = task.expect_contains
    for needle in [wanted] if isinstance(wanted, str) else wanted or []:
        checks.append(Check(name=f"answer contains {needle!r}", passed=needle.lower() in text.lower(),
                            detail=text[:200]))
    if task.expect_matches:
        checks.append(Check(name=f"answer matches /{task.expect_matches}/",
                            passed=re.search(task.expect_matches, text) is not None, detail=text[:200]))
    if task.expect_handled_by:
        got = getattr(last.output, "handled_by", None)
        checks.append(Check(name=f"handled by {task.expect_handled_by}", passed=got == task.expect_handled_by,
                            detail=f"handled by {got}"))
    if task.expect_output:
        ok = output_type is not None and isinstance(last.output, output_type)
        checks.append(Check(name="output validates", passed=ok, detail=type(last.output).__name__))
    return checks


# A run that ended with one of these errors never got the model's answers: it could not run.
COULD_NOT_RUN_ERRORS = frozenset({"ModelHTTPError", "IncompleteResponseError", "ModelUnavailableError"})


def could_not_run(results: list[RunResult]) -> list[str]:
    """The errors of the runs (nested ones included) that ended because the model could not be asked."""
    return [r.error or r.error_type or "" for r in _run_tree(results)
            if r.status == "error" and r.error_type in COULD_NOT_RUN_ERRORS]


class TaskOutcome(BaseModel):
    task: str
    results: list[RunResult]
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def could_not_run(self) -> list[str]:
        return could_not_run(self.results)


async def run_task(task_file: TaskFile, task: TaskSpec, *, model: str | Model | None = None,
                   store: Store | None = None, variables: dict[str, Any] | None = None,
                   on_event: Callable[[Any], None] | None = None, decide: Decider | None = None,
                   metadata: Mapping[str, Any] | None = None) -> TaskOutcome:
    """Run every input of one task on one session; then check the expectations. A run that pauses for
    approval goes on with ``decide``'s decisions (a person at a terminal), else the task stops there.
    ``metadata`` goes on every run's record besides the task file and task (e.g. a batch's id and trial)."""
    import uuid  # noqa: PLC0415

    agent = build_runner(task_file, task.agent, model=model, store=store, variables=variables)
    if on_event is not None:
        agent.hooks.append(on_event)
    session = task.session or f"{task.name}-{uuid.uuid4().hex[:8]}"
    results = []
    for text in task.inputs:
        result = await agent.run(text, session=session, metadata={
            **(metadata or {}), "task_file": str(task_file.path.resolve()), "task": task.name})
        while (decide is not None and result.status == "awaiting_approval" and isinstance(agent, Agent)
               and (approvals := decide(result))):
            result = await agent.resume(result.run_id, approvals)
        results.append(result)
        if result.status in ("error", "awaiting_approval"):
            break
    return TaskOutcome(task=task.name, results=results, checks=check_result(task, results, agent.output_type))

