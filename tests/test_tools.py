"""``@tool``: schema from the signature and docstring, validation, and ``invoke`` outcomes."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Literal

import pytest
from pydantic import BaseModel

from react_agent import ModelRetry, PluginError, Tool, ToolContext, tool
from react_agent.signature import parse_docstring
from react_agent.tools import render_result


@tool
def search(query: str, limit: int = 5, sort: Literal["new", "top"] = "top") -> list[str]:
    """Search the catalogue.

    Args:
        query: words to look for.
        limit: how many results
            to return at most.
    Returns:
        matching titles.
    """
    return [f"{query} {i}" for i in range(limit)]


def parameters(t: Tool) -> dict:
    return t.schema()["function"]["parameters"]


def test_schema_comes_from_signature_and_docstring():
    function = search.schema()["function"]
    assert function["name"] == "search"
    assert function["description"] == "Search the catalogue."
    params = function["parameters"]
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    assert params["properties"]["query"] == {"type": "string", "description": "words to look for."}
    assert params["properties"]["limit"]["description"] == "how many results to return at most."
    assert params["properties"]["limit"]["default"] == 5
    assert params["properties"]["sort"]["enum"] == ["new", "top"]
    assert "title" not in params


def test_decorator_options():
    @tool(name="lookup-v2", description="Look a thing up.", timeout=3, sequential=True, max_retries=1)
    async def lookup(key: str) -> str:
        return key

    assert (lookup.name, lookup.description, lookup.timeout, lookup.sequential, lookup.max_retries) == (
        "lookup-v2", "Look a thing up.", 3, True, 1)
    assert lookup.is_async
    assert lookup.source == __file__


def test_sphinx_docstring():
    summary, params = parse_docstring("""Convert money.

    :param amount: how much.
    :type amount: float
    :param str currency: ISO code.
    :raises KeyError: for an unknown currency.
    :returns: the converted amount.
    """)
    assert summary == "Convert money."
    assert params == {"amount": "how much.", "currency": "ISO code."}


def test_sections_after_args_stay_out_of_the_description():
    summary, params = parse_docstring("""Look up a user.

    Raises:
        KeyError: when there is no such user.
    Args:
        user_id: the id.
    Returns:
        the user record.
    """)
    assert summary == "Look up a user."
    assert params == {"user_id": "the id."}


def test_tool_context_is_not_in_the_schema():
    @tool
    def where(ctx: ToolContext, city: str) -> str:
        """Say where."""
        return city

    assert where.context_param == "ctx"
    assert list(parameters(where)["properties"]) == ["city"]


@pytest.mark.parametrize(("source", "reason"), [
    ("def f(x: int):\n    return x\n", "needs a docstring"),
    ("def f(x):\n    '''Doc.'''\n", "parameter 'x' has no type annotation"),
    ("def f(*args: int):\n    '''Doc.'''\n", r"\*args is not supported"),
    ("def f(x: 'Missing'):\n    '''Doc.'''\n", "type hints cannot be resolved"),
])
def test_bad_tool_definitions_are_plugin_errors(source, reason):
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(PluginError, match=reason) as info:
        tool(namespace["f"])
    assert info.value.source == "f"


def test_tool_names_are_checked():
    with pytest.raises(PluginError, match="must match"):
        tool(name="has space")(lambda: None)


async def test_invoke_ok_renders_the_value():
    outcome = await search.invoke('{"query": "cat", "limit": 2}')
    assert outcome.kind == "ok"
    assert outcome.content == '["cat 0", "cat 1"]'
    assert outcome.arguments == {"query": "cat", "limit": 2, "sort": "top"}
    assert outcome.value == ["cat 0", "cat 1"]


async def test_invoke_treats_empty_arguments_as_an_empty_object():
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert (await ping.invoke("")).content == "pong"
    assert (await ping.invoke("  ")).content == "pong"


async def test_a_literal_newline_inside_a_string_argument_is_accepted():
    """JSON forbids raw control characters in strings; small models write them anyway."""
    outcome = await search.invoke('{"query": "two\nlines\tand a tab"}')
    assert outcome.kind == "ok"
    assert outcome.arguments == {"query": "two\nlines\tand a tab", "limit": 5, "sort": "top"}
    broken = await search.invoke('{"query": "two\nlines", "limit": 2')  # still not JSON: reported as such
    assert broken.kind == "invalid_arguments" and "not valid JSON" in broken.content
    assert "query (string, required)" in broken.content  # each argument in a line, not the schema again
    assert '"properties"' not in broken.content and '"type"' not in broken.content


@pytest.mark.parametrize(("raw", "expected"), [
    ("{not json", "not valid JSON"),
    ('{"query": 3}', "query: Input should be a valid string"),
    ("{}", "query: Field required"),
    ('{"query": "x", "page": 2}', "page: Extra inputs are not permitted"),
    ('{"query": "x", "sort": "old"}', "sort: Input should be 'new' or 'top'"),
])
async def test_invoke_reports_invalid_arguments(raw, expected):
    outcome = await search.invoke(raw)
    assert outcome.kind == "invalid_arguments"
    assert expected in outcome.content
    assert outcome.arguments is None


async def test_invoke_turns_failures_into_outcomes():
    @tool
    def broken(n: int) -> int:
        """Breaks."""
        raise KeyError(n)

    @tool
    async def retry(n: int) -> int:
        """Asks for another try."""
        raise ModelRetry(f"use a number above {n}")

    @tool(timeout=0.1)
    def slow_sync(n: int) -> int:
        """Too slow."""
        time.sleep(0.5)
        return n

    failed = await broken.invoke('{"n": 7}')
    assert (failed.kind, failed.content, failed.arguments) == ("tool_error", "Tool 'broken' raised KeyError: 7",
                                                               {"n": 7})
    asked = await retry.invoke('{"n": 7}')
    assert (asked.kind, asked.content) == ("retry", "use a number above 7")
    late = await slow_sync.invoke('{"n": 1}')
    assert (late.kind, late.content) == ("timeout", "Tool 'slow_sync' timed out after 0.1s.")


async def test_a_timeout_error_raised_by_the_tool_is_a_tool_error_not_a_timeout():
    @tool(timeout=5)
    async def flaky(n: int) -> int:
        """Its own backend timed out."""
        raise TimeoutError("upstream took too long")

    @tool(timeout=5)
    def flaky_sync(n: int) -> int:
        """Same, in a thread."""
        raise TimeoutError("upstream took too long")

    @tool(timeout=0.05)
    async def slow(n: int) -> int:
        """Really too slow."""
        await asyncio.sleep(1)
        return n

    for t in (flaky, flaky_sync):
        got = await t.invoke('{"n": 1}')
        assert (got.kind, got.content) == ("tool_error", f"Tool {t.name!r} raised TimeoutError: upstream took too long")
    late = await slow.invoke('{"n": 1}')
    assert (late.kind, late.content) == ("timeout", "Tool 'slow' timed out after 0.05s.")


async def test_eight_sync_tools_run_at_once_in_the_tool_pool_with_the_callers_contextvars():
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")

    @tool
    def nap(n: int) -> str:
        """Sleeps 0.2 s."""
        time.sleep(0.2)
        return f"{request_id.get()} {threading.current_thread().name.split('_')[0]}"

    request_id.set("req-7")
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(nap.invoke(f'{{"n": {i}}}') for i in range(8)))
    elapsed = time.perf_counter() - started
    assert {o.content for o in outcomes} == {"req-7 react-agent-tool"}
    assert elapsed < 0.35, f"8 parallel sync tools took {elapsed:.2f} s: they did not all run at once"


async def test_context_is_passed_to_the_tool():
    @tool
    async def who(ctx: ToolContext) -> str:
        """Who runs me."""
        return f"{ctx.agent}@{ctx.step}"

    outcome = await who.invoke("{}", ToolContext("run1", "s1", "bot", 3))
    assert outcome.content == "bot@3"


async def test_calling_a_tool_directly_validates():
    @tool
    async def double(n: int) -> int:
        """Double it."""
        await asyncio.sleep(0)
        return 2 * n

    assert await double(n="4") == 8
    assert await search(query="x", limit=1) == ["x 0"]
    with pytest.raises(ValueError, match="Field required"):
        await double()


class Point(BaseModel):
    x: int
    y: int


def test_render_result():
    assert render_result("plain") == "plain"
    assert render_result(Point(x=1, y=2)) == '{"x":1,"y":2}'
    assert render_result({"p": Point(x=1, y=2), "é": None}) == '{"p": {"x": 1, "y": 2}, "é": null}'
    assert render_result({1, 2}) in ('"{1, 2}"', '"{2, 1}"')


async def test_invalid_arguments_name_only_what_the_model_must_fix():
    @tool
    def find(query: str, sort: Literal["new", "top"] = "new", limit: int = 10) -> str:
        """Find things.

        Args:
            query: what to look for.
            sort: the order of the results.
            limit: how many to return.
        """
        return query

    wrong_type = (await find.invoke('{"query": 3}')).content
    assert wrong_type == ("Invalid arguments for 'find': query: Input should be a valid string. "
                          "Fix: query (string, required): what to look for.")
    bad_choice = (await find.invoke('{"query": "x", "sort": "old"}')).content
    assert 'Fix: sort (one of "new", "top", optional, default "new"): the order of the results.' in bad_choice
    assert "limit" not in bad_choice and "query (" not in bad_choice  # the arguments that were fine stay out
    extra = (await find.invoke('{"query": "x", "page": 2}')).content
    assert "page is not an argument of this tool (its arguments: query, sort, limit)" in extra
    not_an_object = (await find.invoke("[1]")).content
    assert "query (string, required)" in not_an_object and "limit (integer, optional, default 10)" in not_an_object
