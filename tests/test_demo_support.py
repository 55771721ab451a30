"""The customer-support demo tools (tools/support.py) and its task file, with no network."""

from __future__ import annotations

import csv
import importlib.util
import sqlite3
from pathlib import Path

import pytest

from react_agent import ModelRetry
from react_agent.approval import Approve
from react_agent.tasks import build_agent, load_task_file, run_task
from react_agent.testing import ScriptedModel, reply, tool_call

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tasks" / "support.yaml"


# -- knowledge base -----------------------------------------------------------------------------------
async def test_kb_search_ranks_the_matching_article_first(tools):
    out = await tools["search_knowledge_base"](query="return window")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[returns] Return window:")
    assert "30 days" in lines[0]


async def test_kb_search_respects_limit_and_keeps_passages_short(tools):
    out = await tools["search_knowledge_base"](query="refund card bank days", limit=2)
    assert len(out.splitlines()) == 2
    assert out.splitlines()[0].startswith("[refunds]")
    assert all(len(line) < 320 for line in out.splitlines())


async def test_kb_search_stems_words(tools):
    out = await tools["search_knowledge_base"](query="cancelling", limit=1)
    assert out.startswith("[cancellations]")


async def test_kb_search_bad_inputs(tools):
    too_many = await tools["search_knowledge_base"].invoke('{"query": "returns", "limit": 9}')
    assert too_many.kind == "invalid_arguments" and "limit: Input should be less than or equal to 5" in too_many.content
    schema = tools["search_knowledge_base"].schema()["function"]["parameters"]["properties"]["limit"]
    assert (schema["minimum"], schema["maximum"]) == (1, 5)  # the model is told the bounds it is held to
    with pytest.raises(ModelRetry, match="no words"):
        await tools["search_knowledge_base"](query="?! --")
    assert (await tools["search_knowledge_base"](query="zebra quantum")).startswith("No article matches")


async def test_kb_search_punctuation_does_not_break_fts_syntax(tools):
    out = await tools["search_knowledge_base"](query='"warranty" AND (battery) NEAR* -claim', limit=1)
    assert out.startswith("[warranty]")


# -- orders -------------------------------------------------------------------------------------------
async def test_order_status_reads_the_seed_data(tools):
    out = await tools["check_order_status"](order_id=1166)
    assert out.startswith("Order 1166: delayed;")
    assert "FedEx tracking 328988166447" in out
    assert "estimated delivery 2024-06-27" in out
    assert "2x Smart Plug (2-pack)" in out


@pytest.mark.parametrize("form", [1042, "1042", "#1042", "order 1042", "Order #1042", " order no. 1042 "])
async def test_order_id_forms_are_accepted(tools, form):
    assert (await tools["check_order_status"](order_id=form)).startswith("Order 1042: delivered;")


async def test_unknown_order_is_a_retry_with_the_valid_range(tools):
    with pytest.raises(ModelRetry, match=r"Order 9999 was not found \(order numbers run from 1001 to 1200\)"):
        await tools["check_order_status"](order_id="9999")


@pytest.mark.parametrize("bad", ["abc", "1042 and 1043", "T-0001", ""])
async def test_malformed_order_id_is_a_retry(tools, bad):
    with pytest.raises(ModelRetry, match="not an order number"):
        await tools["check_order_status"](order_id=bad)


async def test_unknown_order_through_invoke_is_a_retry_observation(tools):
    outcome = await tools["check_order_status"].invoke('{"order_id": 42}')
    assert outcome.kind == "retry"
    assert "not found" in outcome.content


