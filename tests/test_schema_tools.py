"""Tools from a JSON schema (``Tool.from_schema``), ``@tool`` details (``_from`` parameters, Annotated
descriptions), argument strictness and lenient JSON, deps for tools, reasoning tokens and per-user
totals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from pydantic import Field

from react_agent import Agent, DiskStore, PluginError, Tool, ToolContext, tool
from react_agent.approval import Approve
from react_agent.cli import main
from react_agent.model import parse_usage
from react_agent.testing import ScriptedModel, reply, tool_call
from react_agent.usage import PRICES, Price, Usage, totals_by_user

WEATHER = {
    "type": "object",
    "title": "weather input",  # a title @tool would drop: a schema tool sends it as given
    "properties": {
        "city": {"type": "string", "description": "the city name"},
        "units": {"type": "string", "enum": ["c", "f"], "default": "c"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def weather_tool(received: list[dict[str, Any]]) -> Tool:
    def weather(**arguments: Any) -> str:
        received.append(arguments)
        return f"sunny in {arguments['city']}"

    return Tool.from_schema("weather", "The forecast for a city.", WEATHER, weather)


def observations(result) -> list[tuple[str, str]]:
    return [(o.kind, o.content) for s in result.steps for o in s.observations]


# -- Tool.from_schema -------------------------------------------------------------------------------
def test_a_schema_tool_sends_its_schema_as_given_and_gets_exactly_the_arguments_sent():
    received: list[dict[str, Any]] = []
    weather = weather_tool(received)
    model = ScriptedModel([tool_call("weather", {"city": "Oslo"}), reply("sunny")])
    result = Agent(tools=[weather], model=model).run_sync("weather in Oslo?")
    assert result.status == "completed"
    assert received == [{"city": "Oslo"}]  # no "units": "c", no "days": None
    sent = model.requests[0].tools[0]["function"]
    assert sent == {"name": "weather", "description": "The forecast for a city.", "parameters": WEATHER}
    WEATHER["properties"]["city"]["description"] = "changed later"  # the tool kept its own copy
    try:
        assert weather.schema()["function"]["parameters"]["properties"]["city"]["description"] == "the city name"
    finally:
        WEATHER["properties"]["city"]["description"] = "the city name"


@pytest.mark.parametrize(("arguments", "says"), [
    ({"city": "Oslo", "days": "3"}, "days: '3' is not of type 'integer'. Fix: days (integer, optional"),
    ({"city": "Oslo", "days": True}, "days: True is not of type 'integer'"),
    ({"city": "Oslo", "days": 9}, "days: 9 is greater than the maximum of 7"),
    ({"city": "Oslo", "units": "k"}, 'units (one of "c", "f", optional, default "c")'),
    ({"days": 2}, "city: Field required. Fix: city (string, required): the city name"),
    ({"city": "Oslo", "town": "x"}, "town: Extra inputs are not permitted. Fix: town is not an argument"),
])
def test_schema_violations_are_observations_naming_the_argument(arguments, says):
    received: list[dict[str, Any]] = []
    model = ScriptedModel([tool_call("weather", arguments), reply("sorry")])
    result = Agent(tools=[weather_tool(received)], model=model).run_sync("weather?")
    [(kind, content)] = observations(result)
    assert kind == "invalid_arguments" and says in content, content
    assert content.startswith("Invalid arguments for 'weather'") and received == []


def test_schema_tool_arguments_that_are_not_a_json_object():
    model = ScriptedModel([tool_call("weather", '{"city": "Oslo"'), tool_call("weather", "[1]"), reply("x")])
    result = Agent(tools=[weather_tool([])], model=model).run_sync("weather?")
    (kind1, first), (kind2, second) = observations(result)
    assert kind1 == kind2 == "invalid_arguments"
    assert "are not valid JSON" in first and "city (string, required)" in first  # every argument's line
    assert "arguments: Input should be a valid dictionary" in second


def test_schema_tool_with_context_async_function_and_no_description(recwarn):
    seen: list[Any] = []

    async def lookup(context: ToolContext[dict[str, str]], **arguments: Any) -> str:
        seen.append((context.deps, context.run_id, arguments))
        return "ok"

    with pytest.warns(UserWarning, match="'lookup' has no description"):
        built = Tool.from_schema("lookup", None, {"type": "object", "properties": {"q": {"type": "string"}}}, lookup)
    assert "description" not in built.schema()["function"]
    assert "context" not in json.dumps(built.schema())
    model = ScriptedModel([tool_call("lookup", {"q": "a"}), reply("done")])
    result = Agent(tools=[built], model=model).run_sync("go", deps={"db": "handle"})
    assert seen == [({"db": "handle"}, result.run_id, {"q": "a"})]


def test_a_bad_schema_or_name_is_refused_when_the_tool_is_built():
    with pytest.raises(PluginError, match="not a valid JSON schema"):
        Tool.from_schema("t", "d", {"type": "object", "properties": {"a": {"type": "no-such-type"}}}, print)
    with pytest.raises(PluginError, match="must match"):
        Tool.from_schema("bad name", "d", {"type": "object"}, print)


async def test_calling_a_schema_tool_directly_validates_too():
    received: list[dict[str, Any]] = []
    weather = weather_tool(received)
    assert await weather(city="Rome") == "sunny in Rome"
    with pytest.raises(Exception, match="city"):
        await weather(days=2)
    assert received == [{"city": "Rome"}]


# -- @tool: leading underscores, Annotated descriptions ----------------------------------------------
@tool
def move(_from: str, _class: Annotated[str, Field(description="the seat class")] = "economy", to: str = "") -> str:
    """Move a booking.

    Args:
        _from: the airport code to leave from.
        to: the airport code to go to.
    """
    return f"{_from}->{to} in {_class}"


def test_leading_underscore_parameters_keep_their_names_in_the_schema():
    properties = move.schema()["function"]["parameters"]["properties"]
    assert list(properties) == ["_from", "_class", "to"]
    assert properties["_from"]["description"] == "the airport code to leave from."
    assert move.schema()["function"]["parameters"]["required"] == ["_from"]
    model = ScriptedModel([tool_call("move", {"_from": "OSL", "to": "CDG", "_class": "business"}),
                           tool_call("move", {"from": "OSL"}), reply("moved")])
    result = Agent(tools=[move], model=model).run_sync("move it")
    (kind, content), (bad, why) = observations(result)
    assert (kind, content) == ("ok", "OSL->CDG in business")
    assert bad == "invalid_arguments" and "_from: Field required" in why and "from: Extra inputs" in why


def test_an_annotated_field_description_reaches_the_schema():
    @tool
    def pick(n: Annotated[int, Field(description="how many", ge=1)], label: str = "x") -> str:
        """Pick some.

        Args:
            n: the docstring's words, overridden by the Field's.
            label: a label.
        """
        return label * n

    properties = pick.schema()["function"]["parameters"]["properties"]
    assert properties["n"] == {"description": "how many", "minimum": 1, "type": "integer"}
    assert properties["label"]["description"] == "a label."
    assert move.schema()["function"]["parameters"]["properties"]["_class"]["description"] == "the seat class"


# -- strictness and lenient JSON ---------------------------------------------------------------------
@tool
def repeat(text: str, times: int, loud: bool = False) -> str:
    """Repeat a text."""
    return (text.upper() if loud else text) * times


@tool(strict=False)
def repeat_lax(text: str, times: int, loud: bool = False) -> str:
    """Repeat a text, coercing its arguments."""
    return (text.upper() if loud else text) * times


@pytest.mark.parametrize(("arguments", "wrong"), [
    ({"text": "a", "times": True}, "times: Input should be a valid integer"),
    ({"text": "a", "times": "7"}, "times: Input should be a valid integer"),
    ({"text": "a", "times": 2, "loud": "yes"}, "loud: Input should be a valid boolean"),
])
def test_arguments_are_strict_by_default(arguments, wrong):
    model = ScriptedModel([tool_call("repeat", arguments), reply("x")])
    [(kind, content)] = observations(Agent(tools=[repeat], model=model).run_sync("go"))
    assert kind == "invalid_arguments" and wrong in content, content


def test_a_tool_or_an_agent_can_ask_for_coercion_and_the_tool_decides_first():
    arguments = {"text": "a", "times": "2", "loud": "yes"}
    model = ScriptedModel([tool_call("repeat_lax", arguments), reply("x")])
    assert observations(Agent(tools=[repeat_lax], model=model).run_sync("go")) == [("ok", "AA")]
    model = ScriptedModel([tool_call("repeat", arguments), reply("x")])
    assert observations(Agent(tools=[repeat], model=model, strict_tools=False).run_sync("go")) == [("ok", "AA")]
    strict = tool(strict=True)(repeat.fn)
    model = ScriptedModel([tool_call("repeat", arguments), reply("x")])
    [(kind, _)] = observations(Agent(tools=[strict], model=model, strict_tools=False).run_sync("go"))
    assert kind == "invalid_arguments"
    assert repeat.validate('{"text": "a", "times": 2.0}', strict=False).times == 2  # type: ignore[attr-defined]


def test_literal_newlines_inside_json_strings_parse():
    raw = '{"text": "line one\nline two\ttab", "times": 1}'  # as small models write them: not valid JSON
    with pytest.raises(ValueError, match="control character"):
        json.loads(raw)
    model = ScriptedModel([tool_call("repeat", raw), tool_call("weather", '{"city": "New\nYork"}'),
                           tool_call("final_answer", '{"answer": "two\nlines"}')])
    received: list[dict[str, Any]] = []
    agent = Agent(tools=[repeat, weather_tool(received)], model=model, answer_tool=True)
    result = agent.run_sync("go")
    assert observations(result)[:2] == [("ok", "line one\nline two\ttab"), ("ok", "sunny in New\nYork")]
    assert result.output == "two\nlines" and received == [{"city": "New\nYork"}]
    assert result.steps[0].actions[0].arguments == raw  # the journal keeps what the model sent


def test_broken_json_is_still_an_observation():
    model = ScriptedModel([tool_call("repeat", '{"text": "a", "times": 1'), reply("x")])
    [(kind, content)] = observations(Agent(tools=[repeat], model=model).run_sync("go"))
    assert kind == "invalid_arguments" and "are not valid JSON" in content


# -- deps ---------------------------------------------------------------------------------------------
@dataclass
class Db:
    orders: dict[str, str]


@tool(side_effects=True, requires_approval=True)
def cancel(order: str, context: ToolContext[Db]) -> str:
    """Cancel an order."""
    if context.deps is None:
        return "no database"
    return f"cancelled {order} ({context.deps.orders[order]}) for {context.user_id}"


@tool
def status(order: str, context: ToolContext[Db]) -> str:
    """An order's status."""
    return context.deps.orders[order]


