# ruff: noqa: PLC0415  (frameworks are imported lazily so a missing one skips its row)
"""The extra measurements, each run in its own process and printed as one JSON line.

python bench/extras.py memory
python bench/extras.py budget   --port 8123 [--budget 4000] [--long-steps 200]
python bench/extras.py parallel --port 8123
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from mock_server import base_url, row_stats
from rows import raw_http_floor, react_agent_row

BUDGET_MARKS = (1, 50, 100, 200)
PARALLEL_CALLS = 8
SLEEP_S = 0.2


# --------------------------------------------------------------------------- session memory


def message(i: int) -> dict[str, Any]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "lorem ipsum " * 8}


def timed_append(append: Callable[[str, dict[str, Any]], object], session: str, i: int) -> float:
    t0 = time.perf_counter()
    append(session, message(i))
    return time.perf_counter() - t0


def memory(args: argparse.Namespace) -> dict[str, Any]:
    from react_agent.stores import DiskStore as Store

    with tempfile.TemporaryDirectory(prefix="bench-store-") as path:
        store = Store(path)
        append = store.append
        short = [f"short-{k}" for k in range(args.samples)]
        for sid in short:
            for i in range(10):
                append(sid, message(i))
        t0 = time.perf_counter()
        for i in range(args.long_history):
            append("long", message(i))
        fill_s = time.perf_counter() - t0
        at_short = [timed_append(append, sid, 10) for sid in short]
        at_long = [timed_append(append, "long", args.long_history + k) for k in range(args.samples)]
        close = getattr(store, "close", None)
        if callable(close):
            close()
    short_us = statistics.median(at_short) * 1e6
    long_us = statistics.median(at_long) * 1e6
    return {
        "append_us_at_10": short_us,
        "append_us_at_long": long_us,
        "long_history": args.long_history,
        "ratio": long_us / short_us,
        "prefill_s": fill_s,
    }


# --------------------------------------------------------------------------- context budget


def sizes_at(port: int, row: str) -> list[int]:
    sizes = row_stats(port, row).body_sizes
    return [sizes[m - 1] if m <= len(sizes) else -1 for m in BUDGET_MARKS]


async def budget_async(args: argparse.Namespace) -> dict[str, Any]:
    steps = args.long_steps
    raw_row, agent_row = "budget.raw", "budget.react_agent"
    await raw_http_floor(base_url(args.port, raw_row, steps=steps), max_steps=steps + 10)()
    options = {"context_budget": args.budget, "max_steps": steps + 10}
    agent_run = react_agent_row(base_url(args.port, agent_row, steps=steps), **options)
    done = await agent_run()
    return {
        "marks": list(BUDGET_MARKS),
        "raw": sizes_at(args.port, raw_row),
        "react_agent": sizes_at(args.port, agent_row),
        "react_agent_tool_results": done,
        "budget_tokens": args.budget,
    }


# --------------------------------------------------------------------------- parallel tools


async def sleep_200ms_async(n: int) -> str:
    """Sleep for 200 ms without blocking the event loop."""
    await asyncio.sleep(SLEEP_S)
    return f"sleeper {n} woke"


def sleep_200ms_sync(n: int) -> str:
    """Sleep for 200 ms, blocking the calling thread."""
    time.sleep(SLEEP_S)
    return f"sleeper {n} woke"


def parallel_agent(port: int, variant: str, fn: Callable[..., Any]) -> Any:
    from react_agent import Agent, tool

    fn.__name__ = "sleep_200ms"
    url = base_url(port, f"parallel.{variant}", mode="parallel", n=PARALLEL_CALLS, tool="sleep_200ms")
    return Agent(
        name="bench",
        instructions="Sleep.",
        tools=[tool(fn)],
        model="mock-model",
        base_url=url,
        api_key="x",
        max_steps=5,
    )


async def parallel_wall_ms(agent: Any, repeats: int) -> dict[str, Any]:
    walls: list[float] = []
    for _ in range(repeats + 1):  # the first run is a warm-up
        t0 = time.perf_counter()
        result = await agent.run("sleep in parallel")
        walls.append(time.perf_counter() - t0)
    tool_steps = [s for s in result.steps if s.observations]
    step_ms = [s.ms for s in tool_steps]
    return {
        "run_wall_ms": statistics.median(walls[1:]) * 1000,
        "step_ms": step_ms[0] if step_ms else None,
        "tool_results_ok": sum(o.kind == "ok" for s in tool_steps for o in s.observations),
        "status": result.status,
    }


async def parallel_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant, fn in (("async", sleep_200ms_async), ("sync", sleep_200ms_sync)):
        out[variant] = await parallel_wall_ms(parallel_agent(args.port, variant, fn), args.repeats)
    return out


# --------------------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("memory", "budget", "parallel"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--samples", type=int, default=50, help="memory: appends timed at each length")
    parser.add_argument("--long-history", type=int, default=10_000, help="memory: the long history length")
    parser.add_argument("--budget", type=int, default=4000, help="budget: Agent(context_budget=...) tokens")
    parser.add_argument("--long-steps", type=int, default=200, help="budget: tool steps of the long run")
    parser.add_argument("--repeats", type=int, default=3, help="parallel: timed runs per variant")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.what == "memory":
            payload: dict[str, Any] = memory(args)
        elif args.what == "budget":
            payload = asyncio.run(budget_async(args))
        else:
            payload = asyncio.run(parallel_async(args))
        payload["ok"] = True
    except ImportError as exc:
        payload = {"ok": False, "error": f"not importable: {exc}"}
    except Exception as exc:  # noqa: BLE001 - any failure is reported as a skipped row, not a crash
        traceback.print_exc(file=sys.stderr)
        payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    print("RESULT " + json.dumps(payload), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
