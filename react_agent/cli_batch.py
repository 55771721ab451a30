"""``python -m react_agent batch TASKFILE``: the tasks of a task file (x trials) on Ray (``react_agent.batch``);
printing only — progress per item, then the same report as ``eval``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from ._cli import COULD_NOT_RUN, _check_cassettes, _console, _dump, _exit_code, _mode

if TYPE_CHECKING:
    from rich.console import Console

    from .batch import BatchItem

__all__ = ["cmd_batch"]


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import BatchUnavailableError, import_ray, run_batch, select_tasks  # noqa: PLC0415
    from .evaluate import print_report  # noqa: PLC0415
    from .runner import check_models  # noqa: PLC0415
    from .tasks import load_task_file  # noqa: PLC0415

    task_file = load_task_file(args.taskfile)
    selected = select_tasks(task_file, args.task)
    for agent in dict.fromkeys(t.agent for t in task_file.tasks if t.name in selected):
        check_models(task_file, agent, args.model, installed=not args.replay)  # the file's mistakes come first
    _check_cassettes(args, task_file)
    import_ray()  # a missing extra is the one line, before anything is printed
    console = _console(quiet=args.json)
    total = len(selected) * args.trials
    where = f"the Ray cluster at {args.address}" if args.address else "a local Ray instance"
    console.print(f"batch: {total} run(s) of {args.taskfile} on {where}"
                  + (f", {args.workers} at a time" if args.workers else ""))
    ended: list[BatchItem] = []

    def progress(item: BatchItem) -> None:
        ended.append(item)
        _print_item(console, item, len(ended), total)

    try:  # Ray prints what it has to say (a worker that died) on stdout: to stderr with the progress
        with contextlib.redirect_stdout(sys.stderr):
            report = run_batch(task_file, trials=args.trials, tasks=args.task, workers=args.workers,
                               address=args.address, mode=_mode(args), cassettes=args.cassettes, model=args.model,
                               on_item=progress)
    except BatchUnavailableError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return COULD_NOT_RUN
    if args.json:
        _dump({**report.model_dump(mode="json"), "passed": report.passed})
    else:
        print_report(console, report.report, command="batch")
        console.print(f"batch {report.batch_id}: {len(report.items)} run(s) on {len(report.hosts)} host(s), "
                      f"{report.workers} at a time, in {report.seconds:.1f}s"
                      + ("" if _mode(args) else
                         f"; `python -m react_agent runs list --batch {report.batch_id}` lists its runs"))
    return _exit_code(report.could_not_run, report.passed)


def _print_item(console: Console, item: BatchItem, n: int, total: int) -> None:
    from rich.markup import escape  # noqa: PLC0415

    head = f"[{n}/{total}] {escape(item.task)} trial {item.trial}:"
    if item.outcome is None:
        console.print(f"{head} [red]no result[/] — {escape(item.error or '')}"
                      + "".join(f"; run {r} left open" for r in item.open_runs))
        return
    outcome = item.outcome
    last = outcome.results[-1] if outcome.results else None
    checks = f"{sum(c.passed for c in outcome.checks)}/{len(outcome.checks)} checks"
    verdict = "[green]passed[/]" if outcome.passed else "[red]failed[/]"
    runs = ", ".join(r.run_id for r in outcome.results)
    console.print(f"{head} {verdict} ({checks}, {last.status if last else 'no run'}, "
                  f"{sum(r.ms for r in outcome.results) / 1000:.1f}s, run {runs})")