def test_deps_reach_tools_and_nested_agents():
    db = Db({"7": "shipped"})
    inner = Agent("billing", tools=[status], model=ScriptedModel([tool_call("status", {"order": "7"}),
                                                                   reply("it shipped")]))
    outer = Agent("desk", tools=[inner.as_tool()], model=ScriptedModel([
        tool_call("ask_billing", {"request": "order 7?"}), reply("shipped")]))
    result = outer.run_sync("where is 7?", deps=db, user_id="ada")
    assert result.status == "completed"
    assert observations(result.children[0]) == [("ok", "shipped")]
    assert [r.user_id for r in outer.store.runs()] == ["ada", "ada"]  # the nested run is the same user's


def test_deps_are_not_journaled_a_resumed_run_gets_them_again(store):
    db = Db({"7": "paid"})
    first = Agent(tools=[cancel], store=store, model=ScriptedModel([tool_call("cancel", {"order": "7"})]))
    paused = first.run_sync("cancel 7", deps=db, user_id="ada")
    assert paused.status == "awaiting_approval"
    assert "paid" not in json.dumps(store.entries(paused.session))
    again = Agent(tools=[cancel], store=store, model=ScriptedModel([reply("done")]))
    resumed = again.run_sync("", run_id=paused.run_id, resume=True, approvals={"call_1": Approve()}, deps=db)
    assert observations(resumed)[-1] == ("ok", "cancelled 7 (paid) for ada")