async def test_every_seed_order_can_be_looked_up(tools):
    with (ROOT / "demo" / "shop" / "orders.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200
    assert {r["status"] for r in rows} == {"pending", "processing", "shipped", "delayed", "delivered",
                                           "cancelled", "returned"}
    for row in rows[::37]:
        out = await tools["check_order_status"](order_id=int(row["order_id"]))
        assert out.startswith(f"Order {row['order_id']}: {row['status']};")
        assert f"total ${float(row['total']):.2f}" in out


# -- tickets ------------------------------------------------------------------------------------------
async def test_tickets_get_sequential_ids_that_persist(tools, state):
    create = tools["create_ticket"]
    first = await create(subject="Parcel damaged", description="Box crushed", priority="high", order_id="#1042")
    second = await create(subject="Password help", description="Reset link expired", priority="low")
    assert first == "Created ticket T-0001 (high priority) for order 1042."
    assert second == "Created ticket T-0002 (low priority)."
    with sqlite3.connect(state / "shop.db") as conn:
        rows = conn.execute("SELECT ticket_id, order_id, priority, status FROM tickets").fetchall()
    assert rows == [(1, 1042, "high", "open"), (2, None, "low", "open")]
    # the next "run" (a new call, new connection) continues the sequence
    assert (await create(subject="Late", description="Not here", order_id=1166)).startswith("Created ticket T-0003")
    assert "T-0001 (open)" in await tools["check_order_status"](order_id=1042)


async def test_same_state_gives_byte_identical_outputs(tools, tmp_path, monkeypatch):
    outputs = []
    for name in ("a", "b"):
        monkeypatch.setenv("REACT_AGENT_STATE_DIR", str(tmp_path / name))
        outputs.append([
            await tools["create_ticket"](subject="Late", description="Where is it?", order_id=1166),
            await tools["escalate_to_human"](ticket_id="T-0001", reason="customer asked for a person"),
        ])
    assert outputs[0] == outputs[1]


async def test_duplicate_ticket_is_not_created_twice(tools):
    args = {"subject": "Parcel damaged", "description": "Box crushed", "order_id": 1042}
    await tools["create_ticket"](**args)
    again = await tools["create_ticket"](**args)
    assert again == "Ticket T-0001 with this subject is already open; not created again."


async def test_bad_priority_is_rejected_by_the_schema(tools):
    create = tools["create_ticket"]
    schema = create.schema()["function"]["parameters"]["properties"]["priority"]
    assert schema["enum"] == ["low", "medium", "high", "urgent"]
    outcome = await create.invoke('{"subject": "x", "description": "y", "priority": "critical"}')
    assert outcome.kind == "invalid_arguments"
    assert "priority" in outcome.content


async def test_ticket_for_unknown_order_is_a_retry_and_writes_nothing(tools, state):
    with pytest.raises(ModelRetry, match="Order 5 was not found"):
        await tools["create_ticket"](subject="x", description="y", order_id=5)
    with pytest.raises(ModelRetry, match="subject is empty"):
        await tools["create_ticket"](subject="  ", description="y")
    with sqlite3.connect(state / "shop.db") as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone() == (0,)


async def test_escalation_needs_an_existing_ticket(tools, state):
    with pytest.raises(ModelRetry, match="Ticket T-0007 does not exist"):
        await tools["escalate_to_human"](ticket_id="T-0007", reason="angry")
    with pytest.raises(ModelRetry, match="not a ticket id"):
        await tools["escalate_to_human"](ticket_id="order 1042", reason="angry")
    await tools["create_ticket"](subject="Smoke from charger", description="Smells burnt", priority="urgent")
    out = await tools["escalate_to_human"](ticket_id="t-1", reason="safety issue")
    assert out == ("Ticket T-0001 escalated to a human agent (1 in the queue). "
                   "The customer will get an email reply within 2 hours.")
    assert await tools["escalate_to_human"](ticket_id="T-0001", reason="again") == \
        "Ticket T-0001 is already with a human agent."
    with sqlite3.connect(state / "shop.db") as conn:
        assert conn.execute("SELECT ticket_id, reason FROM escalations").fetchall() == [(1, "safety issue")]
        assert conn.execute("SELECT status FROM tickets").fetchall() == [("escalated",)]


# -- seed data ----------------------------------------------------------------------------------------
def test_generator_reproduces_the_committed_csvs(tmp_path):
    spec = importlib.util.spec_from_file_location("shop_generate", ROOT / "demo" / "shop" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write(tmp_path)
    for table in ("customers", "products", "orders", "order_items"):
        committed = (ROOT / "demo" / "shop" / f"{table}.csv").read_bytes()
        assert (tmp_path / f"{table}.csv").read_bytes() == committed, table


def test_demo_dir_can_be_overridden(tools, tmp_path, monkeypatch):
    monkeypatch.setenv("REACT_AGENT_DEMO_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="seed data not found"):
        tools["check_order_status"].fn(order_id=1042)


# -- through the agent loop ---------------------------------------------------------------------------
async def test_scripted_support_run(state):
    model = ScriptedModel([
        tool_call("search_knowledge_base", {"query": "damaged parcel"}),
        tool_call("check_order_status", {"order_id": "1042"}),
        tool_call("create_ticket", {"order_id": 1042, "subject": "Parcel arrived damaged",
                                    "description": "Mouse arrived broken; wants a replacement.",
                                    "priority": "high"}),
        tool_call("escalate_to_human", {"ticket_id": "T-0001", "reason": "customer asked for a person"}),
        reply("Sorry! I opened ticket T-0001 and a colleague will email you within 1 business day."),
    ])
    agent = build_agent(load_task_file(TASKS), model=model)
    assert sorted(agent.tools) == ["check_order_status", "create_ticket", "escalate_to_human",
                                   "search_knowledge_base"]
    result = await agent.run("My order 1042 arrived damaged, I want to talk to a person.")
    # the knowledge base is untrusted text: after reading it, opening a ticket waits for a human
    assert result.status == "awaiting_approval"
    assert [p.tool for p in result.pending] == ["create_ticket"]
    result = await agent.resume(result.run_id, {result.pending[0].call_id: Approve()})
    assert result.status == "awaiting_approval" and [p.tool for p in result.pending] == ["escalate_to_human"]
    result = await agent.resume(result.run_id, {result.pending[0].call_id: Approve()})
    assert result.status == "completed"
    assert "T-0001" in result.output
    observations = [o for s in result.steps for o in s.observations]
    assert [o.kind for o in observations] == ["ok"] * 4
    assert "[damaged-items]" in observations[0].content
    assert observations[2].content == "Created ticket T-0001 (high priority) for order 1042."
    system = model.requests[0].messages[0]["content"]
    assert "Acme Electronics" in system and "search_knowledge_base first" in system
    with sqlite3.connect(state / "shop.db") as conn:
        assert conn.execute("SELECT status FROM tickets").fetchall() == [("escalated",)]


async def test_scripted_unknown_order_is_fixed_by_the_model():
    model = ScriptedModel([
        tool_call("check_order_status", {"order_id": "10420"}),
        tool_call("check_order_status", {"order_id": "1042"}),
        reply("Order 1042 was delivered on 2024-02-20."),
    ])
    result = await build_agent(load_task_file(TASKS), model=model).run("Where is order 10420?")
    kinds = [o.kind for s in result.steps for o in s.observations]
    assert kinds == ["retry", "ok"]
    assert "not found" in model.requests[1].messages[-1]["content"]


async def test_task_file_expectations_pass_with_a_scripted_model():
    task_file = load_task_file(TASKS)
    task = next(t for t in task_file.tasks if t.name == "damaged-ticket")
    model = ScriptedModel([
        tool_call("create_ticket", {"order_id": 1042, "subject": "Arrived damaged",
                                    "description": "Order arrived damaged.", "priority": "high"}),
        reply("I opened ticket T-0001 for you."),
    ])
    outcome = await run_task(task_file, task, model=model)
    assert outcome.passed, outcome.checks
