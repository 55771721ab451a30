"""Data-analysis tools over the demo shop database: read-only SQL, summary statistics and charts.

Queries run on a ``mode=ro`` connection with ``query_only`` on, an authorizer that allows reading
only, and a cap on the work one query may do; only a single SELECT (or WITH ... SELECT) is accepted.
Charts are PNG files written under ``state_dir()/charts``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import statistics
from pathlib import Path
from typing import Any, Literal

from react_agent import ModelRetry, tool
from react_agent.paths import state_dir
from react_agent.plugins import load_sibling

shop = load_sibling(__file__, "_shop")

MAX_ROWS_SHOWN = 20
MAX_OUTPUT_CHARS = 1500
MAX_FETCH_ROWS = 10_000
MAX_VM_STEPS = 5_000_000  # SQLite virtual-machine instructions one query may run
_PROGRESS_EVERY = 10_000
_COMMENTS = re.compile(r"(--[^\n]*(\n|$))|(/\*.*?\*/)", re.DOTALL)
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _authorize(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def query_rows(query: str) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Run one read-only SELECT; (column names, rows, truncated). A bad query is a ModelRetry."""
    text = _COMMENTS.sub(" ", query).strip().rstrip(";").strip()
    first = text.split(None, 1)[0].upper() if text else ""
    if first not in ("SELECT", "WITH"):
        raise ModelRetry("Only read-only SELECT queries are allowed (start with SELECT or WITH).")
    steps = 0

    def budget() -> int:
        nonlocal steps
        steps += _PROGRESS_EVERY
        return 1 if steps > MAX_VM_STEPS else 0

    with shop.connect(readonly=True) as conn:
        conn.set_authorizer(_authorize)
        conn.set_progress_handler(budget, _PROGRESS_EVERY)
        try:
            cursor = conn.execute(text)
            rows = cursor.fetchmany(MAX_FETCH_ROWS + 1)
        except sqlite3.DatabaseError as exc:  # also ProgrammingError: more than one statement
            if steps > MAX_VM_STEPS:
                raise ModelRetry("The query does too much work; filter with WHERE, aggregate, or add LIMIT.") from None
            if "not authorized" in str(exc):
                raise ModelRetry("Not allowed: the query may only read data (a single SELECT).") from None
            raise ModelRetry(f"SQLite error: {str(exc).rstrip('.')}. Fix the query.") from None
        if cursor.description is None:
            raise ModelRetry("That statement returns no rows; send a SELECT query.")
        columns = [d[0] for d in cursor.description]
    truncated = len(rows) > MAX_FETCH_ROWS
    return columns, [tuple(r) for r in rows[:MAX_FETCH_ROWS]], truncated


def fmt(value: Any) -> str:
    """A cell as text: NULL, integers as is, floats with at most 2 decimals."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return str(value)


def _column(columns: list[str], name: str) -> int:
    lowered = [c.lower() for c in columns]
    if name.lower() not in lowered:
        raise ModelRetry(f"The result has no column {name!r}; its columns are {columns}. "
                         "Use an alias in the query (SELECT ... AS name) if needed.")
    return lowered.index(name.lower())


def _numbers(columns: list[str], rows: list[tuple[Any, ...]], name: str) -> list[float]:
    index = _column(columns, name)
    values = [r[index] for r in rows if r[index] is not None]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise ModelRetry(f"Column {name!r} is not numeric (e.g. {bad[0]!r}); pick a numeric column or CAST it.")
    return [float(v) for v in values]


@tool
def run_sql(query: str) -> str:
    """Run a read-only SQL SELECT on the shop database and show the rows.

    Args:
        query: one SQLite SELECT statement, e.g. "SELECT status, count(*) FROM orders GROUP BY status".
    """
    columns, rows, truncated = query_rows(query)
    if not rows:
        return f"{' | '.join(columns)}\n(no rows)"
    lines = [" | ".join(columns)]
    size = len(lines[0])
    shown = 0
    for row in rows[:MAX_ROWS_SHOWN]:
        line = " | ".join(fmt(v) for v in row)
        if size + len(line) + 1 > MAX_OUTPUT_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
        shown += 1
    total = f"more than {MAX_FETCH_ROWS}" if truncated else str(len(rows))
    if shown < len(rows):
        lines.append(f"({shown} of {total} rows shown; aggregate or add LIMIT to see the rest)")
    return "\n".join(lines)


@tool
def summary_stats(query: str, column: str) -> str:
    """Count, mean, median, standard deviation, min and max of one numeric column of a query.

    Args:
        query: a SELECT returning the values, e.g. "SELECT total FROM orders".
        column: the result column to summarise, e.g. "total".
    """
    columns, rows, truncated = query_rows(query)
    if not rows:
        raise ModelRetry("The query returned no rows.")
    values = _numbers(columns, rows, column)
    if not values:
        raise ModelRetry(f"Column {column!r} is NULL in every row.")
    stdev = fmt(statistics.stdev(values)) if len(values) > 1 else "n/a"
    note = f" (first {MAX_FETCH_ROWS} rows only)" if truncated else ""
    nulls = len(rows) - len(values)
    return (f"{column}: count={len(values)} mean={fmt(statistics.fmean(values))} "
            f"median={fmt(float(statistics.median(values)))} stdev={stdev} min={fmt(min(values))} "
            f"max={fmt(max(values))}" + (f" nulls={nulls}" if nulls else "") + note)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "chart"


@tool(sequential=True)
def make_chart(query: str, x: str, y: str, kind: Literal["bar", "line", "scatter"] = "bar",
               title: str = "") -> str:
    """Draw a chart (PNG) of two columns of a query's result.

    Args:
        query: a SELECT returning the x and y columns, e.g. "SELECT status, count(*) AS n FROM orders GROUP BY status".
        x: the column for the x axis (labels for a bar chart).
        y: the numeric column for the y axis.
        kind: bar, line or scatter.
        title: the chart title.
    """
    columns, rows, _ = query_rows(query)
    if not rows:
        raise ModelRetry("The query returned no rows; nothing to chart.")
    xi = _column(columns, x)
    ys = _numbers(columns, [r for r in rows if r[_column(columns, y)] is not None], y)
    xs = [fmt(r[xi]) for r in rows if r[_column(columns, y)] is not None]
    if not ys:
        raise ModelRetry(f"Column {y!r} is NULL in every row.")
    if kind == "bar" and len(xs) > 60:
        raise ModelRetry(f"{len(xs)} bars is too many for a bar chart; group the data or use kind='line'.")

    import matplotlib  # noqa: PLC0415 - heavy; only this tool needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if kind == "bar":
            axes.bar(xs, ys, color="#4C72B0")
        elif kind == "line":
            axes.plot(xs, ys, marker="o", color="#4C72B0")
        else:
            axes.scatter(xs, ys, color="#4C72B0")
        axes.set_xlabel(columns[xi])
        axes.set_ylabel(columns[_column(columns, y)])
        axes.set_title(title or f"{y} by {x}")
        if len(xs) > 8:
            axes.tick_params(axis="x", labelrotation=60, labelsize=8)
        figure.tight_layout()
        digest = hashlib.sha256("\0".join([query, x, y, kind, title]).encode()).hexdigest()[:8]
        relative = Path("charts") / f"{_slug(title or f'{y}-by-{x}')}-{digest}.png"
        target = state_dir() / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, format="png", metadata={"Software": None})
    finally:
        plt.close(figure)
    # the path is relative to the state folder: a replayed run (fresh state folder) sees the same text
    return f"Saved a {kind} chart of {len(ys)} points to {relative.as_posix()} in the state folder."
