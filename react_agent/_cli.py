"""What the CLI's commands share: exit codes, output, where the store is, the plain chat assistant, and
asking about paused runs at a terminal. (Printing and choosing only: the work is in the library.)"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from .agent import Agent
    from .approval import Decision
    from .recording import Mode
    from .steps import RunResult
    from .stores import Store
    from .tasks import TaskFile

__all__ = ["CHAT_TOOLS", "CHECK_FAILED", "COULD_NOT_RUN", "INTERRUPTED", "OUTPUT_CLOSED", "USER_MISTAKE"]

CHECK_FAILED, USER_MISTAKE, COULD_NOT_RUN, INTERRUPTED, OUTPUT_CLOSED = 1, 2, 3, 130, 141  # 128 + SIGINT, SIGPIPE
CHAT_TOOLS = ("calculate", "convert_units")  # what `chat` without a task file can use


def _exit_code(errors: list[str], passed: bool) -> int:
    """3 when a run could not ask its model (each error once on stderr), else 1 if a check failed."""
    for error in dict.fromkeys(errors):
        print(f"could not run: {' '.join(error.split())}", file=sys.stderr)
    return COULD_NOT_RUN if errors else 0 if passed else CHECK_FAILED


def _mode(args: argparse.Namespace) -> Mode | None:
    return "record" if args.record else "replay" if args.replay else None


def _check_cassettes(args: argparse.Namespace, task_file: TaskFile) -> None:
    from .errors import UserError  # noqa: PLC0415

    if not args.replay:
        return
    if args.model:
        raise UserError(f"--model {args.model} does nothing with --replay: a replay answers as the model the "
                        "cassette was recorded from (record with --model to get another)")
    if args.cassettes is not None and not args.cassettes.is_dir():
        raise UserError(f"--cassettes {args.cassettes}: no such folder (a replay reads its cassettes from it)")
    from .runner import default_cassettes  # noqa: PLC0415

    if args.cassettes is None and not (folder := default_cassettes(task_file)).is_dir():
        raise UserError(f"no cassette folder at {folder} (the default for {task_file.path}: cassettes/ in its "
                        "project root); record with --record, or name the folder with --cassettes DIR")


def _console(quiet: bool = False) -> Console:
    from rich.console import Console  # noqa: PLC0415

    class CliConsole(Console):
        def on_broken_pipe(self) -> None:
            """rich's own answer is ``SystemExit(1)``, a failed check's code: leave it to ``cli.main``,
            which stops quietly with 141 like the rest of the CLI (rich documents this override)."""
            self.quiet = True
            raise BrokenPipeError

    return CliConsole(file=sys.stderr if quiet else sys.stdout, highlight=False, soft_wrap=True)


def _dump(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _where(store: Store) -> str:
    """A store's place, and why there: ``$REACT_AGENT_STORE`` names a Postgres store (shown with its password
    redacted); the default store follows ``$REACT_AGENT_HOME``, else the working directory."""
    import os  # noqa: PLC0415

    from .stores import DiskStore  # noqa: PLC0415

    if not isinstance(store, DiskStore):
        return f"the store {getattr(store, 'where', type(store).__name__)} ($REACT_AGENT_STORE)"
    why = "$REACT_AGENT_HOME" if os.environ.get("REACT_AGENT_HOME") else (
        "the working directory's .react_agent; set REACT_AGENT_HOME for one store everywhere")
    return f"the store at {store.path.resolve()} ({why})"


def _stored(store: Store) -> bool:
    """Whether there may be anything to read: a disk store's folder is not made by looking (a database
    server is simply asked)."""
    from .stores import DiskStore  # noqa: PLC0415

    return store.path.exists() if isinstance(store, DiskStore) else True


def _assistant(model: str | None) -> Agent:
    """``chat`` without a task file: the calculator tools of the plugin folder ``tools/`` (the working
    directory's, else the checkout's), not every shipped tool — a small local model cannot choose among
    twenty. Without that file the assistant has no tools, and says so."""
    from .agent import Agent  # noqa: PLC0415
    from .plugins import discover_file  # noqa: PLC0415

    tools = []
    for folder in (Path("tools"), Path(__file__).resolve().parent.parent / "tools"):
        if (path := folder / "calculator.py").is_file():
            found = discover_file(path)
            found.check()  # a broken plugin is the user's mistake: one line, exit 2
            tools = [t for name, t in found.tools.items() if name in CHAT_TOOLS]
            break
    instructions = ("You are a helpful assistant. Never compute in your head: call the calculate tool for "
                    "arithmetic and the convert_units tool for unit conversions." if tools else
                    "You are a helpful assistant.")
    return Agent(name="assistant", instructions=instructions, tools=tools, model=model)


def _print_pending(console: Console, result: RunResult) -> None:
    from rich.markup import escape  # noqa: PLC0415

    console.print(f"run {result.run_id} awaits approval:")
    for p in result.pending:
        console.print(f"  {escape(p.call_id)}: {escape(p.tool)}({escape(p.arguments)}) — {escape(p.reason)}")
    console.print(f"  continue with `python -m react_agent approve {result.run_id}` or "
                  f"`python -m react_agent deny {result.run_id} --reason ...`")


def _terminal_decider(console: Console) -> Callable[[RunResult], dict[str, Decision] | None]:
    """Ask the person at the terminal about each waiting call: approve, deny (with a reason), edit the
    arguments, or leave the run paused for later (`approve` / `deny`)."""
    from .approval import Approve, Deny  # noqa: PLC0415

    def decide(result: RunResult) -> dict[str, Decision] | None:
        _print_pending(console, result)
        decisions: dict[str, Decision] = {}
        for p in result.pending:
            while True:
                answer = input(f"{p.call_id} {p.tool}: [a]pprove, [d]eny, [e]dit arguments, [l]ater? ").strip()
                if answer in ("a", "approve"):
                    decisions[p.call_id] = Approve()
                elif answer in ("d", "deny"):
                    decisions[p.call_id] = Deny(input("reason: ").strip() or "denied at the terminal")
                elif answer in ("e", "edit"):
                    try:
                        edited = json.loads(input("arguments (a JSON object): "))
                    except ValueError as exc:
                        console.print(f"not JSON: {exc}")
                        continue
                    decisions[p.call_id] = Approve(edited if isinstance(edited, dict) else None)
                elif answer in ("l", "later", ""):
                    return None
                else:
                    continue
                break
        return decisions

    return decide
