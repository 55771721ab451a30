"""``python -m react_agent``: argument parsing and printing only; the work is in tasks/agent/memory.

Exit codes: 0 every check passed; 1 a check failed; 2 a user mistake (bad flag, bad task file, unknown
tool, broken plugin, missing extra), one line on stderr, before anything is written; 3 could not run
(the model server was unreachable or kept failing: a run ended with a model-request error); 130
interrupted (Ctrl-C), naming the runs to resume; 141 the reader of the output went away (``| head``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._cli import (
    INTERRUPTED,
    OUTPUT_CLOSED,
    USER_MISTAKE,
    _assistant,
    _check_cassettes,
    _console,
    _dump,
    _exit_code,
    _mode,
    _print_pending,
    _stored,
    _terminal_decider,
    _where,
)
from .cli_batch import cmd_batch
from .cli_runs import cmd_approve, cmd_deny, cmd_resume, cmd_runs, cmd_show
from .errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .agent import Agent
    from .router import Router
    from .tasks import TaskFile, TaskOutcome
    from .tools import Tool

__all__ = ["main"]

MAX_TRIALS = 1000
EXIT_CODES = """exit codes:
  0    every check passed
  1    a check failed (the agent ran, its answer or status was not the expected one)
  2    a mistake in the command, the task file, a plugin or the install (one line, nothing written)
  3    could not run: the model server was unreachable or kept failing (the error names its URL)
  130  interrupted (Ctrl-C): the message names the run ids to `resume`
  141  the reader of the output went away (`... | head`): stopped quietly"""


class _BadArguments(UserError):
    """A flag or argument argparse rejected: one line like every other user mistake, not usage + error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # subparsers are made with the parent's class: they use it too
        raise _BadArguments(f"{self.prog}: {message} (see --help)")


_CASSETTES_HELP = ("cassette folder (default: cassettes/ in the task file's project root: the folder above its "
                   "tasks/ folder, else the task file's own folder)")


def _trials(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_TRIALS:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_TRIALS}, got {value}")
    return value


LOG_CHOICES = ["off", "info", "debug", "json"]
LOG_HELP = "structlog events on stderr: console format, or JSON lines (before or after the command)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m react_agent", description="Run, chat with and inspect react-agent agents.",
                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", choices=LOG_CHOICES, default="off", help=LOG_HELP)
    # the same flag after the command; SUPPRESS: absent there, it leaves the value given before
    common = _Parser(add_help=False)
    common.add_argument("--log", choices=LOG_CHOICES, default=argparse.SUPPRESS, help=LOG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common], epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    run = add("run", "run the tasks of a YAML task file and check them")
    run.add_argument("taskfile", type=Path, help="a YAML task file (e.g. tasks/quickstart.yaml)")
    run.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    _model_and_cassettes(run, "task")
    run.add_argument("--json", action="store_true", help="print the results as JSON")

    chat = add("chat", "talk to an agent on a session (interactive; /exit, /quit or Ctrl-D ends)")
    chat.add_argument("taskfile", type=Path, nargs="?",
                      help="take the agent from this task file (default: an assistant with the calculator tools "
                           "of tools/calculator.py)")
    chat.add_argument("--agent", help="which agent of the task file (default: the one its first task uses)")
    chat.add_argument("--session", help="session id (default: a new one; an existing one continues)")
    chat.add_argument("--model", help="override the model (e.g. local, gpt-4o-mini)")

    tools = add("tools", "list the tools found in plugin folders and entry points, and a task file's MCP servers'")
    tools.add_argument("taskfile", type=Path, nargs="?",
                       help="also list the tools of this task file's MCP servers (each is started, listed, stopped)"
                            "; its tools_dir is the plugin folder")
    tools.add_argument("--plugins", type=Path, action="append", help="plugin folder, repeatable (default: tools)")
    tools.add_argument("--json", action="store_true", help="print names, sources, descriptions and parameters as JSON")

    sessions = add("sessions", "list, show or delete sessions")
    sessions.add_argument("action", choices=["list", "show", "rm"], help="list all, show one, or delete one")
    sessions.add_argument("session", nargs="?", help="the session id (show, rm)")
    sessions.add_argument("--user", help="only this user's sessions (list)")
    sessions.add_argument("--json", action="store_true", help="print as JSON")

    usage = add("usage", "tokens and cost per user: sessions, runs, requests, tokens (reasoning, cached) and cost")
    usage.add_argument("--user", help="only this user (runs started without a user are listed as '-')")
    usage.add_argument("--json", action="store_true", help="print as JSON")

    resume = add("resume", "resume a run that crashed or was interrupted (started by run or chat)")
    resume.add_argument("run_id", help="the run id (printed when a run is interrupted; see `sessions show`)")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")

    _approval_commands(add)

    _serve_command(add)

    evaluate = add("eval", "evaluate an agent on a suite: accuracy, pass^k, latency, cost")
    evaluate.add_argument("suite", type=Path, help="a task file whose tasks are the cases (e.g. tasks/eval/*.yaml)")
    evaluate.add_argument("--trials", type=_trials, default=1, help=f"runs per case, 1..{MAX_TRIALS} (default: 1)")
    _model_and_cassettes(evaluate, "trial")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")

    _batch_command(add)
    return parser


