"""Routing (a constrained classification, then the specialist) and delegation (agents as tools, nested
runs with their usage rolled up), with scripted models and the shipped task files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

import react_agent.agent as agent_module
from react_agent import Agent, TaskFileError, UserError, tool
from react_agent.cli import main
from react_agent.model import ModelResponse
from react_agent.report import TracePrinter
from react_agent.router import Routed, Router, classifier_agent, route_type
from react_agent.tasks import load_task_file, run_task
from react_agent.testing import ScriptedModel, reply, tool_call
from react_agent.usage import Usage

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ["support", "technical", "billing"]


@tool
def lookup(order_id: int) -> str:
    """Look up an order.

    Args:
        order_id: the order number.
    """
    return f"order {order_id}: refunded $10"


def priced(response: ModelResponse, cost: float, prompt: int = 100, completion: int = 10) -> ModelResponse:
    response.usage = Usage(requests=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
    return response


def decide(category: str, reason: str = "because") -> ModelResponse:
    return tool_call("final_answer", {"category": category, "reason": reason})


def specialists() -> dict[str, Agent]:
    return {name: Agent(name=f"{name}_agent", tools=[lookup],
                        model=ScriptedModel([tool_call("lookup", {"order_id": 7}), reply(f"{name} answer")]))
            for name in CATEGORIES}


# -- routing --------------------------------------------------------------------------------------
def test_route_type_constrains_the_category() -> None:
    model = route_type(CATEGORIES)
    schema = model.model_json_schema()
    assert schema["properties"]["category"]["enum"] == CATEGORIES
    assert list(model.model_fields) == ["category", "reason"]
    with pytest.raises(ValueError, match="category"):
        model(category="sales", reason="x")


async def test_router_hands_over_to_the_classified_specialist() -> None:
    classifier_model = ScriptedModel([decide("billing", "it is about a refund")])
    routes = specialists()
    router = Router(routes, model=classifier_model)
    result = await router.run("Was order 7 refunded?", session="s1")

    assert result.status == "completed"
    assert isinstance(result.output, Routed)
    assert result.output.handled_by == "billing_agent"
    assert (result.output.category, result.output.reason) == ("billing", "it is about a refund")
    assert result.output.answer == "billing answer"
    classification, answer = result.children
    assert classification.agent == "router" and answer.agent == "billing_agent"
    assert answer.session == "s1" and classification.session == "s1/router"
    # the classifier was offered a final_answer whose category is the enum of the routes, and nothing else
    (offered,) = classifier_model.requests[0].tools
    assert offered["function"]["name"] == "final_answer"
    assert offered["function"]["parameters"]["properties"]["category"]["enum"] == CATEGORIES
    # only the chosen specialist ran, on the user's request
    assert routes["support"].model.requests == []  # type: ignore[attr-defined]
    assert routes["billing"].model.requests[0].messages[-1]["content"] == "Was order 7 refunded?"  # type: ignore[attr-defined]
    # usage: the router makes no model call itself; total_usage rolls up both runs
    assert result.usage.requests == 0
    assert result.total_usage.requests == 3
    assert result.total_usage.total_tokens == classification.usage.total_tokens + answer.usage.total_tokens


async def test_an_invalid_category_is_sent_back_and_retried() -> None:
    classifier_model = ScriptedModel([decide("sales"), decide("technical")])
    result = await Router(specialists(), model=classifier_model).run("My laptop will not boot.")

    assert result.output.handled_by == "technical_agent"
    first = result.children[0].steps[0].observations[0]
    assert first.kind == "invalid_arguments" and "support" in first.content and "billing" in first.content
    assert "Invalid arguments" in classifier_model.requests[1].messages[-1]["content"]


async def test_an_invalid_category_as_text_is_sent_back_too() -> None:
    """A model that answers in text instead of calling final_answer gets the validation error back."""
    classifier_model = ScriptedModel([reply('{"category": "sales", "reason": "x"}'),
                                      reply('{"category": "support", "reason": "order question"}')])
    result = await Router(specialists(), model=classifier_model).run("Where is my parcel?")

    assert result.output.handled_by == "support_agent"
    assert result.children[0].steps[0].note is not None
    assert "not accepted" in classifier_model.requests[1].messages[-1]["content"]


async def test_a_failed_classification_runs_no_specialist() -> None:
    routes = specialists()
    classifier = classifier_agent(CATEGORIES, model=ScriptedModel([reply("no idea")] * 5), output_retries=1)
    result = await Router(routes, classifier=classifier).run("???")

    assert result.status == "error" and result.output is None
    assert result.error is not None and result.error.startswith("routing failed")
    assert [c.agent for c in result.children] == ["router"]
    assert all(a.model.requests == [] for a in routes.values())  # type: ignore[attr-defined]


def test_router_checks_its_classifier_against_the_routes() -> None:
    with pytest.raises(UserError, match="category"):
        Router(specialists(), classifier=Agent(name="plain"))
    with pytest.raises(UserError, match="differ"):
        Router(specialists(), classifier=classifier_agent(["support", "billing"]))
    with pytest.raises(UserError, match="at least one"):
        route_type([])


async def test_router_task_file_routes_to_billing_and_checks_handled_by() -> None:
    task_file = load_task_file(ROOT / "tasks" / "router.yaml")
    task = next(t for t in task_file.tasks if t.name == "route-billing")
    model = ScriptedModel([decide("billing", "refund question"),
                           tool_call("billing_status", {"order_id": "1003"}),
                           reply("Order 1003 was cancelled and refunded in full: $136.49.")])
    events: list[object] = []
    outcome = await run_task(task_file, task, model=model, on_event=events.append)

    assert outcome.passed, outcome.checks
    assert [c.name for c in outcome.checks] == [
        "status is completed", "called billing_status with {'order_id': 1003}", "answer contains '136.49'",
        "handled by billing"]
    billing_request = model.requests[1]
    assert billing_request.tool_names == ["billing_status"]
    assert "136.49" in model.requests[2].messages[-1]["content"]  # the real tool read the shop database
    assert [type(e).__name__ for e in events].count("RunStart") == 3  # router, classifier, specialist


async def test_router_task_with_the_wrong_specialist_fails_its_check() -> None:
    task_file = load_task_file(ROOT / "tasks" / "router.yaml")
    task = next(t for t in task_file.tasks if t.name == "route-technical")
    model = ScriptedModel([decide("support"), tool_call("search_knowledge_base", {"query": "password"}),
                           reply('Use "Forgot password" on the sign-in page.')])
    outcome = await run_task(task_file, task, model=model)

    failed = [c for c in outcome.checks if not c.passed]
    assert [c.name for c in failed] == ["handled by technical"]
    assert failed[0].detail == "handled by support"


def test_routes_must_name_other_agents(tmp_path: Path) -> None:
    body = """
