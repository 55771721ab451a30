"""``eval SUITE``: run each case k times; report accuracy, pass^k, latency percentiles, tokens, cost.

A suite is a task file whose tasks are the cases (input + expectations). pass^k is the share of cases
whose k trials *all* pass — the number that tells whether an agent can be relied on.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .runner import run_one
from .tasks import TaskFile

if TYPE_CHECKING:
    from rich.console import Console

    from .recording import Mode

__all__ = ["CaseReport", "EvalReport", "evaluate", "print_report"]


class CaseReport(BaseModel):
    case: str
    trials: int
    passed: int
    failures: list[str]
    median_ms: float
    p95_ms: float
    tokens: float  # mean per trial
    cost_usd: float | None  # mean per trial; None when the model's price is unknown

    @property
    def all_passed(self) -> bool:
        return self.passed == self.trials


class EvalReport(BaseModel):
    suite: str
    trials: int
    cases: list[CaseReport]
    accuracy: float  # passed trials / all trials
    pass_k: float  # cases whose every trial passed / cases
    median_ms: float
    p95_ms: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def evaluate(suite: TaskFile, *, trials: int, mode: Mode | None, cassettes: Path, model: str | None,
             console: Console, quiet: bool) -> EvalReport:
    cases: list[CaseReport] = []
    all_ms: list[float] = []
    for case in suite.tasks:
        outcomes = [
            run_one(suite, case, mode=mode, cassettes=cassettes, model=model, console=console, quiet=quiet,
                    trial=trial if trials > 1 else None)
            for trial in range(1, trials + 1)
        ]
        ms = [sum(r.ms for r in o.results) for o in outcomes]
        all_ms += ms
        costs = [sum(r.usage.cost_usd for r in o.results) if all(r.usage.cost_usd is not None for r in o.results)
                 else None for o in outcomes]
        cases.append(CaseReport(
            case=case.name, trials=trials, passed=sum(o.passed for o in outcomes),
            failures=[f"trial {i + 1}: {c.name} ({c.detail[:120]})"
                      for i, o in enumerate(outcomes) for c in o.checks if not c.passed],
            median_ms=statistics.median(ms), p95_ms=percentile(ms, 95),
            tokens=statistics.mean(sum(r.usage.total_tokens for r in o.results) for o in outcomes),
            cost_usd=None if None in costs else statistics.mean(c for c in costs if c is not None),
        ))
    total = sum(c.trials for c in cases)
    return EvalReport(
        suite=str(suite.path), trials=trials, cases=cases,
        accuracy=sum(c.passed for c in cases) / total,
        pass_k=sum(c.all_passed for c in cases) / len(cases),
        median_ms=statistics.median(all_ms), p95_ms=percentile(all_ms, 95),
    )


def print_report(console: Console, report: EvalReport) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"eval {report.suite} — {report.trials} trial(s) per case")
    for column in ("case", "passed", "median", "p95", "tokens", "cost"):
        table.add_column(column)
    for case in report.cases:
        cost = "n/a" if case.cost_usd is None else f"${case.cost_usd:.4f}"
        table.add_row(case.case, f"{case.passed}/{case.trials}", f"{case.median_ms / 1000:.2f}s",
                      f"{case.p95_ms / 1000:.2f}s", f"{case.tokens:.0f}", cost)
    console.print(table)
    for case in report.cases:
        for failure in case.failures:
            console.print(f"[red]✗ {case.case}[/] {failure}")
    console.print(f"accuracy {report.accuracy:.0%}   pass^{report.trials} {report.pass_k:.0%}   "
                  f"median {report.median_ms / 1000:.2f}s   p95 {report.p95_ms / 1000:.2f}s")
