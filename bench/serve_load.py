"""Load on the HTTP server: N concurrent clients each stream one run (SSE) from one uvicorn worker, against
the mock model server; compared with N concurrent runs of the library in one process. Not a test.

    python bench/serve_load.py                       # 200 clients, 5 tool steps a run
    python bench/serve_load.py --clients 50 --steps 20 --json out.json

Three processes: the mock model server, the measured one (the uvicorn worker, or the library run
directly), and this driver (the HTTP clients; its CPU is not counted). Reported per mode:

* runs/s        N runs / wall time from the first request to the last run's end
* TTFE p50/p99  time to the first event: from sending the request to receiving ``run_start`` (server),
                from calling ``agent.stream`` to getting ``RunStart`` (direct)
* CPU/run       the measured process's CPU (user + system, from /proc) over the N runs, / N
* events lost   per streamed run, the events the server has for it (``GET /v1/runs/{id}/events``, its
                buffer) that the stream did not deliver, plus ids out of sequence; must be 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from httpx_sse import aconnect_sse  # noqa: E402
from mock_server import MockServer  # noqa: E402

from react_agent import Agent, tool  # noqa: E402
from react_agent.serve import create_app  # noqa: E402
from react_agent.stores import DiskStore  # noqa: E402

KEY = "bench-key"
EVENTS = {"run_start", "text_delta", "tool_start", "tool_end", "step_end", "run_end"}


def build_agent(mock_url: str, store_dir: str) -> Any:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: first.
            b: second.
        """
        return a + b

    return Agent(name="bench", instructions="Add numbers with the add tool.", tools=[add], model="mock-model",
                 base_url=mock_url, api_key="x", max_steps=100, store=DiskStore(store_dir))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the measured processes -----------------------------------------------------------------------------
def role_server(args: argparse.Namespace) -> None:
    agent = build_agent(args.mock_url, args.store)
    app = create_app({"bench": agent}, agent.store, {KEY: "bench"}, keep=10 * args.clients)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", backlog=4096)


def role_direct(args: argparse.Namespace) -> None:
    agent = build_agent(args.mock_url, args.store)

    async def one(i: int) -> tuple[float, float, int, str]:
        started = time.perf_counter()
        first = None
        count, status = 0, ""
        async for event in agent.stream(f"add things {i}"):
            first = first or time.perf_counter() - started
            count += 1
            if event.type == "run_end":
                status = event.result.status
        assert first is not None
        return first, time.perf_counter() - started, count, status

    async def main() -> dict[str, Any]:
        await one(-1)  # warm-up: imports, the client's connection pool
        cpu, wall = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(args.clients)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"wall": wall, "cpu": cpu, "ttfe": [r[0] for r in results], "events": [r[2] for r in results],
                "statuses": [r[3] for r in results]}

    print(json.dumps(asyncio.run(main())))


# -- the driver -----------------------------------------------------------------------------------------
async def stream_one(http: Any, i: int) -> dict[str, Any]:
    started = time.perf_counter()
    first = None
    events = []
    async with aconnect_sse(http, "POST", "/v1/agents/bench/runs",
                            json={"input": f"add things {i}", "stream": True}) as source:
        if source.response.status_code != 200:
            return {"error": source.response.status_code}
        async for sse in source.aiter_sse():
            if sse.event not in EVENTS:
                continue
            first = first or time.perf_counter() - started
            events.append((int(sse.id), sse.data))
    return {"ttfe": first, "wall": time.perf_counter() - started, "events": events,
            "run_id": json.loads(events[0][1])["run_id"] if events else None}


async def check_one(http: Any, got: dict[str, Any]) -> tuple[int, str]:
    """Events lost for one streamed run, and its journaled status."""
    if not got.get("run_id"):
        return 1, "no run"
    async with aconnect_sse(http, "GET", f"/v1/runs/{got['run_id']}/events") as source:
        full = [(int(e.id), e.data) async for e in source.aiter_sse() if e.event in EVENTS]
    streamed = got["events"]
    out_of_order = sum(1 for n, (i, _) in enumerate(streamed, 1) if i != n)
    lost = len(set(full) - set(streamed)) + out_of_order
    status = (await http.get(f"/v1/runs/{got['run_id']}")).json()["status"]
    return lost, status


