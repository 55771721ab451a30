"""The process ``tests/test_crash.py`` kills: one run of a three-turn agent on a disk store, or its resume.

    python tests/crash_worker.py run|resume|count STORE_DIR|POSTGRES_URL LOG_FILE VARIANT

``run`` starts the run, ``resume`` takes it up again (or starts it, if it died before its first commit),
``count`` runs it through without a crash and prints how often each crash point was reached. The crash
itself comes from ``REACT_AGENT_CRASH_AT`` (``react_agent.faults``), set by the test.

The model is a function of the request, not of a position in a script, so a fresh process resuming the
run gets the reply that comes next: with no assistant message after the question a lone side-effecting
call, then three parallel calls (one idempotent, two with side effects), then the final answer.
Variant ``A``: sync tools, the answer as text. Variant ``B``: async tools, ``notify`` sequential, the
answer through the ``final_answer`` tool. Every tool writes ``start <tool> <arg>`` and ``done <tool> <arg>``
to LOG_FILE, synced, so the test counts executions across kills.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from react_agent import Agent, DiskStore, PostgresStore, Store, Tool, UserError, faults, tool
from react_agent.journal import Journal
from react_agent.model import ModelResponse
from react_agent.testing import Request, ScriptedModel, reply, tool_call, tool_calls

SESSION = "crash"
RUN_ID = "crash-run"
QUESTION = "Charge order 0, then look up, charge and notify in one go."
ANSWER = "All done."
FIRST = ("charge", {"order": "order-0"})  # the lone call of the first turn
PARALLEL = (("lookup", {"query": "item-1"}), ("charge", {"order": "order-1"}), ("notify", {"who": "customer-1"}))
PAUSE = {"charge": 0.01, "lookup": 0.02, "notify": 0.03}  # seconds: parallel calls overlap, then return
# ``lookup`` is idempotent: its result rides on the run's next commit (journal.DEFER_MS), here every time
Journal.defer_ms = 60_000.0


def note(log: Path, line: str) -> None:
    with log.open("a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def tools(variant: str, log: Path) -> list[Tool]:
    def act(name: str, value: str) -> str:
        note(log, f"start {name} {value}")
        time.sleep(PAUSE[name])
        note(log, f"done {name} {value}")
        return f"{name} {value}: ok"

    async def act_async(name: str, value: str) -> str:
        note(log, f"start {name} {value}")
        await asyncio.sleep(PAUSE[name])
        note(log, f"done {name} {value}")
        return f"{name} {value}: ok"

    if variant == "A":
        @tool
        def lookup(query: str) -> str:
            """Look an item up.

            Args:
                query: the item.
            """
            return act("lookup", query)

        @tool(side_effects=True)
        def charge(order: str) -> str:
            """Charge an order.

            Args:
                order: the order.
            """
            return act("charge", order)

        @tool(side_effects=True)
        def notify(who: str) -> str:
            """Notify a customer.

            Args:
                who: the customer.
            """
            return act("notify", who)

        return [lookup, charge, notify]

    @tool(name="lookup")
    async def lookup_async(query: str) -> str:
        """Look an item up.

        Args:
            query: the item.
        """
        return await act_async("lookup", query)

    @tool(name="charge", side_effects=True)
    async def charge_async(order: str) -> str:
        """Charge an order.

        Args:
            order: the order.
        """
        return await act_async("charge", order)

    @tool(name="notify", side_effects=True, sequential=True)
    async def notify_async(who: str) -> str:
        """Notify a customer.

        Args:
            who: the customer.
        """
        return await act_async("notify", who)

    return [lookup_async, charge_async, notify_async]


def decide(variant: str, request: Request) -> ModelResponse:
    """The next reply, from how many assistant messages follow the question."""
    question = max(i for i, m in enumerate(request.messages) if m["role"] == "user")
    turn = sum(m["role"] == "assistant" for m in request.messages[question + 1:])
    if turn == 0:
        response = tool_call(*FIRST)
    elif turn == 1:
        response = tool_calls(list(PARALLEL), thought="All three at once.")
    elif variant == "B":
        response = tool_call("final_answer", {"answer": ANSWER})
    else:
        return reply(ANSWER)
    for i, call in enumerate(response.tool_calls):
        call.id = f"t{turn}c{i}"  # stable across processes (ScriptedModel would number them per process)
    return response


def agent(variant: str, store: Store, log: Path) -> Agent:
    model = ScriptedModel([lambda request: decide(variant, request)] * 4)
    return Agent(name=f"crash-{variant}", tools=tools(variant, log), model=model, store=store,
                 answer_tool=variant == "B")


def count_points() -> Counter[str]:
    """Count every crash point reached instead of crashing (each module holds its own ``point``)."""
    for name in ("react_agent.loop", "react_agent.journal", "react_agent.stores.disk",  # where points are
                 "react_agent.stores.postgres"):
        importlib.import_module(name)
    hits: Counter[str] = Counter()
    original = faults.point

    def count(name: str) -> None:
        hits[name] += 1

    for name, module in list(sys.modules.items()):
        if name.startswith("react_agent") and getattr(module, "point", None) is original:
            module.point = count  # type: ignore[attr-defined]
    return hits


def main(phase: str, folder: str, log_file: str, variant: str) -> None:
    store = PostgresStore(folder) if folder.startswith("postgresql://") else DiskStore(folder)
    log = Path(log_file)
    worker = agent(variant, store, log)
    hits = count_points() if phase == "count" else None
    if phase in ("run", "count") or store.run(RUN_ID) is None:  # died before its first commit: start over
        result = worker.run_sync(QUESTION, session=SESSION, run_id=RUN_ID)
    else:
        try:
            result = worker.run_sync("", run_id=RUN_ID, resume=True)
        except UserError as exc:  # the run's end was committed before the kill
            print(json.dumps({"ended": str(exc)}))
            return
    summary: dict[str, Any] = {"status": result.status, "output": result.output, "steps": len(result.steps),
                               "error": result.error}
    if hits is not None:
        summary["hits"] = dict(hits)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:5])