agents:
  desk: {routes: {billing: %s}}
  billing: {tools: []}
tasks: [{name: t, input: hi, agent: desk}]
"""
    for target, problem in (("nobody", "one of"), ("desk", "one of")):
        path = tmp_path / f"{target}.yaml"
        path.write_text(body % target)
        with pytest.raises(TaskFileError, match=problem):
            load_task_file(path)


def test_agents_are_named_after_their_keys() -> None:
    task_file = load_task_file(ROOT / "tasks" / "router.yaml")
    assert {k: v.name for k, v in task_file.agents.items()} == {k: k for k in task_file.agents}


# -- delegation -----------------------------------------------------------------------------------
async def test_delegation_lists_the_nested_runs_and_rolls_up_tokens_and_cost() -> None:
    child_model = ScriptedModel([priced(tool_call("lookup", {"order_id": 7}), 0.001),
                                 priced(reply("refunded $10"), 0.002)])
    billing = Agent(name="billing", tools=[lookup], model=child_model)
    parent_model = ScriptedModel([priced(tool_call("ask_billing", {"request": "order 7 refunded?"}), 0.010),
                                  priced(reply("Yes, $10."), 0.020)])
    desk = Agent(name="desk", tools=[billing.as_tool()], model=parent_model)
    result = await desk.run("Was order 7 refunded?")

    assert result.status == "completed"
    (child,) = result.children
    assert child.agent == "billing" and child.output == "refunded $10"
    assert [c.name for c in child.tool_calls] == ["lookup"]
    assert result.usage.cost_usd == pytest.approx(0.030)  # the desk's own calls
    assert result.total_usage.cost_usd == pytest.approx(0.033)
    assert result.total_usage.total_tokens == 4 * 110
    report = json.loads(result.steps[0].observations[0].content)
    assert report == {"agent": "billing", "status": "completed", "output": "refunded $10",
                      "tokens": 220, "cost_usd": pytest.approx(0.003)}
    # the nested result survives a JSON round trip (run --json)
    again = type(result).model_validate_json(result.model_dump_json())
    assert again.children[0].run_id == child.run_id


async def test_delegation_nests_two_levels_and_unknown_cost_stays_unknown() -> None:
    inner = Agent(name="inner", model=ScriptedModel([reply("deep")]))  # scripted model: no price
    middle = Agent(name="middle", tools=[inner.as_tool()],
                   model=ScriptedModel([priced(tool_call("ask_inner", {"request": "go"}), 0.001),
                                        priced(reply("got deep"), 0.001)]))
    top = Agent(name="top", tools=[middle.as_tool()],
                model=ScriptedModel([priced(tool_call("ask_middle", {"request": "go"}), 0.001),
                                     priced(reply("done"), 0.001)]))
    result = await top.run("go")

    assert [c.agent for c in result.children] == ["middle"]
    assert [c.agent for c in result.children[0].children] == ["inner"]
    assert result.total_usage.requests == 5
    assert result.usage.cost_usd is not None and result.total_usage.cost_usd is None


async def test_delegation_task_file_passes_its_checks() -> None:
    task_file = load_task_file(ROOT / "tasks" / "delegation.yaml")
    (task,) = task_file.tasks
    model = ScriptedModel([tool_call("ask_billing", {"request": "Refund for order 1010?"}),
                           tool_call("billing_status", {"order_id": 1010}),
                           reply("Order 1010 was refunded: $268.00."),
                           reply("Yes: order 1010 was refunded, $268.00.")])
    outcome = await run_task(task_file, task, model=model)

    assert outcome.passed, outcome.checks
    (result,) = outcome.results
    assert [c.agent for c in result.children] == ["billing"]
    assert model.requests[1].tool_names == ["billing_status"]
    assert result.total_usage.total_tokens == 4 * 30


# -- the trace ------------------------------------------------------------------------------------
def _printer() -> tuple[TracePrinter, io.StringIO]:
    out = io.StringIO()
    return TracePrinter(Console(file=out, width=200, highlight=False, color_system=None)), out


async def test_trace_lists_delegated_runs_under_the_parent() -> None:
    billing = Agent(name="billing", tools=[lookup], model=ScriptedModel([tool_call("lookup", {"order_id": 7}),
                                                                         reply("refunded")]))
    printer, out = _printer()
    desk = Agent(name="desk", tools=[billing.as_tool()], hooks=[printer],
                 model=ScriptedModel([tool_call("ask_billing", {"request": "7?"}), reply("yes")]))
    await desk.run("Was order 7 refunded?")

    text = out.getvalue()
    assert "with 1 nested run(s): 120 tokens" in text
    tree = next(line for line in text.splitlines() if "└" in line)
    assert tree.startswith("    └ billing run ")
    assert "2 steps using lookup, 60 tokens" in tree


async def test_trace_indents_the_routed_runs() -> None:
    printer, out = _printer()
    router = Router(specialists(), model=ScriptedModel([decide("billing")]), hooks=[printer])
    await router.run("Was order 7 refunded?")

    lines = out.getvalue().splitlines()
    starts = [line for line in lines if "» " in line]
    assert [s[: s.index("»")] for s in starts] == ["", "  ", "  "]
    assert "» router" in starts[1] and "» billing_agent" in starts[2]
    assert any(line.startswith("    step 1") for line in lines)
    assert "└" not in out.getvalue()  # the nested runs were printed as they ran, not again
    assert lines[-1].startswith("  ■ completed, handled by billing_agent in 2 nested run(s), 90 tokens")


async def test_the_token_budget_counts_the_delegated_runs_tokens() -> None:
    child = Agent(name="helper", model=ScriptedModel([reply("a long answer", prompt_tokens=900,
                                                             completion_tokens=100)]))
    parent_model = ScriptedModel([tool_call("ask_helper", {"request": "go"}),  # 30 tokens of its own
                                  reply("never sent")])
    parent = Agent(name="boss", tools=[child.as_tool()], model=parent_model, max_tokens_total=500)
    result = await parent.run("go")
    assert result.status == "token_budget"
    assert result.usage.total_tokens == 30 and result.total_usage.total_tokens == 1030
    assert len(parent_model.requests) == 1  # no second request once the child spent the budget


def test_chat_on_a_router_task_file_routes_each_message(monkeypatch, capsys) -> None:
    model = ScriptedModel([
        tool_call("final_answer", {"category": "billing", "reason": "money"}),
        reply("Your refund was sent."),
    ])
    monkeypatch.setattr(agent_module, "resolve_model", lambda *args, **kwargs: model)
    lines = iter(["Was I refunded for order 1003?", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", str(ROOT / "tasks" / "router.yaml"), "--session", "c1"]) == 0
    out = capsys.readouterr().out
    assert "Your refund was sent." in out and "billing" in out
