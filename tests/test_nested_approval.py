"""A nested agent (``as_tool``) that pauses for approval pauses its caller: the caller's ``pending`` lists the
nested run's calls (with that run's id), a decision given to the caller goes on to the nested run, and the
caller's call gets the nested run's final report — in this process or after a restart, at any depth."""

from __future__ import annotations

import json

import pytest
from conftest import history_problems

from react_agent import Agent, DiskStore, ToolContext, UserError, tool
from react_agent.approval import Approve, Deny
from react_agent.journal import Journal
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls

PAID: list[str] = []


@pytest.fixture(autouse=True)
def clear() -> None:
    PAID.clear()


@tool(requires_approval=True, side_effects=True)
def refund(order: str) -> str:
    """Refund an order."""
    PAID.append(order)
    return f"refunded {order}"


def billing(store: DiskStore, *script: object, name: str = "billing") -> Agent:
    return Agent(name=name, tools=[refund], model=ScriptedModel(list(script)), store=store)


def support(store: DiskStore, helpers: list[Agent], *script: object) -> Agent:
    return Agent(name="support", tools=[h.as_tool() for h in helpers], model=ScriptedModel(list(script)),
                 store=store)


def report(request) -> dict:
    """The nested run's report as the caller's model read it (the last tool message)."""
    return json.loads([m for m in request.messages if m["role"] == "tool"][-1]["content"])


async def test_a_nested_pause_pauses_the_caller_and_the_decision_goes_on_to_it(store: DiskStore) -> None:
    nested = billing(store, tool_call("refund", {"order": "7"}), reply("Refunded order 7."))
    caller = support(store, [nested], tool_call("ask_billing", {"request": "refund order 7"}), reply("All done."))
    paused = await caller.run("Please refund order 7.", session="s1")
    assert paused.status == "awaiting_approval" and PAID == []
    (waiting,) = paused.pending
    child = paused.children[0]
    assert (waiting.tool, waiting.run_id, child.status) == ("refund", child.run_id, "awaiting_approval")
    assert waiting.call_id == f"{child.run_id}:{child.pending[0].call_id}"  # ids are unique within a run only
    assert store.run(paused.run_id).pending == [waiting.model_dump()]  # durable, with the nested run's id
    assert caller.model.requests[-1].messages[-1]["role"] == "user"  # the caller's model was not asked again

    done = await caller.resume(paused.run_id, {waiting.call_id: Approve()})
    assert (done.status, done.output, PAID) == ("completed", "All done.", ["7"])
    assert store.run(child.run_id).status == "completed"
    seen = report(caller.model.requests[-1])
    assert (seen["status"], seen["output"]) == ("completed", "Refunded order 7.")
    assert history_problems(store.messages("s1")) == []
    assert done.children[-1].run_id == child.run_id


async def test_a_denial_goes_on_to_the_nested_run(store: DiskStore) -> None:
    nested = billing(store, tool_call("refund", {"order": "7"}), reply("The refund was denied."))
    caller = support(store, [nested], tool_call("ask_billing", {"request": "refund order 7"}), reply("Not refunded."))
    paused = await caller.run("Please refund order 7.", session="s1")
    done = await caller.resume(paused.run_id, {paused.pending[0].call_id: Deny("not this one")})
    assert (done.status, PAID) == ("completed", [])
    refused = [m for m in nested.model.requests[-1].messages if m["role"] == "tool"][-1]["content"]
    assert "not this one" in refused
    assert report(caller.model.requests[-1])["output"] == "The refund was denied."


async def test_decisions_are_checked_against_the_nested_runs_calls(store: DiskStore) -> None:
    nested = billing(store, tool_call("refund", {"order": "7"}))
    caller = support(store, [nested], tool_call("ask_billing", {"request": "refund order 7"}))
    paused = await caller.run("Please refund order 7.", session="s1")
    with pytest.raises(UserError, match="awaits decisions"):
        await caller.resume(paused.run_id, {})
    with pytest.raises(UserError, match="no waiting call"):
        await caller.resume(paused.run_id, {paused.pending[0].call_id: Approve(), "call_99": Approve()})
    assert store.run(paused.run_id).status == "awaiting_approval" and PAID == []  # nothing written


async def test_after_a_restart_the_caller_goes_on_with_the_nested_run(tmp_path) -> None:
    first = DiskStore(tmp_path / "store")
    nested = billing(first, tool_call("refund", {"order": "7"}))
    paused = await support(first, [nested], tool_call("ask_billing", {"request": "refund order 7"})).run(
        "Please refund order 7.", session="s1")
    first.close()
    store = DiskStore(tmp_path / "store")  # a new process: new agents, the same store
    caller = support(store, [billing(store, reply("Refunded order 7."))], reply("All done."))
    done = await caller.resume(paused.run_id, {paused.pending[0].call_id: Approve()})
    assert (done.status, done.output, PAID) == ("completed", "All done.", ["7"])
    assert report(caller.model.requests[-1])["output"] == "Refunded order 7."


