"""The data-analysis demo tools (tools/data_analysis.py) and its task file, with no network."""

from __future__ import annotations

import csv
import sqlite3
import statistics
from pathlib import Path

import pytest

from react_agent import ModelRetry
from react_agent.prompts import Prompts
from react_agent.tasks import build_agent, load_task_file, run_task
from react_agent.testing import ScriptedModel, reply, tool_call

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tasks" / "data_analysis.yaml"


def seed(table: str) -> list[dict[str, str]]:
    with (ROOT / "demo" / "shop" / f"{table}.csv").open(newline="") as f:
        return list(csv.DictReader(f))


async def test_run_sql_shows_a_compact_table(tools):
    out = await tools["run_sql"](query="SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY n DESC")
    lines = out.splitlines()
    assert lines[0] == "status | n"
    counts = {}
    for row in seed("orders"):
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    assert lines[1] == f"delivered | {counts['delivered']}"
    assert len(lines) == 1 + len(counts)


async def test_run_sql_caps_the_rows_shown(tools):
    out = await tools["run_sql"](query="SELECT order_id, total FROM orders ORDER BY order_id")
    lines = out.splitlines()
    assert len(lines) == 22
    assert lines[-1] == "(20 of 200 rows shown; aggregate or add LIMIT to see the rest)"


async def test_run_sql_formats_nulls_and_floats(tools):
    out = await tools["run_sql"](query="SELECT carrier, round(1.0/3, 4) AS third FROM orders WHERE order_id = 1197")
    assert out.splitlines()[1] == "NULL | 0.33"


async def test_run_sql_allows_with_and_comments(tools):
    out = await tools["run_sql"](query="-- revenue by month\nWITH m AS (SELECT substr(order_date, 1, 7) AS month, "
                                       "sum(total) AS revenue FROM orders GROUP BY month) SELECT count(*) FROM m;")
    assert out.splitlines()[1] == "6"


@pytest.mark.parametrize("query", [
    "DELETE FROM orders",
    "UPDATE orders SET total = 0",
    "DROP TABLE orders",
    "PRAGMA table_info(orders)",
    "ATTACH DATABASE ':memory:' AS x",
    "  insert into tickets (subject, description, priority) values ('a', 'b', 'low')",
])
async def test_non_select_sql_is_rejected(tools, query):
    with pytest.raises(ModelRetry, match="Only read-only SELECT"):
        await tools["run_sql"](query=query)


async def test_writes_hidden_in_select_forms_are_refused(tools):
    with pytest.raises(ModelRetry, match="Not allowed"):
        await tools["run_sql"](query="WITH x AS (SELECT 1) DELETE FROM orders")
    with pytest.raises(ModelRetry, match="one statement at a time"):
        await tools["run_sql"](query="SELECT 1; DELETE FROM orders")
    assert (await tools["run_sql"](query="SELECT count(*) FROM orders")).splitlines()[1] == "200"


async def test_failing_sql_is_a_retry_with_the_sqlite_error(tools):
    with pytest.raises(ModelRetry, match="SQLite error: no such column: revenue"):
        await tools["run_sql"](query="SELECT revenue FROM orders")
    outcome = await tools["run_sql"].invoke('{"query": "SELEC * FROM orders"}')
    assert outcome.kind == "retry"


async def test_runaway_query_is_stopped(tools):
    with pytest.raises(ModelRetry, match="too much work"):
        await tools["run_sql"](query="SELECT count(*) FROM order_items a, order_items b, orders c")


async def test_summary_stats_match_the_statistics_module(tools):
    totals = [float(r["total"]) for r in seed("orders")]
    out = await tools["summary_stats"](query="SELECT total FROM orders", column="total")
    def cents(value: float) -> str:  # the tool prints at most 2 decimals, without trailing zeros
        return f"{value:.2f}".rstrip("0").rstrip(".")

    assert out == (f"total: count=200 mean={cents(statistics.fmean(totals))} "
                   f"median={cents(statistics.median(totals))} stdev={cents(statistics.stdev(totals))} "
                   f"min={cents(min(totals))} max={cents(max(totals))}")


