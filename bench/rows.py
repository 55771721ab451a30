# ruff: noqa: PLC0415  (frameworks are imported lazily so a missing one skips its row)
"""One client function per benchmark row, all running the identical scripted ``add`` task.

Every row is a *factory* ``(base_url) -> run`` where ``run()`` performs one complete agent run
against the mock server and returns the number of tool results it produced. Factories import their
framework lazily, so a row whose framework is missing fails at build time with an ImportError that
the driver reports as "skipped" instead of crashing the benchmark.

The factory is called once per process (client objects, compiled graphs and tool schemas are
shared by all runs, as an application would); per-run state (the message list) lives inside ``run``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

MODEL = "mock-model"
INSTRUCTIONS = "You add numbers."
PROMPT = "add things"
API_KEY = "x"
MAX_STEPS = 50

Run = Callable[[], Awaitable[int]]
Factory = Callable[[str], Run]
SyncRun = Callable[[], int]  # a run for code without an event loop (``agent.run_sync``)
SyncFactory = Callable[[str], SyncRun]

ADD_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def first_messages() -> list[dict[str, Any]]:
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": PROMPT}]


# --------------------------------------------------------------------------- floor and SDK


def raw_http_floor(base_url: str, *, max_steps: int = MAX_STEPS) -> Run:
    """The SDK's transport only: POST a dict, ``json.loads`` the bytes, hand-written loop."""
    from openai import AsyncOpenAI
    from openai._httpx2 import http_response_types

    response_type = http_response_types()[0]
    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY)

    async def run() -> int:
        messages = first_messages()
        steps = 0
        for _ in range(max_steps + 1):
            body = {"model": MODEL, "messages": messages, "tools": [ADD_SCHEMA]}
            response = await client.post("/chat/completions", body=body, cast_to=response_type)
            message = json.loads(response.content)["choices"][0]["message"]
            messages.append(message)
            calls = message.get("tool_calls") or []
            if not calls:
                return steps
            for call in calls:
                result = add(**json.loads(call["function"]["arguments"]))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(result)})
                steps += 1
        raise RuntimeError("raw loop exceeded max_steps")

    return run


def openai_sdk_loop(base_url: str) -> Run:
    """The textbook ``chat.completions.create`` loop, keeping the SDK's pydantic message objects."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY)

    async def run() -> int:
        messages: list[Any] = first_messages()
        tools: Any = [ADD_SCHEMA]
        steps = 0
        for _ in range(MAX_STEPS + 1):
            completion = await client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
            message = completion.choices[0].message
            messages.append(message)
            if not message.tool_calls:
                return steps
            for call in message.tool_calls:
                result = add(**json.loads(call.function.arguments))  # type: ignore[union-attr]
                messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})
                steps += 1
        raise RuntimeError("SDK loop exceeded max_steps")

    return run


# --------------------------------------------------------------------------- react_agent


def react_agent_agent(base_url: str, **agent_options: Any) -> Any:
    from react_agent import Agent, tool

    return Agent(
        name="bench",
        instructions=INSTRUCTIONS,
        tools=[tool(add)],
        model=MODEL,
        base_url=base_url,
        api_key=API_KEY,
        **{"max_steps": MAX_STEPS, **agent_options},
    )


def react_agent_row(base_url: str, **agent_options: Any) -> Run:
    """``await agent.run(...)`` on the driver's event loop."""
    agent = react_agent_agent(base_url, **agent_options)

    async def run() -> int:
        return checked_result(await agent.run(PROMPT))

    return run


def react_agent_memory_row(base_url: str) -> Run:
    """``react_agent_row`` with its journal in a ``MemoryStore``: the framework without durable commits."""
    from react_agent import MemoryStore

    return react_agent_row(base_url, store=MemoryStore())


def react_agent_sync_memory_row(base_url: str) -> SyncRun:
    """``react_agent_sync_row`` with its journal in a ``MemoryStore``."""
    from react_agent import MemoryStore

    return react_agent_sync_row(base_url, store=MemoryStore())


