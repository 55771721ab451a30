"""The run viewer in a terminal: the timeline as a rich tree."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.tree import Tree as RichTree

from ..usage import Usage, format_cost
from .data import total_usage

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_run"]

FENCE = re.compile(r"<<untrusted:([0-9a-f]+)>>\n(.*)\n<</untrusted:\1>>", re.DOTALL)
STATUS_STYLE = {"completed": "green", "running": "blue", "awaiting_approval": "yellow"}
MAX_SHOWN = 600  # characters of an observation or argument list


def print_run(console: Console, tree: dict[str, Any]) -> None:
    """Print the run's timeline: each step's thought, actions and observations, tokens, cost and
    latency; nested runs under the step that delegated to them; totals."""
    root = RichTree(_title(tree))
    root.add(f"[dim]question[/] {escape(tree['input'])}")
    _steps(root, tree)
    console.print(root, soft_wrap=False)  # wrap long lines in the tree, do not crop them
    if tree["status"] == "awaiting_approval":
        for p in tree["pending"]:
            console.print(f"[yellow]waiting for approval[/] {escape(p['call_id'])} {escape(p['tool'])}"
                          f"({escape(p['arguments'])}): {escape(p['reason'])}")
    if tree.get("error"):
        console.print(f"[red]{escape(tree.get('error_type') or 'error')}[/]: {escape(tree['error'])}")
    if tree.get("output") is not None:
        console.print(f"[bold]output[/] {escape(_text(tree['output']))}")
    total = total_usage(tree)
    console.print(f"[bold]total[/] {_usage(total)} · run {_ms(tree['ms'])}")


def _title(tree: dict[str, Any]) -> str:
    style = STATUS_STYLE.get(tree["status"], "red")
    return (f"[bold]{escape(tree['agent'])}[/] [{style}]{tree['status']}[/] [dim]run {tree['run_id']} · session "
            f"{escape(tree['session'] or '-')} · model {escape(tree['model'] or '-')}[/]")


def _steps(node: RichTree, tree: dict[str, Any]) -> None:
    last = max((s["index"] for s in tree["steps"]), default=None)
    if last is None:  # a router's own run: its classifier's and specialist's runs
        for child in tree["children"]:
            _nested(node, child)
    for step in tree["steps"]:
        usage = Usage.model_validate(step.get("usage") or {})
        branch = node.add(f"[bold]step {step['index'] + 1}[/] [dim]{_usage(usage)} · step {_ms(step['ms'])}"
                          f"{' · ' + step['finish_reason'] if step.get('finish_reason') else ''}[/]")
        if step.get("thought"):
            branch.add(f"[italic]{escape(step['thought'])}[/]")
        observations = {o["call_id"]: o for o in step["observations"]}
        for call in step["actions"]:
            action = branch.add(f"[cyan]→ {escape(call['name'])}[/]({escape(_cut(call['arguments']))})")
            if (obs := observations.get(call["id"])) is None:
                action.add("[dim]no result yet[/]")
                continue
            fenced = FENCE.fullmatch(obs["content"])
            content = f"[yellow]untrusted:[/] {escape(_cut(fenced[2]))}" if fenced else escape(_cut(obs["content"]))
            style = "green" if obs["kind"] == "ok" else "yellow"
            action.add(f"[{style}]{obs['kind']}[/] {content}")
        if step.get("answer"):
            branch.add(f"[green]answer[/] {escape(step['answer'])}")
        if step.get("note"):
            branch.add(f"[yellow]note[/] {escape(step['note'])}")
        for child in tree["children"]:
            where = child.get("parent_step")
            if where == step["index"] or (where is None and step["index"] == last):  # journaled without its step
                _nested(branch, child)


def _nested(node: RichTree, child: dict[str, Any]) -> None:
    nested = node.add(f"[magenta]delegated[/] {_title(child)}")
    nested.add(f"[dim]asked[/] {escape(child['input'])}")
    _steps(nested, child)


def _usage(usage: Usage) -> str:
    return (f"{usage.prompt_tokens} in · {usage.completion_tokens} out · {format_cost(usage.cost_usd)} · "
            f"model {_ms(usage.latency_ms)}")


def _ms(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}… ({len(text)} characters)"
