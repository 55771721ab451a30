"""The one benchmark driver: measures a single row in this (fresh) process and prints one JSON line.

    python bench/worker.py "react_agent" --port 8123 --steps 20 --runs 10 --concurrency 50

Phases: build the row (imports + client), one warm-up run, ``--runs`` sequential runs timed one by one
(process CPU and wall), ``--rounds`` rounds of ``--concurrency`` concurrent runs on one event loop,
then peak RSS. A sync row (``agent.run_sync``) is called from this thread with no event loop running,
and its concurrent runs go to a pool of ``--concurrency`` threads, as a sync web server would call it.
Request bytes come from the mock server's per-row counters. "Per step" means per
model request: a run of N tool steps makes N + 1 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from mock_server import base_url, row_stats
from rows import Run, SyncRun, find_row


@dataclass
class RowResult:
    row: str
    ok: bool
    error: str = ""
    cpu_ms_per_step: float = 0.0
    wall_ms_per_step: float = 0.0
    concurrent_steps_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    request_bytes_per_step: float = 0.0
    requests_per_run: float = 0.0


def bucket(row: str, phase: str) -> str:
    return f"{row.replace(' ', '_')}.{phase}"


async def checked(run: Run, expected: int) -> None:
    got = await run()
    if got != expected:
        raise RuntimeError(f"run produced {got} tool results, expected {expected}")


async def timed_runs(run: Run, runs: int, steps: int) -> tuple[list[float], list[float]]:
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        await checked(run, steps)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return cpu, wall


async def concurrent_rate(run: Run, concurrency: int, rounds: int, steps: int) -> float:
    rates: list[float] = []
    for _ in range(rounds):
        w0 = time.perf_counter()
        await asyncio.gather(*(checked(run, steps) for _ in range(concurrency)))
        rates.append(concurrency * (steps + 1) / (time.perf_counter() - w0))
    return statistics.median(rates)


async def measure_async(run: Run, warm: Run, concurrent: Run, args: argparse.Namespace) -> tuple[
        list[float], list[float], float]:
    await checked(warm, args.steps)
    cpu, wall = await timed_runs(run, args.runs, args.steps)
    return cpu, wall, await concurrent_rate(concurrent, args.concurrency, args.rounds, args.steps)


def checked_sync(run: SyncRun, expected: int) -> None:
    got = run()
    if got != expected:
        raise RuntimeError(f"run produced {got} tool results, expected {expected}")


def measure_sync(run: SyncRun, warm: SyncRun, concurrent: SyncRun, args: argparse.Namespace) -> tuple[
        list[float], list[float], float]:
    checked_sync(warm, args.steps)
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(args.runs):
        c0, w0 = time.process_time(), time.perf_counter()
        checked_sync(run, args.steps)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    rates: list[float] = []
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        for _ in range(args.rounds):
            w0 = time.perf_counter()
            for future in [pool.submit(checked_sync, concurrent, args.steps) for _ in range(args.concurrency)]:
                future.result()
            rates.append(args.concurrency * (args.steps + 1) / (time.perf_counter() - w0))
    return cpu, wall, statistics.median(rates)


def measure(args: argparse.Namespace) -> RowResult:
    row = find_row(args.row)

    def url(phase: str) -> str:
        return base_url(args.port, bucket(row.name, phase), steps=args.steps)

    if row.sync_factory is not None:
        cpu, wall, rate = measure_sync(*(row.sync_factory(url(p)) for p in ("seq", "warm", "conc")), args)
    else:
        assert row.factory is not None
        factory = row.factory
        cpu, wall, rate = asyncio.run(measure_async(*(factory(url(p)) for p in ("seq", "warm", "conc")), args))
    stats = row_stats(args.port, bucket(row.name, "seq"))
    calls = args.steps + 1
    return RowResult(
        row=row.name,
        ok=True,
        cpu_ms_per_step=statistics.median(cpu) / calls * 1000,
        wall_ms_per_step=statistics.median(wall) / calls * 1000,
        concurrent_steps_per_s=rate,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        request_bytes_per_step=stats.body_bytes / max(stats.requests, 1),
        requests_per_run=stats.requests / args.runs,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("row")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = measure(args)
    except ImportError as exc:
        result = RowResult(row=args.row, ok=False, error=f"not importable: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failure is reported as a skipped row, not a crash
        traceback.print_exc(file=sys.stderr)
        result = RowResult(row=args.row, ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
    payload: dict[str, Any] = asdict(result)
    print("RESULT " + json.dumps(payload), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
