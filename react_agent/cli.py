"""``python -m react_agent``: argument parsing and printing only; the work is in tasks/agent/memory.

Exit codes: 0 every check passed; 1 a check failed; 2 a user mistake (bad flag, bad task file, unknown
tool, broken plugin, missing extra), one line on stderr, before anything is written; 3 could not run
(the model server was unreachable or kept failing: a run ended with a model-request error); 130
interrupted (Ctrl-C), naming the runs to resume.
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

    from .agent import Agent
    from .recording import Mode
    from .router import Router
    from .tasks import TaskFile, TaskOutcome

__all__ = ["main"]

MAX_TRIALS = 1000
CHECK_FAILED, USER_MISTAKE, COULD_NOT_RUN, INTERRUPTED = 1, 2, 3, 130
EXIT_CODES = """exit codes:
  0    every check passed
  1    a check failed (the agent ran, its answer or status was not the expected one)
  2    a mistake in the command, the task file, a plugin or the install (one line, nothing written)
  3    could not run: the model server was unreachable or kept failing (the error names its URL)
  130  interrupted (Ctrl-C): the message names the run ids to `resume`"""
CHAT_TOOLS = ("calculate", "convert_units")  # what `chat` without a task file can use


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
    run.add_argument("--model", help="override the model (e.g. local, gpt-4o-mini)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true", help="save each task's HTTP traffic as a cassette")
    mode.add_argument("--replay", action="store_true", help="answer the model's requests from the cassettes")
    run.add_argument("--cassettes", type=Path, help=_CASSETTES_HELP)
    run.add_argument("--json", action="store_true", help="print the results as JSON")

    chat = add("chat", "talk to an agent on a session (interactive; /exit, /quit or Ctrl-D ends)")
    chat.add_argument("taskfile", type=Path, nargs="?",
                      help="take the agent from this task file (default: an assistant with the calculator tools "
                           "of tools/calculator.py)")
    chat.add_argument("--agent", help="which agent of the task file (default: the one its first task uses)")
    chat.add_argument("--session", help="session id (default: a new one; an existing one continues)")
    chat.add_argument("--model", help="override the model (e.g. local, gpt-4o-mini)")

    tools = add("tools", "list the tools found in plugin folders and entry points")
    tools.add_argument("--plugins", type=Path, action="append", help="plugin folder, repeatable (default: tools)")
    tools.add_argument("--json", action="store_true", help="print names, sources, descriptions and parameters as JSON")

    sessions = add("sessions", "list, show or delete sessions")
    sessions.add_argument("action", choices=["list", "show", "rm"], help="list all, show one, or delete one")
    sessions.add_argument("session", nargs="?", help="the session id (show, rm)")
    sessions.add_argument("--user", help="only this user's sessions (list)")
    sessions.add_argument("--json", action="store_true", help="print as JSON")

    resume = add("resume", "resume a run that crashed or was interrupted (started by run or chat)")
    resume.add_argument("run_id", help="the run id (printed when a run is interrupted; see `sessions show`)")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")

    evaluate = add("eval", "evaluate an agent on a suite: accuracy, pass^k, latency, cost")
    evaluate.add_argument("suite", type=Path, help="a task file whose tasks are the cases (e.g. tasks/eval/*.yaml)")
    evaluate.add_argument("--trials", type=_trials, default=1, help=f"runs per case, 1..{MAX_TRIALS} (default: 1)")
    evaluate.add_argument("--model", help="override the model (e.g. local, gpt-4o-mini)")
    emode = evaluate.add_mutually_exclusive_group()
    emode.add_argument("--record", action="store_true", help="save each trial's HTTP traffic as a cassette")
    emode.add_argument("--replay", action="store_true", help="answer the model's requests from the cassettes")
    evaluate.add_argument("--cassettes", type=Path, help=_CASSETTES_HELP)
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    try:
        args = _parser().parse_args(argv)
        if args.log != "off":
            from .log import configure_logging  # noqa: PLC0415

            configure_logging("DEBUG" if args.log == "debug" else "INFO", json=args.log == "json")
        return int(COMMANDS[args.command](args))
    except UserError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, whatever the message holds
        return USER_MISTAKE
    except KeyboardInterrupt:
        print(_interrupted(started), file=sys.stderr)
        return INTERRUPTED


def _interrupted(since: float) -> str:
    """What Ctrl-C left: the runs this command started that the journal still has as running."""
    from .paths import default_store_path  # noqa: PLC0415

    runs = []
    if default_store_path().exists():  # recorded/replayed runs use a throwaway store: nothing to resume
        from .stores import DiskStore  # noqa: PLC0415

        store = DiskStore()
        runs = [r for r in store.runs(status="running") if r.started >= since - 1]
        store.close()
    if not runs:
        return "interrupted: no run was left open in the store (nothing to resume)"
    listed = "; ".join(f"run {r.run_id} ({r.agent}, session {r.session})" for r in runs)
    commands = " or ".join(f"`python -m react_agent resume {r.run_id}`" for r in runs)
    return f"interrupted: the session and run journal are saved — {listed}; {commands} continues"


def _exit_code(errors: list[str], passed: bool) -> int:
    """3 when a run could not ask its model (each error once on stderr), else 1 if a check failed."""
    for error in dict.fromkeys(errors):
        print(f"could not run: {' '.join(error.split())}", file=sys.stderr)
    return COULD_NOT_RUN if errors else 0 if passed else CHECK_FAILED


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
    return _exit_code([e for o in outcomes for e in o.could_not_run], all(o.passed for o in outcomes))


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
    session = args.session or f"chat-{int(time.time())}"
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
    async for _ in agent.stream(text, session=session, metadata=metadata):  # the printer hook shows it
        pass


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


def _assistant(model: str | None) -> Agent:
    """``chat`` without a task file: the calculator tools of the plugin folder ``tools/`` (the working
    directory's, else the checkout's), not every shipped tool — a small local model cannot choose among
    twenty. Without that file the assistant has no tools, and says so."""
    from .agent import Agent  # noqa: PLC0415
    from .plugins import _import_file, _tools_in  # noqa: PLC0415

    tools = []
    for folder in (Path("tools"), Path(__file__).resolve().parent.parent / "tools"):
        if (folder / "calculator.py").is_file():
            tools = [t for t in _tools_in(_import_file(folder / "calculator.py")) if t.name in CHAT_TOOLS]
            break
    instructions = ("You are a helpful assistant. Never compute in your head: call the calculate tool for "
                    "arithmetic and the convert_units tool for unit conversions." if tools else
                    "You are a helpful assistant.")
    return Agent(name="assistant", instructions=instructions, tools=tools, model=model)


def _tool_names(agent: Agent | Router) -> list[str]:
    from .agent import Agent  # noqa: PLC0415

    agents = [agent] if isinstance(agent, Agent) else [agent.classifier, *agent.routes.values()]
    return sorted({name for a in agents for name in a.tools})


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
        console.print(f"[bold]{escape(item.name)}[/]  [dim]{escape(item.source)}[/]")
        console.print(escape(first_paragraph(item.description, width=max(console.width, 40))))
    for skipped in found.skipped:
        console.print(f"[red]skipped[/] {escape(skipped.source)}: {escape(skipped.reason)}")
    console.print(f"{len(found.tools)} tools, {len(found.skipped)} skipped")
    return 0


def first_paragraph(text: str, *, width: int, indent: str = "    ") -> str:
    """A description's first paragraph, whole, wrapped at word boundaries (never cut mid-word)."""
    import textwrap  # noqa: PLC0415

    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    return textwrap.fill(paragraph, width=width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


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
            if infos:
                print("SESSION\tMESSAGES\tAGENT\tUSER\tCREATED")
            for info, count in infos:
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
                print(f"{info.id}\t{count}\t{info.agent or '-'}\t{info.user_id or '-'}\t{created}")
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
    meta = record.metadata
    if meta.get("task_file"):  # from `run`, or from `chat` on a task file: that file's agent
        agent = build_agent(load_task_file(meta["task_file"]), record.agent, model=meta.get("model"))
    elif meta.get("chat"):  # `chat` without a task file: the same plain assistant
        agent = _assistant(meta.get("model"))
    else:
        raise UserError(f"run {args.run_id} was not started by `run` or `chat`; resume it in code with "
                        "agent.run(..., session=..., resume=True)")
    if not args.json:
        agent.hooks.append(TracePrinter(_console()))
    result = agent.run_sync("", run_id=args.run_id, resume=True)
    if args.json:
        _dump(result.model_dump(mode="json"))
    from .tasks import could_not_run  # noqa: PLC0415

    return _exit_code(could_not_run([result]), result.status == "completed")


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
    return _exit_code([e for c in report.cases for e in c.could_not_run], report.accuracy == 1.0)


COMMANDS = {"run": cmd_run, "chat": cmd_chat, "tools": cmd_tools, "sessions": cmd_sessions,
            "resume": cmd_resume, "eval": cmd_eval}
