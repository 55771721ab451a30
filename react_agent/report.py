"""Printing runs for people: the Thought / Action / Observation trace and a summary table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from .steps import Event, Step
    from .tasks import TaskOutcome

__all__ = ["TracePrinter", "print_summary"]

CLIP = 600


def _clip(text: str, limit: int = CLIP) -> str:
    text = text.strip()
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


class TracePrinter:
    """A hook that prints each step as it ends."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: Event) -> None:
        from rich.markup import escape  # noqa: PLC0415

        from .steps import RunEnd, RunStart, StepEnd  # noqa: PLC0415

        if isinstance(event, RunStart):
            self.console.print(f"[bold]» {escape(event.agent)}[/]  session {event.session}  run {event.run_id}")
            self.console.print(f"  [bold]Input:[/] {escape(_clip(event.input))}")
        elif isinstance(event, StepEnd):
            self.print_step(event.step)
        elif isinstance(event, RunEnd):
            result = event.result
            colour = "green" if result.status == "completed" else "red"
            self.console.print(f"  [{colour}]■ {result.status}[/] in {len(result.steps)} steps, "
                               f"{result.usage.total_tokens} tokens, {result.ms / 1000:.1f}s")
            if result.error:
                self.console.print(f"  [red]error:[/] {escape(result.error)}")

    def print_step(self, step: Step) -> None:
        from rich.markup import escape  # noqa: PLC0415

        out = self.console.print
        out(f"  [dim]step {step.index + 1}[/]")
        if step.thought:
            out(f"    [cyan]Thought:[/] {escape(_clip(step.thought))}")
        for action, obs in zip(step.actions, step.observations, strict=False):
            out(f"    [yellow]Action:[/] {escape(action.name)}({escape(_clip(action.arguments, 300))})")
            tag = "" if obs.ok else f" [red]({obs.kind})[/]"
            out(f"    [magenta]Observation{tag}:[/] {escape(_clip(obs.content))}")
        if step.answer is not None:
            out(f"    [green]Answer:[/] {escape(_clip(step.answer, 2000))}")
        if step.note:
            out(f"    [red]Sent back:[/] {escape(step.note)}")


def _cost(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def print_summary(console: Console, outcomes: list[TaskOutcome], seconds: float) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="Summary")
    for column in ("task", "status", "checks", "steps", "tokens", "cost", "time"):
        table.add_column(column)
    for outcome in outcomes:
        last = outcome.results[-1]
        passed = sum(c.passed for c in outcome.checks)
        table.add_row(
            outcome.task, last.status, f"{passed}/{len(outcome.checks)}",
            str(sum(len(r.steps) for r in outcome.results)),
            str(sum(r.usage.total_tokens for r in outcome.results)),
            _cost(_sum_costs(r.usage.cost_usd for r in outcome.results)),
            f"{sum(r.ms for r in outcome.results) / 1000:.1f}s",
        )
    console.print(table)
    for outcome in outcomes:
        for check in outcome.checks:
            if not check.passed:
                console.print(f"[red]✗ {outcome.task}: {check.name}[/] — {check.detail}")
    total = sum(o.passed for o in outcomes)
    console.print(f"{total}/{len(outcomes)} tasks passed their checks in {seconds:.1f}s")


def _sum_costs(costs: Any) -> float | None:
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total