async def test_two_levels_down_and_two_at_once(store: DiskStore) -> None:
    """The caller asks two agents at once; one of them asks a third, which pauses; the other pauses
    itself. The caller waits on both, and one resume with both decisions finishes everything."""
    deepest = billing(store, tool_call("refund", {"order": "8"}), reply("Refunded order 8."), name="ledger")
    middle = Agent(name="accounts", tools=[deepest.as_tool()], store=store, model=ScriptedModel([
        tool_call("ask_ledger", {"request": "refund order 8"}), reply("Ledger says: refunded 8.")]))
    other = billing(store, tool_call("refund", {"order": "7"}), reply("Refunded order 7."))
    caller = support(store, [middle, other], tool_calls([("ask_accounts", {"request": "refund 8"}),
                                                         ("ask_billing", {"request": "refund 7"})]),
                     reply("Both refunded."))
    paused = await caller.run("Refund orders 7 and 8.", session="s1")
    assert paused.status == "awaiting_approval"
    by_run = {p.run_id: p for p in paused.pending}
    assert len(by_run) == 2 and all(p.tool == "refund" for p in paused.pending)
    assert store.run(next(r for r in by_run if store.run(r).agent == "ledger")).status == "awaiting_approval"
    done = await caller.resume(paused.run_id, {p.call_id: Approve() for p in paused.pending})
    assert (done.status, done.output, sorted(PAID)) == ("completed", "Both refunded.", ["7", "8"])
    reports = [json.loads(m["content"]) for m in caller.model.requests[-1].messages if m["role"] == "tool"]
    assert sorted(r["output"] for r in reports) == ["Ledger says: refunded 8.", "Refunded order 7."]
    assert {r.status for r in store.runs()} == {"completed"}


async def test_a_new_question_on_the_session_gives_up_the_waiting_call(store: DiskStore) -> None:
    nested = billing(store, tool_call("refund", {"order": "7"}))
    paused = await support(store, [nested], tool_call("ask_billing", {"request": "refund order 7"})).run(
        "Please refund order 7.", session="s1")
    caller = support(store, [nested], reply("Sure."))
    assert (await caller.run("Never mind.", session="s1")).status == "completed"
    given_up = [m for m in caller.model.requests[-1].messages if m["role"] == "tool"][-1]["content"]
    assert given_up.startswith("Not finished: the nested run waited for approval")
    assert store.run(paused.run_id).status == "interrupted" and PAID == []
    assert history_problems(store.messages("s1")) == []


class Killed(BaseException):
    """Stands for a kill -9 at that point: nothing after it runs, nothing catches it."""


async def test_a_crash_before_the_waiting_entry_still_finds_the_paused_nested_run(
        store: DiskStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The nested run paused, then the process died before the caller journaled its call as waiting: the
    resumed caller finds that run by the ids in its record and goes on with it, never running the call anew."""
    def die(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(Journal, "waiting", die)
    nested = billing(store, tool_call("refund", {"order": "7"}), reply("Refunded order 7."))
    caller = support(store, [nested], tool_call("ask_billing", {"request": "refund order 7"}), reply("All done."))
    with pytest.raises(Killed):
        await caller.run("Please refund order 7.", session="s1", run_id="top")
    monkeypatch.undo()
    assert store.run("top").status == "running"
    (child,) = [r for r in store.runs() if r.agent == "billing"]
    assert (child.status, child.metadata["parent_call"]) == ("awaiting_approval", "call_1")

    paused = await caller.resume("top")  # taken up: the nested run still waits, so the caller waits too
    assert paused.status == "awaiting_approval"
    assert [p.run_id for p in paused.pending] == [child.run_id]
    assert len([r for r in store.runs() if r.agent == "billing"]) == 1  # the call was not run anew
    done = await caller.resume("top", {paused.pending[0].call_id: Approve()})
    assert (done.status, done.output, PAID) == ("completed", "All done.", ["7"])


async def test_a_tool_knows_its_call_id(store: DiskStore) -> None:
    """``ToolContext.call_id``: with ``run_id``, a key that makes a side effect idempotent downstream."""
    keys: list[str] = []

    @tool(side_effects=True)
    def charge(amount: int, context: ToolContext) -> str:
        """Charge an amount."""
        keys.append(f"{context.run_id}/{context.call_id}")
        return "charged"

    agent = Agent(tools=[charge], store=store, model=ScriptedModel([
        tool_calls([("charge", {"amount": 1}), ("charge", {"amount": 2})]), reply("done")]))
    result = await agent.run("charge twice", run_id="r1")
    assert sorted(keys) == ["r1/call_1", "r1/call_2"] and result.status == "completed"