def test_a_resumed_run_without_deps_sees_none(store):
    first = Agent(tools=[cancel], store=store, model=ScriptedModel([tool_call("cancel", {"order": "7"})]))
    paused = first.run_sync("cancel 7", deps=Db({"7": "paid"}))
    again = Agent(tools=[cancel], store=store, model=ScriptedModel([reply("done")]))
    resumed = again.run_sync("", run_id=paused.run_id, resume=True, approvals={"call_1": Approve()})
    assert observations(resumed)[-1] == ("ok", "no database")


# -- usage --------------------------------------------------------------------------------------------
def test_reasoning_tokens_are_parsed_and_added():
    raw = {"prompt_tokens": 100, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 30},
           "prompt_tokens_details": {"cached_tokens": 20}}
    usage = parse_usage("o4-mini", raw, 12.0)
    assert (usage.reasoning_tokens, usage.completion_tokens, usage.cached_tokens) == (30, 50, 20)
    assert usage.cost_usd == pytest.approx((80 * 1.10 + 20 * 0.275 + 50 * 4.40) / 1e6)  # billed as output
    assert parse_usage("o4-mini", {"completion_tokens_details": None}, 1.0).reasoning_tokens == 0
    total = Usage()
    total.add(usage)
    total.add(usage)
    assert total.reasoning_tokens == 60


def test_totals_by_user_and_the_usage_command(capsys, monkeypatch):
    monkeypatch.setitem(PRICES, "scripted", Price(0.15, 0.60))  # the scripted replies' model
    store = DiskStore()  # the default store, which the command reads

    def run(user: str | None, session: str, completion: int) -> None:
        model = ScriptedModel([reply("hi", prompt_tokens=100, completion_tokens=completion)])
        Agent(model=model, store=store).run_sync("hello", session=session, user_id=user)

    run("ada", "a1", 10)
    run("ada", "a1", 20)
    run("ada", "a2", 30)
    run("bob", "b1", 40)
    run(None, "n1", 5)
    totals = {t.user_id: t for t in totals_by_user(store.runs())}
    ada = totals["ada"]
    assert (ada.sessions, ada.runs, ada.usage.requests, ada.usage.completion_tokens) == (2, 3, 3, 60)
    assert ada.usage.cost_usd == pytest.approx((300 * 0.15 + 60 * 0.60) / 1e6)
    assert (totals["bob"].runs, totals[None].runs) == (1, 1)
    assert main(["usage", "--user", "ada", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["user_id"], row["sessions"], row["runs"], row["completion_tokens"]) == ("ada", 2, 3, 60)
    assert main(["usage"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 user(s) in the store at")
    assert lines[1].split("\t")[:3] == ["USER", "SESSIONS", "RUNS"]
    assert [line.split("\t")[0] for line in lines[2:]] == ["ada", "bob", "-"]