async def add_async(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def react_agent_async_tool_memory_row(base_url: str) -> Run:
    """``react_agent_memory_row`` with ``add`` written as ``async def``: the loop with neither the durable
    commit nor the worker-thread hop a sync tool takes under ``await agent.run`` (the least the framework
    itself costs per step)."""
    from react_agent import Agent, MemoryStore, tool

    agent = Agent(name="bench", instructions=INSTRUCTIONS, tools=[tool(add_async, name="add")], model=MODEL,
                  base_url=base_url, api_key=API_KEY, max_steps=MAX_STEPS, store=MemoryStore())

    async def run() -> int:
        return checked_result(await agent.run(PROMPT))

    return run


def react_agent_sync_row(base_url: str, **agent_options: Any) -> SyncRun:
    """``agent.run_sync(...)`` from plain code, as a script or a sync web view calls it."""
    agent = react_agent_agent(base_url, **agent_options)

    def run() -> int:
        return checked_result(agent.run_sync(PROMPT))

    return run


def checked_result(result: Any) -> int:
    if result.status != "completed":
        raise RuntimeError(f"react_agent run ended with status {result.status!r}")
    return count_tool_results(result)


def count_tool_results(result: Any) -> int:
    """Tool results (observations) in a react_agent RunResult."""
    return sum(len(step.observations) for step in result.steps)


# --------------------------------------------------------------------------- peers


def openai_agents_row(base_url: str) -> Run:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from agents.items import ToolCallOutputItem
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY)
    model = OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    agent = Agent(name="bench", instructions=INSTRUCTIONS, tools=[function_tool(add)], model=model)

    async def run() -> int:
        result = await Runner.run(agent, PROMPT, max_turns=MAX_STEPS)
        return sum(isinstance(item, ToolCallOutputItem) for item in result.new_items)

    return run


def pydantic_ai_row(base_url: str) -> Run:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ToolReturnPart
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key=API_KEY))
    agent = Agent(model, instructions=INSTRUCTIONS, tools=[add])

    async def run() -> int:
        result = await agent.run(PROMPT)
        parts = (part for message in result.all_messages() for part in message.parts)
        return sum(isinstance(part, ToolReturnPart) for part in parts)

    return run


def smolagents_row(base_url: str) -> Run:
    """smolagents is synchronous: each run executes in a worker thread of a pool sized for 64 runs."""
    from smolagents import ActionStep, OpenAIModel, ToolCallingAgent, tool

    def smol_add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first integer.
            b: The second integer.
        """
        return a + b

    smol_add.__name__ = "add"
    add_tool = tool(smol_add)
    model = OpenAIModel(model_id=MODEL, api_base=base_url, api_key=API_KEY)
    pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="smolagents")

    def run_sync() -> int:
        agent = ToolCallingAgent(tools=[add_tool], model=model, max_steps=MAX_STEPS, verbosity_level=-1)
        agent.run(PROMPT)
        steps = (s for s in agent.memory.steps if isinstance(s, ActionStep) and not s.is_final_answer)
        return sum(len(s.tool_calls or []) for s in steps)

    async def run() -> int:
        return await asyncio.get_running_loop().run_in_executor(pool, run_sync)

    return run


def langgraph_row(base_url: str) -> Run:
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import tool as lc_tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent
    from pydantic import SecretStr

    llm = ChatOpenAI(model=MODEL, base_url=base_url, api_key=SecretStr(API_KEY))
    graph = create_react_agent(llm, [lc_tool(add)], prompt=INSTRUCTIONS)
    config: Any = {"recursion_limit": 4 * MAX_STEPS}

    async def run() -> int:
        state = await graph.ainvoke({"messages": [("user", PROMPT)]}, config=config)
        return sum(isinstance(m, ToolMessage) for m in state["messages"])

    return run


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Row:
    name: str
    factory: Factory | None  # async rows: ``run()`` is awaited on the driver's event loop
    imports: tuple[str, ...]  # what `import time` measures for this row
    peer: bool = False  # peers run under --peer-python
    sync_factory: SyncFactory | None = None  # sync rows: ``run()`` is called with no event loop running


ROWS: tuple[Row, ...] = (
    Row("raw HTTP floor", raw_http_floor, ("openai",)),
    Row("openai SDK loop", openai_sdk_loop, ("openai",)),
    Row("react_agent", react_agent_row, ("react_agent",)),
    Row("react_agent run_sync", None, ("react_agent",), sync_factory=react_agent_sync_row),
    Row("react_agent (memory store)", react_agent_memory_row, ("react_agent",)),
    Row("react_agent run_sync (memory store)", None, ("react_agent",), sync_factory=react_agent_sync_memory_row),
    Row("react_agent (async tool, memory store)", react_agent_async_tool_memory_row, ("react_agent",)),
    Row("openai-agents", openai_agents_row, ("agents",), peer=True),
    Row("pydantic-ai", pydantic_ai_row, ("pydantic_ai", "pydantic_ai.models.openai"), peer=True),
    Row("smolagents", smolagents_row, ("smolagents",), peer=True),
    Row("langgraph", langgraph_row, ("langgraph.prebuilt", "langchain_openai"), peer=True),
)


def find_row(name: str) -> Row:
    for row in ROWS:
        if row.name == name:
            return row
    raise KeyError(f"unknown row {name!r}; known: {[r.name for r in ROWS]}")
