"""``eval SUITE``: run each case k times; report accuracy, pass^k, latency percentiles, tokens, cost.

A suite is a task file whose tasks are the cases (input + expectations). pass^k is the share of cases
whose k trials *all* pass — the number that tells whether an agent can be relied on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .runner import cassette_path, default_cassettes, run_one
from .tasks import TaskFile, TaskOutcome
from .usage import format_cost, sum_costs

if TYPE_CHECKING:
    from rich.console import Console

    from .recording import Mode

__all__ = ["CaseReport", "EvalReport", "case_report", "evaluate", "percentile", "print_report",
           "single_recording_notes", "suite_report"]


class CaseReport(BaseModel):
    case: str
    trials: int
    passed: int
    failures: list[str]
    median_ms: float
    p95_ms: float
    tokens: float  # mean per trial, nested runs (delegation, routing) included
    cost_usd: float | None  # mean per trial; None when a model's price is unknown
    could_not_run: list[str] = []  # errors of trials whose model could not be asked (server unreachable)

    @property
    def all_passed(self) -> bool:
        return self.passed == self.trials


class EvalReport(BaseModel):
    suite: str
    trials: int
    cases: list[CaseReport]
    accuracy: float  # passed trials / all trials
    pass_k: float  # cases whose every trial passed / cases
    median_ms: float  # over all trials of all cases
    p95_ms: float
    tokens: float  # sum over cases of the mean tokens per trial: what one pass over the suite uses
    cost_usd: float | None
    notes: list[str] = []  # what the numbers do not say (e.g. trials that replayed one recording)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list: the smallest value with at least q%
    of the values at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in 0..100, got {q}")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered) - 1e-9)  # the epsilon absorbs float error (0.95 * 20)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def case_report(name: str, outcomes: Sequence[TaskOutcome]) -> CaseReport:
    """One case's k trials: passes, failed checks, latency, mean tokens and cost per trial."""
    ms = [sum(r.ms for r in o.results) for o in outcomes]
    costs = [sum_costs(r.total_usage.cost_usd for r in o.results) for o in outcomes]
    return CaseReport(
        case=name, trials=len(outcomes), passed=sum(o.passed for o in outcomes),
        failures=[f"trial {i + 1}: {c.name} ({c.detail[:120]})"
                  for i, o in enumerate(outcomes) for c in o.checks if not c.passed],
        median_ms=statistics.median(ms), p95_ms=percentile(ms, 95),
        tokens=statistics.mean(sum(r.total_usage.total_tokens for r in o.results) for o in outcomes),
        cost_usd=None if any(c is None for c in costs) else statistics.mean(c for c in costs if c is not None),
        could_not_run=[error for o in outcomes for error in o.could_not_run],
    )


def suite_report(suite: str, trials: int, cases: Sequence[CaseReport], all_ms: Sequence[float]) -> EvalReport:
    return EvalReport(
        suite=suite, trials=trials, cases=list(cases),
        accuracy=sum(c.passed for c in cases) / sum(c.trials for c in cases),
        pass_k=sum(c.all_passed for c in cases) / len(cases),
        median_ms=statistics.median(all_ms), p95_ms=percentile(all_ms, 95),
        tokens=sum(c.tokens for c in cases),
        cost_usd=sum_costs(c.cost_usd for c in cases),
    )


def evaluate(suite: TaskFile, *, trials: int, mode: Mode | None, cassettes: Path | None, model: str | None,
             console: Console, quiet: bool) -> EvalReport:
    """Run every case ``trials`` times (each trial on a fresh session) and aggregate.

    A replay of a case recorded once (``<case>.yaml``, no ``<case>.trialN.yaml``) replays that one
    recording in every trial — the same answers each time — and the report's ``notes`` say so."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    notes = single_recording_notes(suite, trials, cassettes) if mode == "replay" else []
    if notes and not quiet:
        console.print(f"[yellow]note:[/] {notes[0]}")
    cases: list[CaseReport] = []
    all_ms: list[float] = []
    for case in suite.tasks:
        outcomes = [
            run_one(suite, case, mode=mode, cassettes=cassettes, model=model, console=console, quiet=quiet,
                    trial=trial if trials > 1 else None)
            for trial in range(1, trials + 1)
        ]
        all_ms += [sum(r.ms for r in o.results) for o in outcomes]
        cases.append(case_report(case.name, outcomes))
    return suite_report(str(suite.path), trials, cases, all_ms).model_copy(update={"notes": notes})


def single_recording_notes(suite: TaskFile, trials: int, cassettes: Path | None) -> list[str]:
    folder = cassettes or default_cassettes(suite)
    single = [case.name for case in suite.tasks  # (a case with no recording at all is an error, not a note)
              if trials > 1 and not cassette_path(folder, suite, case.name, 1).is_file()
              and cassette_path(folder, suite, case.name).is_file()]
    if not single:
        return []
    return [f"{len(single)} of {len(suite.tasks)} cases have one recording, not one per trial; each of their "
            f"{trials} trials replays it and gets the same answers, so their pass^{trials} equals their "
            f"accuracy (record --trials {trials} to replay distinct trials): {', '.join(single)}"]


def print_report(console: Console, report: EvalReport, *, command: str = "eval") -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"{command} {report.suite} — {report.trials} trial(s) per case")
    for column in ("case", "passed", "median", "p95", "tokens", "cost"):
        table.add_column(column)
    for case in report.cases:
        cost = format_cost(case.cost_usd)
        table.add_row(case.case, f"{case.passed}/{case.trials}", f"{case.median_ms / 1000:.2f}s",
                      f"{case.p95_ms / 1000:.2f}s", f"{case.tokens:.0f}", cost)
    console.print(table)
    for case in report.cases:
        for failure in case.failures:
            console.print(f"[red]✗ {case.case}[/] {failure}")
    cost = format_cost(report.cost_usd)
    console.print(f"accuracy {report.accuracy:.0%}   pass^{report.trials} {report.pass_k:.0%}   "
                  f"median {report.median_ms / 1000:.2f}s   p95 {report.p95_ms / 1000:.2f}s   "
                  f"{report.tokens:.0f} tokens   {cost} per pass over the suite")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
