"""The CLI's commands on runs that already exist: resume one, decide its waiting calls, list and show runs."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from ._cli import _assistant, _console, _dump, _exit_code, _print_pending, _stored, _where
from .errors import UserError

if TYPE_CHECKING:
    from .approval import Decision
    from .stores import RunRecord

__all__ = ["cmd_approve", "cmd_deny", "cmd_resume", "cmd_runs", "cmd_show"]


def cmd_resume(args: argparse.Namespace) -> int:
    return _continue(args, _paused_or_crashed(args.run_id), None)


def cmd_approve(args: argparse.Namespace) -> int:
    from .approval import Approve  # noqa: PLC0415

    record = _paused_or_crashed(args.run_id, paused=True)
    calls = _chosen_calls(record, args.call_ids)
    arguments = None
    if args.arguments is not None:
        if len(calls) != 1:
            raise UserError(f"--arguments edits one call; name it (waiting: {calls})")
        try:
            arguments = json.loads(args.arguments)
        except ValueError as exc:
            raise UserError(f"--arguments is not JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise UserError("--arguments must be a JSON object")
    return _continue(args, record, dict.fromkeys(calls, Approve(arguments)))


def cmd_deny(args: argparse.Namespace) -> int:
    from .approval import Deny  # noqa: PLC0415

    record = _paused_or_crashed(args.run_id, paused=True)
    calls = _chosen_calls(record, args.call_ids)
    return _continue(args, record, dict.fromkeys(calls, Deny(args.reason)))


def cmd_runs(args: argparse.Namespace) -> int:
    from .stores import open_store  # noqa: PLC0415

    store = open_store()
    records = store.runs(session=args.session, status=args.status) if _stored(store) else []
    if args.batch:
        records = [r for r in records if r.metadata.get("batch_id") == args.batch]
    if args.json:
        _dump([r.model_dump(mode="json") for r in records])
        return 0
    print(f"{len(records)} run(s) in {_where(store)}")
    if records:
        print("RUN\tSTATUS\tAGENT\tSESSION\tSTARTED\tWAITING")
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started))
        waiting = ", ".join(f"{p['call_id']}={p['tool']}" for p in r.pending) or "-"
        print(f"{r.run_id}\t{r.status}\t{r.agent}\t{r.session}\t{started}\t{waiting}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .stores import open_store  # noqa: PLC0415
    from .viewer import print_run, render_html, run_tree  # noqa: PLC0415

    store = open_store()
    tree = run_tree(store, args.run_id) if _stored(store) else None  # no store yet: none is made
    if tree is None:
        raise UserError(f"no run with id {args.run_id!r} in {_where(store)} (see `runs list`)")
    if args.html is not None:
        try:
            args.html.write_text(render_html(args.run_id, tree=tree), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--html {args.html}: {exc.strerror or exc}") from None
    if args.json:
        _dump(tree)
    else:
        print_run(_console(), tree)
        if args.html is not None:
            print(f"wrote {args.html} (open it in a browser; it needs no server)")
    return 0


def _paused_or_crashed(run_id: str, *, paused: bool = False) -> RunRecord:
    from .journal import RESUMABLE  # noqa: PLC0415
    from .stores import open_store  # noqa: PLC0415

    store = open_store()
    record = store.run(run_id) if _stored(store) else None
    if record is None:
        raise UserError(f"no run with id {run_id!r} in {_where(store)}")
    if paused and record.status == "running":  # its process died (or it runs elsewhere) before any pause
        raise UserError(f"run {run_id} is not awaiting approval (status 'running'); if its process died, "
                        f"`python -m react_agent resume {run_id}` takes it up (calls still undecided wait again)")
    if paused and record.status != "awaiting_approval":
        raise UserError(f"run {run_id} is not awaiting approval (status {record.status!r})")
    if record.status not in RESUMABLE:
        raise UserError(f"run {run_id} already ended with status {record.status!r}")
    return record


def _chosen_calls(record: RunRecord, call_ids: list[str]) -> list[str]:
    """The calls a command decides: those named, which must be every waiting call (a run goes on once
    all its waiting calls are decided), or all of them when none is named."""
    waiting = [p["call_id"] for p in record.pending]
    if unknown := [c for c in call_ids if c not in waiting]:
        raise UserError(f"run {record.run_id} does not wait for {unknown}; waiting: {waiting}")
    if call_ids and (rest := [c for c in waiting if c not in call_ids]):
        raise UserError(f"run {record.run_id} also waits for {rest}: decide every waiting call at once "
                        "(name none to decide them all alike, or decide them in code with agent.resume)")
    return call_ids or waiting


def _continue(args: argparse.Namespace, record: RunRecord, approvals: dict[str, Decision] | None) -> int:
    """Rebuild the agent that started the run (``run`` or ``chat``) and take the run up again."""
    from .report import TracePrinter  # noqa: PLC0415
    from .tasks import build_agent, could_not_run, load_task_file  # noqa: PLC0415

    meta = record.metadata
    if meta.get("task_file"):  # from `run`, or from `chat` on a task file: that file's agent
        agent = build_agent(load_task_file(meta["task_file"]), record.agent, model=meta.get("model"))
    elif meta.get("chat"):  # `chat` without a task file: the same plain assistant
        agent = _assistant(meta.get("model"))
    else:
        raise UserError(f"run {record.run_id} was not started by `run` or `chat`; continue it in code with "
                        "agent.resume(run_id, approvals)")
    console = _console()
    if not args.json:
        agent.hooks.append(TracePrinter(console))
    result = agent.run_sync("", run_id=record.run_id, resume=True, approvals=approvals)
    if args.json:
        _dump(result.model_dump(mode="json"))
    elif result.status == "awaiting_approval":
        _print_pending(console, result)
    return _exit_code(could_not_run([result]), result.status == "completed")