def _batch_command(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    batch = add("batch", "run the tasks of a task file or eval suite (x --trials) as a batch on Ray: a local "
                         "instance, or a cluster with --address (needs the batch extra; README \"Batch runs on Ray\")")
    batch.add_argument("taskfile", type=Path, help="a YAML task file or eval suite (e.g. tasks/quickstart.yaml)")
    batch.add_argument("--trials", type=_trials, default=1, help=f"runs per task, 1..{MAX_TRIALS} (default: 1)")
    batch.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    batch.add_argument("--workers", type=_trials, help="runs at a time, 1..1000 (default: the cluster's CPUs; without "
                                                        "--address, the local instance gets this many CPUs)")
    batch.add_argument("--address", help="join this Ray cluster (e.g. auto, HOST:6379) instead of starting a local "
                                         "instance; several hosts need a shared store (REACT_AGENT_STORE=postgresql://...)")
    _model_and_cassettes(batch, "run")
    batch.add_argument("--json", action="store_true", help="print the batch report as JSON")


def _model_and_cassettes(parser: argparse.ArgumentParser, each: str) -> None:
    """``--model`` and the cassette flags, as ``run``, ``eval`` and ``batch`` take them."""
    parser.add_argument("--model", help="override the model (e.g. local, gpt-4o-mini)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true", help=f"save each {each}'s HTTP traffic as a cassette")
    mode.add_argument("--replay", action="store_true", help="answer the model's requests from the cassettes")
    parser.add_argument("--cassettes", type=Path, help=_CASSETTES_HELP)


def _serve_command(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    serve = add("serve", "serve the agents of task files over HTTP (needs the server extra; see README \"Serving\")")
    serve.add_argument("paths", nargs="*", type=Path, default=[Path("tasks")],
                       help="task files, or folders of them (their *.yaml; default: tasks)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument("--keys", type=Path, help="API keys file, one key:user a line (with $REACT_AGENT_API_KEYS)")
    serve.add_argument("--model", help="override the agents' model (e.g. local, gpt-4o-mini)")


def _approval_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    runs = add("runs", "list runs, e.g. the ones awaiting approval")
    runs.add_argument("action", choices=["list"], help="list runs, oldest first")
    runs.add_argument("--status", help="only runs with this status (e.g. awaiting_approval, running, error)")
    runs.add_argument("--session", help="only this session's runs")
    runs.add_argument("--batch", help="only the runs of this batch (its id: see `batch`)")
    runs.add_argument("--json", action="store_true", help="print the run records as JSON")

    show = add("show", "show a run's timeline: steps, thoughts, actions, observations, tokens, cost, nested runs")
    show.add_argument("run_id", help="the run id (see `runs list`)")
    show.add_argument("--html", type=Path, metavar="FILE",
                      help="also write the run viewer page to FILE: one self-contained HTML file, readable offline")
    show.add_argument("--json", action="store_true", help="print the run's data as JSON instead")

    approve = add("approve", "approve the calls a paused run waits for, then continue it")
    approve.add_argument("run_id", help="the paused run (see `runs list --status awaiting_approval`)")
    approve.add_argument("call_ids", nargs="*", help="the calls to approve (default: every waiting call)")
    approve.add_argument("--arguments", help="run the call with these arguments instead (a JSON object; one call)")
    approve.add_argument("--json", action="store_true", help="print the result as JSON")

    deny = add("deny", "deny the calls a paused run waits for (the model reads the reason), then continue it")
    deny.add_argument("run_id", help="the paused run (see `runs list --status awaiting_approval`)")
    deny.add_argument("call_ids", nargs="*", help="the calls to deny (default: every waiting call)")
    deny.add_argument("--reason", required=True, help="why: the model sees it as the call's result")
    deny.add_argument("--json", action="store_true", help="print the result as JSON")


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    try:
        args = _parser().parse_args(argv)
        if args.log != "off":
            from .log import configure_logging  # noqa: PLC0415

            configure_logging("DEBUG" if args.log == "debug" else "INFO", json=args.log == "json")
        code = int(COMMANDS[args.command](args))
        sys.stdout.flush()  # here, where a reader that went away can still be answered quietly
        return code
    except BrokenPipeError:  # the reader of the output went away (`... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return OUTPUT_CLOSED
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, whatever the message holds
        return USER_MISTAKE
    except KeyboardInterrupt:
        print(_interrupted(started), file=sys.stderr)
        return INTERRUPTED


def _interrupted(since: float) -> str:
    """What Ctrl-C left: the runs this command started that the journal still has as running."""
    from .stores import open_store  # noqa: PLC0415

    runs = []
    store = open_store()
    if _stored(store):  # recorded/replayed runs use a throwaway store: nothing to resume
        runs = [r for r in store.runs(status="running") if r.started >= since - 1]
    store.close()
    if not runs:
        return "interrupted: no run was left open in the store (nothing to resume)"
    listed = "; ".join(f"run {r.run_id} ({r.agent}, session {r.session})" for r in runs)
    commands = " or ".join(f"`python -m react_agent resume {r.run_id}`" for r in runs)
    return f"interrupted: the session and run journal are saved — {listed}; {commands} continues"


# -- run ------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .report import print_summary  # noqa: PLC0415
    from .tasks import load_task_file  # noqa: PLC0415

    task_file = load_task_file(args.taskfile)
    selected = [t for t in task_file.tasks if not args.task or t.name in args.task]
    if not selected:
        raise UserError(f"no task named {args.task} in {args.taskfile}; tasks: {[t.name for t in task_file.tasks]}")
    mode = _mode(args)
    from .runner import check_models, run_one  # noqa: PLC0415

    for agent in dict.fromkeys(t.agent for t in selected):  # the task file's own mistakes come first
        check_models(task_file, agent, args.model, installed=mode != "replay")
    _check_cassettes(args, task_file)
    console = _console(quiet=args.json)
    started = time.perf_counter()

    decide = _terminal_decider(console) if mode is None and not args.json and sys.stdin.isatty() else None
    outcomes = [run_one(task_file, task, mode=mode, cassettes=args.cassettes, model=args.model, console=console,
                        quiet=args.json, decide=decide) for task in selected]
    if args.json:
        _dump([_outcome_json(o) for o in outcomes])
    else:
        for paused in (r for o in outcomes for r in o.results if r.status == "awaiting_approval"):
            if decide is None:  # nobody at a terminal was asked: say what waits, and how to go on
                _print_pending(console, paused)
        print_summary(console, outcomes, time.perf_counter() - started)
    return _exit_code([e for o in outcomes for e in o.could_not_run], all(o.passed for o in outcomes))


def _outcome_json(outcome: TaskOutcome) -> dict[str, Any]:
    return {"task": outcome.task, "passed": outcome.passed, "checks": [c.model_dump() for c in outcome.checks],
            "runs": [r.model_dump(mode="json") for r in outcome.results]}


# -- chat -----------------------------------------------------------------------------------------
CHAT_END = ("/exit", "/quit")


def cmd_chat(args: argparse.Namespace) -> int:
    """One event loop for the whole conversation (one client, one connection); an empty line prompts
    again; Ctrl-D, /exit or /quit ends. The runs' metadata is what ``resume`` needs to rebuild the agent."""
    import asyncio  # noqa: PLC0415

    from .report import TracePrinter  # noqa: PLC0415

    console = _console()
    task_file = args.taskfile.resolve() if args.taskfile else None
    agent = _chat_runner(task_file, args.agent, args.model)
    metadata = {"chat": True, "task_file": str(task_file) if task_file else None, "model": args.model}
    session = args.session or f"chat-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"  # two at once: two
    agent.hooks.append(TracePrinter(console, stream_text=True))
    tools = ", ".join(_tool_names(agent)) or "none"
    console.print(f"session {session} with {agent.name} (tools: {tools}). /exit, /quit or Ctrl-D ends.")
    with asyncio.Runner() as runner:
        while True:
            try:
                text = input("you> ").strip()
            except EOFError:
                print()
                break
            if text in CHAT_END:
                break
            if text:
                runner.run(_chat_turn(agent, text, session, metadata))
    return 0


async def _chat_turn(agent: Agent | Router, text: str, session: str, metadata: dict[str, Any]) -> None:
    from .agent import Agent  # noqa: PLC0415

    if not isinstance(agent, Agent):  # a router answers through its nested runs, whole
        await agent.run(text, session=session, metadata=metadata)
        return
    decide = _terminal_decider(_console()) if sys.stdin.isatty() else None
    events = agent.stream(text, session=session, metadata=metadata)
    while True:
        result = None
        async for event in events:  # the printer hook shows them
            result = getattr(event, "result", None) or result
        if result is None or result.status != "awaiting_approval":
            return
        approvals = decide(result) if decide is not None else None
        if not approvals:
            _print_pending(_console(), result)
            return
        events = agent.stream("", run_id=result.run_id, resume=True, approvals=approvals)


def _chat_runner(task_file: Path | None, name: str | None, model: str | None) -> Agent | Router:
    """The task file's agent (or router) — by default the one its first task uses — or, without a task
    file, a plain assistant with the calculator tools."""
    if task_file is not None:
        from .runner import check_models  # noqa: PLC0415
        from .tasks import build_runner, load_task_file  # noqa: PLC0415

        spec = load_task_file(task_file)
        check_models(spec, name or spec.tasks[0].agent, model)
        return build_runner(spec, name or spec.tasks[0].agent, model=model)
    from .runner import check_local  # noqa: PLC0415

    assistant = _assistant(model)
    check_local(assistant.model)
    return assistant


def _tool_names(agent: Agent | Router) -> list[str]:
    from .agent import Agent  # noqa: PLC0415

    agents = [agent] if isinstance(agent, Agent) else [agent.classifier, *agent.routes.values()]
    return sorted({name for a in agents for name in a.tools})


# -- tools ----------------------------------------------------------------------------------------
def cmd_tools(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from .plugins import discover  # noqa: PLC0415
    from .tasks import load_task_file  # noqa: PLC0415

    for folder in args.plugins or []:  # named on the command line: a typo is a mistake, not a skip
        if not folder.is_dir():
            raise UserError(f"--plugins {folder}: no such folder")
    task_file = load_task_file(args.taskfile) if args.taskfile else None
    default = task_file.resolve(task_file.tools_dir) if task_file else [Path("tools")]
    found = discover(args.plugins or default)
    listed = [*found.tools.values(), *(asyncio.run(_mcp_tools(task_file)) if task_file else [])]
    if args.json:
        _dump({"tools": [{"name": t.name, "source": t.source, "description": t.description,
                          "parameters": t.schema()["function"]["parameters"]} for t in listed],
               "skipped": [{"source": s.source, "reason": s.reason} for s in found.skipped]})
    else:
        from rich.markup import escape  # noqa: PLC0415

        console = _console()
        for item in listed:
            console.print(f"[bold]{escape(item.name)}[/]  [dim]{escape(item.source)}[/]")
            console.print(escape(first_paragraph(item.description, width=max(console.width, 40))))
        for skipped in found.skipped:
            console.print(f"[red]skipped[/] {escape(skipped.source)}: {escape(skipped.reason)}")
        console.print(f"{len(listed)} tools, {len(found.skipped)} skipped")
    found.check()  # after the listing, so it shows what does load
    return 0


async def _mcp_tools(task_file: TaskFile) -> list[Tool]:
    """The tools of every MCP server of the task file's agents (started, listed and stopped)."""
    from .tasks import mcp_servers  # noqa: PLC0415

    tools: list[Tool] = []
    for name in task_file.agent_names():
        for server in mcp_servers(task_file, task_file.agent_spec(name)):
            async with server:
                tools.extend(server.tools)
    return tools


def first_paragraph(text: str, *, width: int, indent: str = "    ") -> str:
    """A description's first paragraph, whole, wrapped at word boundaries (never cut mid-word)."""
    import textwrap  # noqa: PLC0415

    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    return textwrap.fill(paragraph, width=width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


# -- sessions -------------------------------------------------------------------------------------
def cmd_sessions(args: argparse.Namespace) -> int:
    from .stores import open_store  # noqa: PLC0415

    if args.action != "list" and not args.session:
        raise UserError(f"sessions {args.action} needs a SESSION id")
    store = open_store()
    if args.action == "list":
        infos = [(info, len(store.messages(info.id))) for info in store.sessions(args.user)
                 ] if _stored(store) else []  # no store yet: none is made by looking
        if args.json:
            _dump([{**dataclasses.asdict(info), "messages": count} for info, count in infos])
        else:
            print(f"{len(infos)} session(s) in {_where(store)}")
            if infos:
                print("SESSION\tMESSAGES\tAGENT\tUSER\tCREATED")
            for info, count in infos:
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
                print(f"{info.id}\t{count}\t{info.agent or '-'}\t{info.user_id or '-'}\t{created}")
        return 0
    if not _stored(store) or not store.exists(args.session):  # no store yet: nothing to show, none made
        raise UserError(f"no session {args.session!r} in {_where(store)} (see `sessions list`)")
    if args.action == "rm":
        store.delete_session(args.session)
        print(f"deleted {args.session}")
        return 0
    messages = store.messages(args.session)
    if args.json:
        _dump({"session": args.session, "messages": messages,
               "runs": [r.model_dump(mode="json") for r in store.runs(session=args.session)]})
        return 0
    for message in messages:
        calls = ", ".join(f"{c['function']['name']}({c['function']['arguments']})"
                          for c in message.get("tool_calls") or [])
        print(f"[{message['role']}] {message.get('content') or ''}{' → ' + calls if calls else ''}")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from .stores import open_store  # noqa: PLC0415
    from .usage import format_cost, totals_by_user  # noqa: PLC0415

    store = open_store()
    records = store.runs(user_id=args.user) if _stored(store) else []  # no store yet: none is made
    totals = totals_by_user(records)
    if args.json:
        _dump([{"user_id": t.user_id, "sessions": t.sessions, "runs": t.runs, **t.usage.model_dump()}
               for t in totals])
        return 0
    print(f"{len(totals)} user(s) in {_where(store)}")
    if totals:
        print("USER\tSESSIONS\tRUNS\tREQUESTS\tPROMPT\tCOMPLETION\tREASONING\tCACHED\tCOST")
    for t in totals:
        u = t.usage
        print(f"{t.user_id or '-'}\t{t.sessions}\t{t.runs}\t{u.requests}\t{u.prompt_tokens}\t{u.completion_tokens}"
              f"\t{u.reasoning_tokens}\t{u.cached_tokens}\t{format_cost(u.cost_usd)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, print_report  # noqa: PLC0415
    from .runner import check_models  # noqa: PLC0415
    from .tasks import load_task_file  # noqa: PLC0415

    suite = load_task_file(args.suite)
    for agent in dict.fromkeys(t.agent for t in suite.tasks):  # the suite's own mistakes come first
        check_models(suite, agent, args.model, installed=not args.replay)
    _check_cassettes(args, suite)
    console = _console(quiet=args.json)
    report = evaluate(suite, trials=args.trials, mode=_mode(args), cassettes=args.cassettes,
                      model=args.model, console=console, quiet=args.json)
    if args.json:
        _dump(report.model_dump(mode="json"))
    else:
        print_report(console, report)
    return _exit_code([e for c in report.cases for e in c.could_not_run], report.accuracy == 1.0)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: PLC0415

        from .serve import create_app, load_keys, served_agents  # noqa: PLC0415
    except ImportError as exc:
        raise UserError(f"serve needs the server extra ({exc.name} is missing): "
                        f"{sys.executable} -m pip install 'react-agent[server]'") from None
    from .stores import open_store  # noqa: PLC0415

    keys = load_keys(args.keys)
    store = open_store()
    store.session_info("serve")  # a store that cannot be used fails here, in one line, not request by request
    agents, sources = served_agents(args.paths, store, model=args.model)
    app = create_app(agents, store, keys, sources=sources)
    print(f"serving {', '.join(agents)} for {len(keys)} key(s) on http://{args.host}:{args.port} "
          f"(API docs at /docs; {_where(store)})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.log != "off" else "warning")
    return 0


COMMANDS = {"run": cmd_run, "chat": cmd_chat, "tools": cmd_tools, "sessions": cmd_sessions, "runs": cmd_runs,
            "usage": cmd_usage,
            "approve": cmd_approve, "deny": cmd_deny, "show": cmd_show,
            "resume": cmd_resume, "eval": cmd_eval, "serve": cmd_serve, "batch": cmd_batch}
