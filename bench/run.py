"""Benchmark react_agent against the raw HTTP floor, the plain SDK loop and peer frameworks.

    python bench/run.py            # full run (about 5-7 minutes on 2 cores)
    python bench/run.py --quick    # fewer repetitions (about 3 minutes)

One mock server process serves every row; each row is measured in its own fresh subprocess
(bench/worker.py), so imports, CPU time and peak RSS never leak between rows. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mock_server import MockServer
from rows import ROWS, Row

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_PEER_PYTHON = Path("/work/benchvenv/bin/python")
FLOOR, SDK, OURS, OURS_SYNC = "raw HTTP floor", "openai SDK loop", "react_agent", "react_agent run_sync"
OURS_MEMORY, OURS_SYNC_MEMORY = "react_agent (memory store)", "react_agent run_sync (memory store)"
OURS_LEAN = "react_agent (async tool, memory store)"
BYTES_PER_TOKEN = 4  # the mock server bills prompt_tokens = request bytes / 4


@dataclass
class Config:
    steps: int
    runs: int
    concurrency: int
    rounds: int
    import_samples: int
    peer_python: str
    rows: list[Row]
    extras: bool
    budget: int
    memory_samples: int
    json_path: str | None


@dataclass
class Report:
    imports: dict[str, float | str] = field(default_factory=dict)
    cli_ms: float | str = "not run"
    startup_ms: float = 0.0
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_cpu_us_per_request: float = 0.0
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- subprocess helpers


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
    env.setdefault("LANGSMITH_TRACING", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def python_for(row: Row, config: Config) -> str:
    return config.peer_python if row.peer else sys.executable


def run_json(argv: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a bench child process and return the payload of its ``RESULT {...}`` line."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env(), check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return {"ok": False, "error": f"exit {proc.returncode}, no result: {tail}"[:300]}


def import_ms(python: str, modules: Sequence[str], samples: int) -> float | str:
    code = f"import time; t = time.perf_counter(); import {', '.join(modules)}; print(time.perf_counter() - t)"
    times: list[float] = []
    for i in range(samples + 1):  # the first is a warm-up for the OS file cache
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=child_env(), check=False)
        if proc.returncode != 0:
            return "not importable: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        if i:
            times.append(float(proc.stdout.strip().splitlines()[-1]) * 1000)
    return statistics.median(times)


def command_ms(argv: Sequence[str], samples: int) -> float | str:
    times: list[float] = []
    for i in range(samples + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(), check=False)
        if proc.returncode != 0:
            return f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        if i:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# --------------------------------------------------------------------------- phases


def measure_imports(config: Config, report: Report) -> None:
    for row in config.rows:
        report.imports[row.name] = import_ms(python_for(row, config), row.imports, config.import_samples)
        progress(f"import {row.name}: {fmt(report.imports[row.name])}")
    report.startup_ms = float(command_ms([sys.executable, "-c", "pass"], config.import_samples))
    report.cli_ms = command_ms([sys.executable, "-m", "react_agent", "--help"], config.import_samples)
    progress(f"python -m react_agent --help: {fmt(report.cli_ms)}")


def measure_rows(config: Config, server: MockServer, report: Report) -> None:
    cpu0, requests0 = server_totals(server)
    for row in config.rows:
        argv = [
            python_for(row, config),
            str(BENCH / "worker.py"),
            row.name,
            "--port",
            str(server.port),
            "--steps",
            str(config.steps),
            "--runs",
            str(config.runs),
            "--concurrency",
            str(config.concurrency),
            "--rounds",
            str(config.rounds),
        ]
        report.rows[row.name] = run_json(argv, timeout=900)
        result = report.rows[row.name]
        progress(
            f"row {row.name}: "
            + (fmt(result["cpu_ms_per_step"]) + " CPU ms/step" if result["ok"] else "skipped (" + result["error"] + ")")
        )
    cpu1, requests1 = server_totals(server)
    report.server_cpu_us_per_request = (cpu1 - cpu0) / max(requests1 - requests0, 1) * 1e6


def server_totals(server: MockServer) -> tuple[float, int]:
    stats = server.stats()
    return stats["server_cpu_s"], sum(r["requests"] for r in stats["rows"].values())


def measure_extras(config: Config, server: MockServer, report: Report) -> None:
    extras = str(BENCH / "extras.py")
    port = ["--port", str(server.port)]
    jobs = {
        "memory": [extras, "memory", "--samples", str(config.memory_samples)],
        "budget": [extras, "budget", *port, "--budget", str(config.budget)],
        "parallel": [extras, "parallel", *port],
    }
    for name, argv in jobs.items():
        report.extras[name] = run_json([sys.executable, *argv], timeout=900)
        progress(f"extra {name}: " + ("done" if report.extras[name]["ok"] else report.extras[name]["error"]))


# --------------------------------------------------------------------------- printing


def progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(value: object, base: object) -> str:
    if isinstance(value, int | float) and isinstance(base, int | float) and base:
        return f"{value / base:.2f}x"
    return "-"


def print_table(title: str, headers: Sequence[str], body: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))))
    print(line)
    for r in body:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def metric(report: Report, row: str, key: str) -> float | None:
    result = report.rows.get(row) or {}
    value = result.get(key) if result.get("ok") else None
    return float(value) if value is not None else None


def print_main(config: Config, report: Report) -> None:
    headers = [
        "row",
        "import ms",
        "CPU ms/step",
        "wall ms/step",
        "peak RSS MB",
        "req bytes/step",
        f"steps/s @{config.concurrency}",
    ]
    keys = [
        "cpu_ms_per_step",
        "wall_ms_per_step",
        "peak_rss_mb",
        "request_bytes_per_step",
        "concurrent_steps_per_s",
    ]
    body: list[list[str]] = []
    skipped: list[str] = []
    for row in config.rows:
        result = report.rows.get(row.name, {})
        if not result.get("ok"):
            skipped.append(f"  {row.name}: skipped - {result.get('error', 'not run')}")
            continue
        body.append(
            [
                row.name,
                fmt(report.imports.get(row.name, "-"), 1),
                *(fmt(result[k], 0 if "bytes" in k or "steps_per" in k else 2) for k in keys),
            ]
        )
    print_table(
        f"Medians ({config.steps} tool steps = {config.steps + 1} model requests per run; 'step' = one model request)",
        headers,
        body,
    )
    for line in skipped:
        print(line)
    print_ratios(config, report, ["import ms", *headers[2:]], keys)


def print_ratios(config: Config, report: Report, headers: list[str], keys: list[str]) -> None:
    body: list[list[str]] = []
    for row in config.rows:
        if not (report.rows.get(row.name) or {}).get("ok"):
            continue
        cells = [
            f"{ratio(report.imports.get(row.name), report.imports.get(FLOOR))} / "
            f"{ratio(report.imports.get(row.name), report.imports.get(SDK))}"
        ]
        for key in keys:
            value = metric(report, row.name, key)
            cells.append(f"{ratio(value, metric(report, FLOOR, key))} / {ratio(value, metric(report, SDK, key))}")
        body.append([row.name, *cells])
    print_table(
        "Ratios: vs raw HTTP floor / vs openai SDK loop (steps/s: higher is better; others: lower)",
        ["row", *headers],
        body,
    )


def print_imports(report: Report) -> None:
    body = [
        ["python startup (python -c pass)", fmt(report.startup_ms, 1)],
        ["python -m react_agent --help (wall, incl. startup)", fmt(report.cli_ms, 1)],
    ]
    print_table("Startup (median wall ms of fresh processes)", ["command", "ms"], body)
    print(
        f"  mock server CPU: {report.server_cpu_us_per_request:,.0f} us per request "
        "(its own process; not in any client number)"
    )


def print_extras(report: Report) -> None:
    memory = report.extras.get("memory", {})
    if memory.get("ok"):
        body = [
            ["10", fmt(memory["append_us_at_10"], 1)],
            [f"{memory['long_history']:,}", fmt(memory["append_us_at_long"], 1)],
            ["ratio", f"{memory['ratio']:.2f}x"],
        ]
        print_table("Session memory: Store.append cost (median us) by history length", ["history", "us"], body)
    budget = report.extras.get("budget", {})
    if budget.get("ok"):
        rows = [
            [str(m), fmt(float(r), 0), fmt(float(a), 0), fmt(a / BYTES_PER_TOKEN, 0)]
            for m, r, a in zip(budget["marks"], budget["raw"], budget["react_agent"], strict=True)
        ]
        print_table(
            f"Request bytes by step, long run (react_agent context_budget={budget['budget_tokens']} tokens)",
            ["step", "raw loop B", "react_agent B", f"react_agent ~tokens (B/{BYTES_PER_TOKEN})"],
            rows,
        )
    parallel = report.extras.get("parallel", {})
    if parallel.get("ok"):
        rows = [
            [
                f"{v} tool",
                fmt(parallel[v]["step_ms"], 1),
                fmt(parallel[v]["run_wall_ms"], 1),
                str(parallel[v]["tool_results_ok"]),
                parallel[v]["status"],
            ]
            for v in ("async", "sync")
        ]
        print_table(
            "Parallel tools: one step with 8 calls that each sleep 200 ms",
            ["variant", "step ms", "run wall ms", "ok results", "status"],
            rows,
        )
    for name, result in report.extras.items():
        if not result.get("ok"):
            print(f"  extra {name}: skipped - {result.get('error')}")


# --------------------------------------------------------------------------- targets


def targets(config: Config, report: Report) -> list[tuple[str, bool | None, str]]:
    """(description, passed or None when not measurable, measured value)."""
    out: list[tuple[str, bool | None, str]] = []

    def check(
        name: str,
        value: float | None,
        limit: float | None,
        higher_is_better: bool = False,
        shown: str | None = None,
    ) -> None:
        if value is None or limit is None:
            out.append((name, None, "not measured"))
            return
        passed = value >= limit if higher_is_better else value <= limit
        out.append((name, passed, shown or f"{value:,.2f} (limit {limit:,.2f})"))

    floor = metric(report, FLOOR, "cpu_ms_per_step")
    for row, how in ((OURS, "await run"), (OURS_SYNC, "run_sync"), (OURS_MEMORY, "await run, memory store"),
                     (OURS_SYNC_MEMORY, "run_sync, memory store"), (OURS_LEAN, "await run, async tool, memory store")):
        cpu = metric(report, row, "cpu_ms_per_step")
        check(
            f"react_agent CPU/step ({how}) <= 1.25x raw floor",
            cpu,
            floor * 1.25 if floor else None,
            shown=f"{ratio(cpu, floor)} ({fmt(cpu)} vs {fmt(floor)} ms)" if cpu and floor else None,
        )
    imp = report.imports.get(OURS)
    check("import react_agent <= 150 ms", imp if isinstance(imp, float) else None, 150.0)
    check(
        "python -m react_agent --help <= 300 ms",
        report.cli_ms if isinstance(report.cli_ms, float) else None,
        300.0,
    )
    sdk = metric(report, SDK, "concurrent_steps_per_s")
    for row, how in ((OURS, ""), (OURS_MEMORY, ", memory store"), (OURS_LEAN, ", async tool, memory store")):
        rate = metric(report, row, "concurrent_steps_per_s")
        check(
            f"{config.concurrency}-concurrent steps/s >= 4x SDK loop{how}",
            rate,
            sdk * 4 if sdk else None,
            True,
            shown=f"{ratio(rate, sdk)} ({fmt(rate, 0)} vs {fmt(sdk, 0)} steps/s)" if rate and sdk else None,
        )
    memory = report.extras.get("memory", {})
    check("append@10k <= 1.5x append@10", memory.get("ratio"), 1.5 if memory.get("ok") else None)
    budget = report.extras.get("budget", {})
    at_200 = budget["react_agent"][-1] / BYTES_PER_TOKEN if budget.get("ok") else None
    check(
        f"request at step {budget.get('marks', [0])[-1]} within context budget (bytes/{BYTES_PER_TOKEN})",
        at_200,
        float(config.budget) if budget.get("ok") else None,
    )
    parallel = report.extras.get("parallel", {})
    for variant in ("async", "sync"):
        step = (parallel.get(variant) or {}).get("step_ms")
        check(f"8x200ms parallel step ({variant} tool) <= 300 ms", step, 300.0)
    return out


def print_targets(config: Config, report: Report) -> None:
    label = {True: "PASS", False: "MISS", None: "n/a "}
    print("\nTargets")
    for name, passed, shown in targets(config, report):
        print(f"  {label[passed]}  {name}: {shown}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="tool steps per run (default 20)")
    parser.add_argument("--runs", type=int, default=None, help="timed sequential runs per row (default 10)")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent runs in one process (default 50)")
    parser.add_argument("--rounds", type=int, default=None, help="concurrent rounds per row (default 3)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: runs 3, rounds 1, 3 import samples")
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--no-peers", action="store_true", help="only the floor, SDK and react_agent rows")
    parser.add_argument("--no-extras", action="store_true", help="skip memory / budget / parallel tables")
    parser.add_argument(
        "--peer-python",
        default=None,
        help=f"interpreter with the peer frameworks (default: $BENCH_PEER_PYTHON, else {DEFAULT_PEER_PYTHON} "
        "if present, else this interpreter)",
    )
    parser.add_argument("--budget", type=int, default=4000, help="context_budget tokens for the long run")
    parser.add_argument("--json", dest="json_path", default=None, help="also write all results to this file")
    args = parser.parse_args(argv)
    wanted = {n.strip() for n in args.rows.split(",") if n.strip()}
    rows = [r for r in ROWS if (not wanted or r.name in wanted) and not (args.no_peers and r.peer)]
    peer_python = (
        args.peer_python
        or os.environ.get("BENCH_PEER_PYTHON")
        or (str(DEFAULT_PEER_PYTHON) if DEFAULT_PEER_PYTHON.exists() else sys.executable)
    )
    return Config(
        steps=args.steps,
        runs=args.runs or (3 if args.quick else 10),
        concurrency=args.concurrency,
        rounds=args.rounds or (1 if args.quick else 3),
        import_samples=3 if args.quick else 7,
        peer_python=peer_python,
        rows=rows,
        extras=not args.no_extras,
        budget=args.budget,
        memory_samples=20 if args.quick else 50,
        json_path=args.json_path,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    report = Report()
    progress(f"rows: {', '.join(r.name for r in config.rows)}; peers run under {config.peer_python}")
    with MockServer() as server:
        measure_imports(config, report)
        measure_rows(config, server, report)
        if config.extras:
            measure_extras(config, server, report)
    print_main(config, report)
    print_imports(report)
    if config.extras:
        print_extras(report)
    print_targets(config, report)
    if config.json_path:
        Path(config.json_path).write_text(json.dumps(report.__dict__, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