async def drive(port: int, clients: int, pid: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"},
                                 timeout=120, limits=limits) as http:
        await stream_one(http, -1)  # warm-up
        cpu, wall, mine = cpu_seconds(pid), time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(stream_one(http, i) for i in range(clients)))
        wall, cpu, mine = time.perf_counter() - wall, cpu_seconds(pid) - cpu, time.process_time() - mine
        checks = [await check_one(http, r) for r in results]
    return {"wall": wall, "cpu": cpu, "client_cpu": mine,
            "ttfe": [r["ttfe"] for r in results if r.get("ttfe") is not None],
            "events": [len(r.get("events", [])) for r in results], "lost": sum(c[0] for c in checks),
            "statuses": [c[1] for c in checks], "errors": sum(1 for r in results if "error" in r)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not answer /healthz")


def summary(name: str, data: dict[str, Any], clients: int, steps: int) -> dict[str, Any]:
    ttfe = data["ttfe"]
    return {"mode": name, "clients": clients, "steps": steps, "runs_per_s": clients / data["wall"],
            "ttfe_p50_ms": percentile(ttfe, 0.5) * 1000, "ttfe_p99_ms": percentile(ttfe, 0.99) * 1000,
            "cpu_ms_per_run": data["cpu"] / clients * 1000, "events_per_run": statistics.mean(data["events"]),
            "events_lost": data.get("lost", 0), "errors": data.get("errors", 0),
            "client_cpu_ms_per_run": data["client_cpu"] / clients * 1000 if "client_cpu" in data else None,
            "completed": sum(1 for s in data["statuses"] if s == "completed"), "wall_s": data["wall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5, help="tool steps per run (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--role", choices=["server", "direct"], help=argparse.SUPPRESS)
    parser.add_argument("--mock-url", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        return role_server(args)
    if args.role == "direct":
        return role_direct(args)

    rows = []
    with MockServer() as mock, tempfile.TemporaryDirectory(prefix="serve_load_") as scratch:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        common = [sys.executable, __file__, "--clients", str(args.clients)]
        url = mock.url("serve", steps=args.steps)
        port = free_port()
        server = subprocess.Popen([*common, "--role", "server", "--mock-url", url, "--store", f"{scratch}/server",
                                   "--port", str(port)], env=env)
        try:
            wait_healthy(port, server)
            rows.append(summary("HTTP server (1 uvicorn worker, SSE)", asyncio.run(drive(port, args.clients,
                                                                                         server.pid)),
                                args.clients, args.steps))
        finally:
            server.terminate()
            server.wait(30)
        direct = subprocess.run([*common, "--role", "direct", "--mock-url", mock.url("direct", steps=args.steps),
                                 "--store", f"{scratch}/direct"], env=env, capture_output=True, text=True,
                                check=True)
        rows.append(summary("library, one process (agent.stream)", json.loads(direct.stdout.splitlines()[-1]),
                            args.clients, args.steps))
    print(f"{args.clients} concurrent runs of {args.steps} tool steps (+1 answer) each, mock model server\n")
    print("| mode | runs/s | TTFE p50 ms | TTFE p99 ms | CPU ms/run | events/run | events lost | completed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['mode']} | {r['runs_per_s']:.1f} | {r['ttfe_p50_ms']:.1f} | {r['ttfe_p99_ms']:.1f} | "
              f"{r['cpu_ms_per_run']:.1f} | {r['events_per_run']:.1f} | {r['events_lost']} | "
              f"{r['completed']}/{r['clients']} |")
    if rows[0]["client_cpu_ms_per_run"] is not None:
        print(f"\nthe HTTP clients (this driver, not counted above): {rows[0]['client_cpu_ms_per_run']:.1f} CPU ms/run")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if rows[0]["events_lost"] or rows[0]["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
