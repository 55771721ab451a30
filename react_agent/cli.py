"""``python -m react_agent``: argument parsing and printing only; the work is in tasks/agent/memory.

Every user mistake (bad flag, bad task file, unknown tool, broken plugin, missing extra) is one line
on stderr and exit code 2; a failed check is exit code 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from .recording import Mode
    from .tasks import TaskFile, TaskOutcome

__all__ = ["main"]

MAX_TRIALS = 1000


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


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m react_agent", description="Run, chat with and inspect react-agent agents.")
    parser.add_argument("--log", choices=["off", "info", "debug", "json"], default="off",
                        help="structlog events on stderr: console format, or JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the tasks of a YAML task file and check them")
    run.add_argument("taskfile", type=Path)
    run.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    run.add_argument("--model", help="override the model (e.g. local, gpt-4o-mini)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true", help="save each task's HTTP traffic as a cassette")
    mode.add_argument("--replay", action="store_true", help="answer the model's requests from the cassettes")
    run.add_argument("--cassettes", type=Path, help=_CASSETTES_HELP)
    run.add_argument("--json", action="store_true", help="print the results as JSON")

    chat = sub.add_parser("chat", help="talk to an agent on a session (interactive)")
    chat.add_argument("taskfile", type=Path, nargs="?", help="take the agent from this task file")
    chat.add_argument("--agent", help="which agent of the task file")
    chat.add_argument("--session", help="session id (default: a new one)")
    chat.add_argument("--model")

    tools = sub.add_parser("tools", help="list the tools found in plugin folders and entry points")
    tools.add_argument("--plugins", type=Path, action="append", help="plugin folder (default: tools)")
    tools.add_argument("--json", action="store_true")

    sessions = sub.add_parser("sessions", help="list, show or delete sessions")
    sessions.add_argument("action", choices=["list", "show", "rm"])
    sessions.add_argument("session", nargs="?")
    sessions.add_argument("--user", help="only this user's sessions (list)")
    sessions.add_argument("--json", action="store_true")

    resume = sub.add_parser("resume", help="resume a run that crashed or was interrupted")
    resume.add_argument("run_id")
    resume.add_argument("--json", action="store_true")

    evaluate = sub.add_parser("eval", help="evaluate an agent on a suite: accuracy, pass^k, latency, cost")
    evaluate.add_argument("suite", type=Path)
    evaluate.add_argument("--trials", type=_trials, default=1, help=f"runs per case, 1..{MAX_TRIALS} (default: 1)")
    evaluate.add_argument("--model")
    emode = evaluate.add_mutually_exclusive_group()
    emode.add_argument("--record", action="store_true")
    emode.add_argument("--replay", action="store_true")
    evaluate.add_argument("--cassettes", type=Path, help=_CASSETTES_HELP)
    evaluate.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.log != "off":
            from .log import configure_logging  # noqa: PLC0415

            configure_logging("DEBUG" if args.log == "debug" else "INFO", json=args.log == "json")
        return int(COMMANDS[args.command](args))
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, whatever the message holds
        return 2
    except KeyboardInterrupt:
        print("interrupted: the session and run journal are saved; `resume RUN_ID` continues", file=sys.stderr)
        return 130


def _console(quiet: bool = False) -> Console:
    from rich.console import Console  # noqa: PLC0415

    return Console(file=sys.stderr if quiet else sys.stdout, highlight=False, soft_wrap=True)


def _dump(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


# -- run ------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .report import print_summary  # noqa: PLC0415
    from .tasks import load_task_file  # noqa: PLC0415

    task_file = load_task_file(args.taskfile)
    _check_cassettes(args, task_file)
    selected = [t for t in task_file.tasks if not args.task or t.name in args.task]
    if not selected:
        raise UserError(f"no task named {args.task} in {args.taskfile}; tasks: {[t.name for t in task_file.tasks]}")
    mode = _mode(args)
    from .runner import check_models, run_one  # noqa: PLC0415

    if mode != "replay":
        for agent in dict.fromkeys(t.agent for t in selected):
            check_models(task_file, agent, args.model)
    console = _console(quiet=args.json)
    started = time.perf_counter()

    outcomes = [run_one(task_file, task, mode=mode, cassettes=args.cassettes, model=args.model, console=console,
                        quiet=args.json) for task in selected]
    if args.json:
        _dump([_outcome_json(o) for o in outcomes])
    else:
        print_summary(console, outcomes, time.perf_counter() - started)
    return 0 if all(o.passed for o in outcomes) else 1


def _mode(args: argparse.Namespace) -> Mode | None:
    return "record" if args.record else "replay" if args.replay else None


def _check_cassettes(args: argparse.Namespace, task_file: TaskFile) -> None:
    if not args.replay:
        return
    if args.cassettes is not None and not args.cassettes.is_dir():
        raise UserError(f"--cassettes {args.cassettes}: no such folder (a replay reads its cassettes from it)")
    from .runner import default_cassettes  # noqa: PLC0415

    if args.cassettes is None and not (folder := default_cassettes(task_file)).is_dir():
        raise UserError(f"no cassette folder at {folder} (the default for {task_file.path}: cassettes/ in its "
                        "project root); record with --record, or name the folder with --cassettes DIR")


def _outcome_json(outcome: TaskOutcome) -> dict[str, Any]:
    return {"task": outcome.task, "passed": outcome.passed, "checks": [c.model_dump() for c in outcome.checks],
            "runs": [r.model_dump(mode="json") for r in outcome.results]}


# -- chat -----------------------------------------------------------------------------------------
def cmd_chat(args: argparse.Namespace) -> int:
    from .agent import Agent  # noqa: PLC0415
    from .report import TracePrinter  # noqa: PLC0415
    from .router import Router  # noqa: PLC0415
    from .runner import check_local, check_models  # noqa: PLC0415
    from .tasks import build_runner, load_task_file  # noqa: PLC0415

    console = _console()
    agent: Agent | Router
    if args.taskfile:  # an agent, or a router with its specialists; by default the one the tasks use
        task_file = load_task_file(args.taskfile)
        check_models(task_file, args.agent or task_file.tasks[0].agent, args.model)
        agent = build_runner(task_file, args.agent or task_file.tasks[0].agent, model=args.model)
    else:  # no task file: a plain assistant (a small local model cannot juggle every shipped tool)
        agent = Agent(name="assistant", model=args.model)
        check_local(agent.model)
    session = args.session or f"chat-{int(time.time())}"
    agent.hooks.append(TracePrinter(console))
    console.print(f"session {session} with {agent.name}. Empty line or Ctrl-D ends.")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        agent.run_sync(text, session=session)
    return 0


# -- tools ----------------------------------------------------------------------------------------
def cmd_tools(args: argparse.Namespace) -> int:
    from .plugins import discover  # noqa: PLC0415

    for folder in args.plugins or []:  # named on the command line: a typo is a mistake, not a skip
        if not folder.is_dir():
            raise UserError(f"--plugins {folder}: no such folder")
    found = discover(args.plugins or [Path("tools")])
    if args.json:
        _dump({"tools": [{"name": t.name, "source": t.source, "description": t.description,
                          "parameters": t.schema()["function"]["parameters"]} for t in found.tools.values()],
               "skipped": [{"source": s.source, "reason": s.reason} for s in found.skipped]})
        return 0
    from rich.markup import escape  # noqa: PLC0415

    console = _console()
    for item in found.tools.values():
        summary = escape(item.description.splitlines()[0])
        console.print(f"[bold]{escape(item.name)}[/]  [dim]{escape(item.source)}[/]\n    {summary}")
    for skipped in found.skipped:
        console.print(f"[red]skipped[/] {escape(skipped.source)}: {escape(skipped.reason)}")
    console.print(f"{len(found.tools)} tools, {len(found.skipped)} skipped")
    return 0


# -- sessions -------------------------------------------------------------------------------------
def cmd_sessions(args: argparse.Namespace) -> int:
    from .stores import DiskStore  # noqa: PLC0415

    if args.action != "list" and not args.session:
        raise UserError(f"sessions {args.action} needs a SESSION id")
    store = DiskStore()
    if args.action == "list":
        infos = [(info, len(store.messages(info.id))) for info in store.sessions(args.user)
                 ] if store.path.exists() else []  # no store yet: none is made by looking
        if args.json:
            _dump([{**dataclasses.asdict(info), "messages": count} for info, count in infos])
        else:
            print(f"{len(infos)} session(s) in {_where(store.path)}")
            for info, count in infos:
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
                print(f"{info.id}\t{count} messages\t{info.agent or '-'}\t{info.user_id or '-'}\t{created}")
        return 0
    if not store.path.exists() or not store.exists(args.session):  # no store yet: nothing to show, none made
        raise UserError(f"no session {args.session!r} in {_where(store.path)} (see `sessions list`)")
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


def _where(store: Path) -> str:
    """A store's place, and why there: the default store follows ``$REACT_AGENT_HOME``, else the
    working directory."""
    import os  # noqa: PLC0415

    why = "$REACT_AGENT_HOME" if os.environ.get("REACT_AGENT_HOME") else (
        "the working directory's .react_agent; set REACT_AGENT_HOME for one store everywhere")
    return f"the store at {store.resolve()} ({why})"


# -- resume ---------------------------------------------------------------------------------------
def cmd_resume(args: argparse.Namespace) -> int:
    from .journal import RESUMABLE  # noqa: PLC0415
    from .report import TracePrinter  # noqa: PLC0415
    from .stores import DiskStore  # noqa: PLC0415
    from .tasks import build_agent, load_task_file  # noqa: PLC0415

    store = DiskStore()
    record = store.run(args.run_id) if store.path.exists() else None
    if record is None:
        raise UserError(f"no run with id {args.run_id!r} in {_where(store.path)}")
    if record.status not in RESUMABLE:
        raise UserError(f"run {args.run_id} already ended with status {record.status!r}")
    if not record.metadata.get("task_file"):
        raise UserError(f"run {args.run_id} was not started from a task file; resume it in code with "
                        "agent.run(..., session=..., resume=True)")
    agent = build_agent(load_task_file(record.metadata["task_file"]), record.agent)
    if not args.json:
        agent.hooks.append(TracePrinter(_console()))
    result = agent.run_sync("", run_id=args.run_id, resume=True)
    if args.json:
        _dump(result.model_dump(mode="json"))
    return 0 if result.status == "completed" else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, print_report  # noqa: PLC0415
    from .runner import check_models  # noqa: PLC0415
    from .tasks import load_task_file  # noqa: PLC0415

    suite = load_task_file(args.suite)
    _check_cassettes(args, suite)
    if not args.replay:
        for agent in dict.fromkeys(t.agent for t in suite.tasks):
            check_models(suite, agent, args.model)
    console = _console(quiet=args.json)
    report = evaluate(suite, trials=args.trials, mode=_mode(args), cassettes=args.cassettes,
                      model=args.model, console=console, quiet=args.json)
    if args.json:
        _dump(report.model_dump(mode="json"))
    else:
        print_report(console, report)
    return 0 if report.accuracy == 1.0 else 1


COMMANDS = {"run": cmd_run, "chat": cmd_chat, "tools": cmd_tools, "sessions": cmd_sessions,
            "resume": cmd_resume, "eval": cmd_eval}