async def test_summary_stats_bad_inputs(tools):
    with pytest.raises(ModelRetry, match="not numeric"):
        await tools["summary_stats"](query="SELECT status FROM orders", column="status")
    with pytest.raises(ModelRetry, match="no column 'amount'"):
        await tools["summary_stats"](query="SELECT total FROM orders", column="amount")
    with pytest.raises(ModelRetry, match="no rows"):
        await tools["summary_stats"](query="SELECT total FROM orders WHERE total < 0", column="total")


async def test_make_chart_writes_a_png_in_the_state_folder(tools, state):
    pytest.importorskip("matplotlib")
    args = {"query": "SELECT status, count(*) AS n FROM orders GROUP BY status", "x": "status", "y": "n",
            "kind": "bar", "title": "Orders by status"}
    out = await tools["make_chart"](**args)
    assert out.startswith("Saved a bar chart of 7 points to charts/orders-by-status-")
    relative = out.split(" to ", 1)[1].split(" in the state folder")[0]
    png = state / relative
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(state) not in out  # the text is the same in any state folder
    assert await tools["make_chart"](**args) == out


async def test_chart_of_an_empty_result_is_a_retry(tools, state):
    with pytest.raises(ModelRetry, match=r"(?i)the query returned no rows"):
        await tools["make_chart"](query="SELECT status, count(*) AS n FROM orders WHERE status = 'lost' "
                                        "GROUP BY status", x="status", y="n")
    assert not (state / "charts").exists()


async def test_chart_bad_columns_are_retries(tools):
    query = "SELECT status, carrier FROM orders LIMIT 5"
    with pytest.raises(ModelRetry, match="no column 'month'"):
        await tools["make_chart"](query=query, x="month", y="carrier")
    with pytest.raises(ModelRetry, match="not numeric"):
        await tools["make_chart"](query=query, x="status", y="carrier")
    outcome = await tools["make_chart"].invoke(f'{{"query": "{query}", "x": "status", "y": "n", "kind": "pie"}}')
    assert outcome.kind == "invalid_arguments"


def test_prompt_names_only_real_tables_and_columns(state):
    text = Prompts([ROOT / "prompts"]).render("data_analyst.j2")
    conn = sqlite3.connect(":memory:")
    conn.executescript((ROOT / "demo" / "shop" / "schema.sql").read_text())
    for line in text.splitlines():
        if line.startswith("- ") and "(" in line:
            table, columns = line[2:].split("(", 1)
            real = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            named = [c.split()[0] for c in columns.rstrip(")").split(", ")]
            assert named == real, table


async def test_scripted_analysis_run():
    model = ScriptedModel([
        tool_call("run_sql", {"query": "SELECT count(*) AS cancelled FROM orders WHERE status = 'canceled'"}),
        tool_call("run_sql", {"query": "SELECT count(*) AS cancelled FROM orders WHERE status = 'cancelled'"}),
        tool_call("summary_stats", {"query": "SELECT total FROM orders", "column": "total"}),
        reply("10 orders were cancelled; the average order total is $233.80."),
    ])
    agent = build_agent(load_task_file(TASKS), model=model)
    result = await agent.run("How many orders were cancelled, and what is the average order?")
    assert result.status == "completed"
    contents = [o.content for s in result.steps for o in s.observations]
    assert contents[0] == "cancelled\n0"
    assert contents[1] == "cancelled\n10"
    assert contents[2].startswith("total: count=200 mean=233.8 ")
    assert "order_items(order_id, product_id, quantity, unit_price)" in model.requests[0].messages[0]["content"]


async def test_task_file_expectations_pass_with_a_scripted_model():
    task_file = load_task_file(TASKS)
    task = next(t for t in task_file.tasks if t.name == "cancelled-orders")
    model = ScriptedModel([
        tool_call("run_sql", {"query": "SELECT count(*) FROM orders WHERE status = 'cancelled'"}),
        reply("10 orders were cancelled."),
    ])
    outcome = await run_task(task_file, task, model=model)
    assert outcome.passed, outcome.checks
