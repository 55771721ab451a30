"""Printing runs for people: the Thought / Action / Observation trace and a summary table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .usage import format_cost, sum_costs

if TYPE_CHECKING:
    from rich.console import Console

    from .steps import Event, RunResult, Step
    from .tasks import TaskOutcome

__all__ = ["TracePrinter", "print_summary"]

CLIP = 600


def _clip(text: str, limit: int = CLIP) -> str:
    text = text.strip()
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


class TracePrinter:
    """A hook that prints each step as it ends. Nested runs (a router's classifier and specialist, whose
    events reach this hook too) are indented under their parent; runs of agents called as tools are
    listed, indented, when their parent ends: agent, status, tools used, tokens, cost.

    With ``stream_text=True`` the model's text is printed as it streams (``TextDelta``), and the step's
    summary then leaves out the thought or answer already shown."""

    def __init__(self, console: Console, *, stream_text: bool = False) -> None:
        self.console = console
        self.stream_text = stream_text
        self._open: list[str] = []  # run ids of the runs under way, outermost first
        self._seen: set[str] = set()  # run ids whose events were printed
        self._streamed = False  # text of the current step was printed as it came

    def __call__(self, event: Event) -> None:
        from rich.markup import escape  # noqa: PLC0415

        from .steps import RunEnd, RunStart, StepEnd, TextDelta  # noqa: PLC0415

        pad = "  " * len(self._open)
        if isinstance(event, TextDelta):
            if self.stream_text and event.text:
                if not self._streamed:  # the step's header first, then its text as it comes
                    self.console.print(f"{pad}[dim]step {event.step + 1}[/]")
                    self.console.print(f"{pad}  ", end="")
                self._streamed = True
                self.console.print(escape(event.text), end="")
            return
        if isinstance(event, RunStart):
            self._open.append(event.run_id)
            self._seen.add(event.run_id)
            self.console.print(f"{pad}[bold]» {escape(event.agent)}[/]  session {event.session}  run {event.run_id}")
            self.console.print(f"{pad}  [bold]Input:[/] {escape(_clip(event.input))}")
        elif isinstance(event, StepEnd):
            if self._streamed:
                self.console.print()
            self.print_step(event.step, indent=max(len(self._open) - 1, 0), text_shown=self._streamed)
            self._streamed = False
        elif isinstance(event, RunEnd):
            if event.result.run_id in self._open:
                self._open.remove(event.result.run_id)
            self.print_end(event.result, indent=len(self._open))

    def print_end(self, result: RunResult, indent: int = 0) -> None:
        from rich.markup import escape  # noqa: PLC0415

        pad = "  " * indent
        colour = "green" if result.status == "completed" else "red"
        total = result.total_usage
        if result.steps or not result.children:
            line = (f"{pad}  [{colour}]■ {result.status}[/] in {len(result.steps)} steps, "
                    f"{result.usage.total_tokens} tokens, {format_cost(result.usage.cost_usd)}, "
                    f"{result.ms / 1000:.1f}s")
            if result.children:
                line += (f"; with {_count_runs(result) - 1} nested run(s): {total.total_tokens} tokens, "
                         f"{format_cost(total.cost_usd)}")
        else:  # a router: the work was all in its nested runs
            handled_by = getattr(result.output, "handled_by", None)
            line = (f"{pad}  [{colour}]■ {result.status}[/]{f', handled by {escape(handled_by)}' if handled_by else ''}"
                    f" in {_count_runs(result) - 1} nested run(s), {total.total_tokens} tokens, "
                    f"{format_cost(total.cost_usd)}, {result.ms / 1000:.1f}s")
        self.console.print(line)
        if result.error:
            self.console.print(f"{pad}  [red]error:[/] {escape(result.error)}")
        for child in result.children:
            if child.run_id not in self._seen:
                self.print_tree(child, indent + 2)

    def print_tree(self, result: RunResult, indent: int) -> None:
        """One line per nested run (and its own nested runs, further in)."""
        from rich.markup import escape  # noqa: PLC0415

        tools = sorted({c.name for c in result.tool_calls})
        colour = "green" if result.status == "completed" else "red"
        self.console.print(
            f"{'  ' * indent}└ [bold]{escape(result.agent)}[/] run {result.run_id}: [{colour}]{result.status}[/], "
            f"{len(result.steps)} steps{' using ' + escape(', '.join(tools)) if tools else ''}, "
            f"{result.usage.total_tokens} tokens, {format_cost(result.usage.cost_usd)}, {result.ms / 1000:.1f}s")
        for child in result.children:
            self.print_tree(child, indent + 1)

    def print_step(self, step: Step, indent: int = 0, *, text_shown: bool = False) -> None:
        """``text_shown``: the step's text (thought or answer) was already printed as it streamed."""
        from rich.markup import escape  # noqa: PLC0415

        pad = "  " * indent
        out = self.console.print
        if not text_shown:
            out(f"{pad}  [dim]step {step.index + 1}[/]")
        if step.thought and not text_shown:
            out(f"{pad}    [cyan]Thought:[/] {escape(_clip(step.thought))}")
        for action, obs in zip(step.actions, step.observations, strict=False):
            out(f"{pad}    [yellow]Action:[/] {escape(action.name)}({escape(_clip(action.arguments, 300))})")
            tag = "" if obs.ok else f" [red]({obs.kind})[/]"
            out(f"{pad}    [magenta]Observation{tag}:[/] {escape(_clip(obs.content))}")
        if step.answer is not None and not text_shown:
            out(f"{pad}    [green]Answer:[/] {escape(_clip(step.answer, 2000))}")
        if step.note:
            out(f"{pad}    [red]Sent back:[/] {escape(step.note)}")


def _count_runs(result: RunResult) -> int:
    return 1 + sum(_count_runs(child) for child in result.children)


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
            str(sum(r.total_steps for r in outcome.results)),
            str(sum(r.total_usage.total_tokens for r in outcome.results)),
            format_cost(sum_costs(r.total_usage.cost_usd for r in outcome.results)),
            f"{sum(r.ms for r in outcome.results) / 1000:.1f}s",
        )
    console.print(table)
    for outcome in outcomes:
        for check in outcome.checks:
            if not check.passed:
                console.print(f"[red]✗ {outcome.task}: {check.name}[/] — {check.detail}")
    total = sum(o.passed for o in outcomes)
    console.print(f"{total}/{len(outcomes)} tasks passed their checks in {seconds:.1f}s")

