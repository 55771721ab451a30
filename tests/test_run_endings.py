"""Every way a run can end leaves the record closed and the history valid: hooks that refuse or crash,
an answer cut at the token limit."""

from __future__ import annotations

import pytest
from conftest import assert_valid_history, history_problems

from react_agent import Agent, HookError, RunBlocked, ToolStart, tool
from react_agent.model import ModelResponse
from react_agent.steps import StepEnd
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls
from react_agent.usage import Usage

RAN: list[str] = []


@tool(side_effects=True)
def refund(order: str) -> str:
    """Refund an order."""
    RAN.append(f"refund {order}")
    return f"refunded {order}"


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    RAN.append(f"lookup {order}")
    return f"order {order}: shipped"


@pytest.fixture(autouse=True)
def clear_log():
    RAN.clear()


def closed(agent: Agent, run_id: str, status: str) -> None:
    record = agent.store.run(run_id)
    assert record is not None and record.status == status
    assert history_problems(agent.store.messages(record.session)) == []


def test_a_hook_that_refuses_a_call_blocks_the_run_before_the_tool_runs(store):
    def guard(event):
        if isinstance(event, ToolStart) and event.call.name == "refund":
            raise RunBlocked("refunds need a human")

    model = ScriptedModel([tool_calls([("lookup", {"order": "1"}), ("refund", {"order": "1"})]), reply("never")])
    agent = Agent(tools=[lookup, refund], model=model, store=store, hooks=[guard])
    result = agent.run_sync("refund order 1")
    assert (result.status, result.error_type) == ("blocked", "RunBlocked")
    assert result.error == "blocked: refunds need a human"
    assert RAN == []  # the turn's tools had not started when the hook saw the first ToolStart
    assert len(model.requests) == 1
    kinds = [o.kind for o in result.steps[0].observations]
    assert kinds == ["interrupted", "interrupted"]
    closed(agent, result.run_id, "blocked")


def test_a_hook_that_crashes_mid_run_ends_it_with_an_error(store):
    def broken(event):
        if isinstance(event, StepEnd):
            raise ValueError("bad hook")

    model = ScriptedModel([tool_call("lookup", {"order": "7"}), reply("shipped")])
    agent = Agent(tools=[lookup], model=model, store=store, hooks=[broken])
    result = agent.run_sync("where is 7?")
    assert (result.status, result.error_type) == ("error", "HookError")
    assert "broken" in result.error and "ValueError: bad hook" in result.error
    assert RAN == ["lookup 7"] and len(model.requests) == 1
    assert result.output is None and len(result.steps) == 1
    closed(agent, result.run_id, "error")


def test_a_hook_failing_once_the_run_is_closed_propagates(store):
    def on_end(event):
        if type(event).__name__ == "RunEnd":
            raise ValueError("late")

    agent = Agent(model=ScriptedModel([reply("hi")]), store=store, hooks=[on_end])
    with pytest.raises(HookError, match="late"):
        agent.run_sync("hello", session="s1")
    record, = store.runs(session="s1")
    assert (record.status, record.output) == ("completed", "hi")


def test_an_answer_cut_at_the_token_limit_is_not_a_completed_run(store):
    cut = ModelResponse("The refund is", [], Usage.of_request("scripted", 20, 10, 0, 0.0), "length")
    model = ScriptedModel([cut])
    agent = Agent(model=model, store=store)
    result = agent.run_sync("what about my refund?")
    assert result.status == "max_tokens"
    assert result.output == "The refund is"
    assert "finish_reason 'length'" in result.error
    assert result.steps[-1].finish_reason == "length"
    closed(agent, result.run_id, "max_tokens")
    assert_valid_history(model)
    assert store.messages(result.session)[-1] == {"role": "assistant", "content": "The refund is"}


# -- guardrails -----------------------------------------------------------------------------------
def no_card_numbers(text) -> str | None:
    return "it holds a card number" if "4111" in str(text) else None


async def slow_check(text) -> str | None:
    return None


def test_an_input_guardrail_refuses_before_any_request(store):
    model = ScriptedModel([reply("never")])
    agent = Agent(model=model, store=store, input_guardrails=[slow_check, no_card_numbers])
    result = agent.run_sync("my card is 4111 1111 1111 1111")
    assert (result.status, result.error) == ("blocked", "blocked: it holds a card number")
    assert model.requests == [] and result.output is None
    closed(agent, result.run_id, "blocked")


def test_an_output_guardrail_withholds_the_answer(store):
    model = ScriptedModel([tool_call("lookup", {"order": "4111"}), reply("card 4111 on file")])
    agent = Agent(tools=[lookup], model=model, store=store, output_guardrails=[no_card_numbers])
    result = agent.run_sync("what card is on order 4111?")
    assert (result.status, result.output) == ("blocked", None)
    assert result.error == "blocked: it holds a card number"
    closed(agent, result.run_id, "blocked")
    assert store.run(result.run_id).output is None


def test_a_guardrail_that_raises_ends_the_run_error_and_closed(store):
    """It escaped `run` and left the record `running`."""
    def broken(text) -> None:
        raise ValueError("no idea")

    for where in ("input_guardrails", "output_guardrails"):
        model = ScriptedModel([reply("card 4111 on file")])
        agent = Agent(model=model, store=store, **{where: [broken]})
        result = agent.run_sync("what card?")
        assert (result.status, result.error_type, result.output) == ("error", "GuardrailError", None), where
        assert "broken raised ValueError: no idea" in (result.error or "")
        closed(agent, result.run_id, "error")
        assert len(model.requests) == (0 if where == "input_guardrails" else 1)


def test_an_approval_policy_that_raises_leaves_the_call_to_a_human(store):
    """It escaped `run` and left the record `running`; a policy that cannot decide fails closed."""
    def policy(arguments, context) -> bool:
        raise ValueError("limit table missing")

    @tool(side_effects=True, requires_approval=policy)
    def pay(amount: int) -> str:
        """Pay an amount."""
        RAN.append(f"pay {amount}")
        return f"paid {amount}"

    model = ScriptedModel([tool_call("pay", {"amount": 5}), reply("done")])
    agent = Agent(tools=[pay, lookup], model=model, store=store)
    result = agent.run_sync("pay 5")
    assert result.status == "awaiting_approval" and RAN == []
    (waiting,) = result.pending
    assert waiting.tool == "pay" and "approval policy raised ValueError: limit table missing" in waiting.reason
    assert store.run(result.run_id).status == "awaiting_approval"


def test_a_guardrail_may_raise_run_blocked_and_answer_tool_outputs_are_checked(store):
    def strict(output) -> None:
        raise RunBlocked("nothing leaves today")

    model = ScriptedModel([tool_call("final_answer", {"answer": "42"})])
    agent = Agent(tools=[lookup], model=model, store=store, answer_tool=True, output_guardrails=[strict])
    result = agent.run_sync("answer?")
    assert (result.status, result.error, result.output) == ("blocked", "blocked: nothing leaves today", None)
    closed(agent, result.run_id, "blocked")
