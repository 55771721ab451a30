"""Batch runs on Ray: the tasks of a task file (or eval suite) x trials, each in a Ray task of its own.

``run_batch`` starts a local Ray instance (node address 127.0.0.1; Ray's servers still listen on every
interface), or joins a cluster (``address``), and runs
each (task, trial) in a worker exactly as ``run`` / ``eval`` run one task (``runner.run_one``): the agent is
built from the task file on the worker, and a live run writes its journal to the store ``open_store()``
gives there, with ``batch_id``, ``task`` and ``trial`` in its record's metadata. The driver's
``REACT_AGENT_*`` and ``OPENAI_*`` variables go with every item (``REACT_AGENT_HOME`` made absolute), so a
worker reads the same store and asks the same model server as the driver would.

What is guaranteed: a finished item's runs are in the store before its result reaches the driver; a worker
that dies (killed, out of memory, its node lost) loses only its own item, which is reported with the run it
left open (``resume RUN_ID``) — Ray does not run it again (``max_retries=0``: a run with side effects is
resumed, never repeated); Ctrl-C cancels what is under way, shuts down the Ray instance this call started
and raises ``KeyboardInterrupt``, the runs under way left open for ``resume``. Recorded and replayed items
use a throwaway store, as ``run --replay`` does.

Ray is the ``batch`` extra, imported only here and only when a batch starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .errors import ReactAgentError, UserError
from .evaluate import CaseReport, EvalReport, case_report, single_recording_notes, suite_report
from .tasks import TaskFile, TaskOutcome, load_task_file

if TYPE_CHECKING:
    from types import ModuleType

    from .recording import Mode
    from .stores import Store

__all__ = ["BatchItem", "BatchReport", "BatchUnavailableError", "check_store_reach", "import_ray", "run_batch",
           "select_tasks"]

INSTALL = "pip install 'react-agent[batch]'"
PASSED_ENV = ("REACT_AGENT_", "OPENAI_")  # what a worker gets of the driver's environment (prefixes)
CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before Ray is asked (it retries for minutes)
WAIT_SLICE = 0.5  # seconds per wait for the next item: Ctrl-C is seen between two waits
LOOPBACK = "127.0.0.1"  # a local instance's node address (Ray's own servers still bind every interface)


class BatchUnavailableError(ReactAgentError):
    """Ray could not be started, or the cluster at the address could not be joined: nothing ran (the CLI:
    one line, exit 3, like a model server that cannot be reached)."""


class BatchItem(BaseModel):
    """One task x trial of a batch: its outcome, or why there is none (``error``: the worker died, or the
    item raised) with the runs it left open in the store (``open_runs``, for ``resume``)."""

    task: str
    trial: int
    outcome: TaskOutcome | None = None
    error: str | None = None
    open_runs: list[str] = []
    worker: str | None = None  # where the item ran, ``host:pid`` (when it reported back)

    @property
    def passed(self) -> bool:
        return self.outcome is not None and self.outcome.passed

    @property
    def could_not_run(self) -> list[str]:
        """The item's model errors, or why it has no outcome (with the ``resume`` command of each open run)."""
        if self.outcome is not None:
            return self.outcome.could_not_run
        resume = "".join(f"; `python -m react_agent resume {r}` continues it" for r in self.open_runs)
        return [f"{self.task} trial {self.trial}: {self.error}{resume}"]


class BatchReport(BaseModel):
    """A batch's items (in task, trial order) and the eval-style report over them: accuracy, pass^k,
    latency, tokens, cost. An item without an outcome counts as a failed trial."""

    batch_id: str
    task_file: str
    trials: int
    workers: int
    hosts: list[str]
    seconds: float
    items: list[BatchItem]
    report: EvalReport

    @property
    def passed(self) -> bool:
        return all(item.passed for item in self.items)

    @property
    def could_not_run(self) -> list[str]:
        return [error for item in self.items for error in item.could_not_run]


@dataclass(frozen=True)
class _Job:
    """What a worker needs for one item; plain data (it travels to the worker)."""

    task_file: str
    task: str
    trial: int
    trials: int
    mode: Mode | None
    cassettes: str | None
    model: str | None
    batch_id: str
    env: dict[str, str]


def run_batch(task_file: str | Path | TaskFile, *, trials: int = 1, tasks: Sequence[str] = (),
              workers: int | None = None, address: str | None = None, mode: Mode | None = None,
              cassettes: str | Path | None = None, model: str | None = None,
              on_item: Callable[[BatchItem], None] | None = None, batch_id: str | None = None) -> BatchReport:
    """Run the tasks of ``task_file`` (only ``tasks`` when given) ``trials`` times each on Ray, at most
    ``workers`` at a time (default: the cluster's CPUs), and report. ``on_item`` sees each item as it ends.

    Without ``address`` (and no Ray connection in this process yet) a local instance with ``workers`` CPUs
    is started and shut down at the end; with one, the cluster is joined (a ``host:port`` that does not
    answer is a ``BatchUnavailableError`` within seconds). A disk store on a cluster of several hosts is
    refused (``check_store_reach``). Bad input is a ``UserError`` before anything starts."""
    spec = task_file if isinstance(task_file, TaskFile) else load_task_file(task_file)
    selected = select_tasks(spec, tasks)
    if trials < 1 or (workers is not None and workers < 1):
        raise UserError(f"trials and workers must be at least 1, got trials={trials}, workers={workers}")
    ray = import_ray()
    batch_id = batch_id or f"batch-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder = str(Path(cassettes).resolve()) if cassettes is not None else None
    env = _worker_env()
    jobs = [_Job(str(spec.path.resolve()), name, trial, trials, mode, folder, model, batch_id, env)
            for name in selected for trial in range(1, trials + 1)]
    started = time.perf_counter()
    ours = not ray.is_initialized()  # this call starts (or joins) Ray, so it shuts it down (or leaves it)
    try:
        with _interrupt_deferred():  # a Ctrl-C inside ray.init orphans the node's agents: it waits for the end
            _connect(ray, address, workers)
        hosts = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")})
        from .stores import open_store  # noqa: PLC0415

        check_store_reach(hosts, open_store())  # not closed: a Postgres store is the process's shared one
        width = workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        items = _fan_out(ray, jobs, width, on_item)
    finally:
        if ours:
            ray.shutdown()
    if mode is None:
        _find_open_runs(batch_id, items)
    items.sort(key=lambda i: (selected.index(i.task), i.trial))
    return BatchReport(batch_id=batch_id, task_file=str(spec.path), trials=trials, workers=width, hosts=hosts,
                       seconds=time.perf_counter() - started, items=items,
                       report=_report(spec, trials, items, replay=mode == "replay",
                                      cassettes=Path(folder) if folder else None))


def select_tasks(spec: TaskFile, tasks: Sequence[str] = ()) -> list[str]:
    """The names of the tasks to run, in file order: ``tasks`` when given (each must exist), else all."""
    if unknown := [name for name in tasks if name not in {t.name for t in spec.tasks}]:
        raise UserError(f"no task named {unknown} in {spec.path}; tasks: {[t.name for t in spec.tasks]}")
    return [t.name for t in spec.tasks if not tasks or t.name in tasks]


def check_store_reach(hosts: Collection[str], store: Store) -> None:
    """A ``UserError`` when workers on several hosts would each write their own disk store: the default
    store is a folder on one machine, so a multi-host batch needs a store every host reaches (Postgres)."""
    from .stores import DiskStore  # noqa: PLC0415

    if len(hosts) > 1 and isinstance(store, DiskStore):
        raise UserError(f"the Ray cluster has {len(hosts)} hosts ({', '.join(sorted(hosts))}) but the store is the "
                        f"disk store at {store.path.resolve()}, which only this machine sees: set REACT_AGENT_STORE="
                        "postgresql://... to a database every host reaches (README, \"Batch runs on Ray\")")


def import_ray() -> ModuleType:
    try:
        import ray  # noqa: PLC0415 - the optional extra, and slow to import: only when a batch starts
    except ImportError:
        raise UserError(f"batch runs need the batch extra (ray is not installed): {sys.executable} -m "
                        f"{INSTALL}") from None
    return ray


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Hold SIGINT until the block ends, then raise ``KeyboardInterrupt`` if one came: interrupted half-way,
    ``ray.init`` leaves its node's agents running for a minute or more, which no ``ray.shutdown`` reaches.
    (Only the main thread receives signals; elsewhere the block runs as it is.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: came.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if came:
        raise KeyboardInterrupt


def _connect(ray: ModuleType, address: str | None, workers: int | None) -> None:
    """Start a local Ray instance, or join the cluster at ``address`` (unless this process is connected)."""
    import logging  # noqa: PLC0415

    if ray.is_initialized():
        return
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local instance reports nothing anywhere
            ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address=LOOPBACK, **quiet)
            return
        _reachable(address)
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise BatchUnavailableError(f"could not start or join {where}: {' '.join(str(exc).split())[:300]}") from None


def _reachable(address: str) -> None:
    """A ``host:port`` address answers a TCP connection within ``CONNECT_TIMEOUT`` (Ray itself would keep
    retrying for minutes); ``auto``, ``local`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT) as connection:
            grpc = _speaks_http2(connection)
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or exc})") from None
    if not grpc:  # Ray would retry for minutes against, say, a web server on that port
        raise ConnectionError(f"{address} answers, but not as a Ray cluster does (its GCS speaks gRPC over "
                              "HTTP/2): is it the port `ray start --head` printed?")


def _speaks_http2(connection: socket.socket) -> bool:
    """Whether the server answers HTTP/2's connection preface with a SETTINGS frame, as every gRPC server
    (Ray's GCS) does; an HTTP/1 server answers otherwise or hangs up."""
    connection.settimeout(CONNECT_TIMEOUT)
    connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))  # + empty SETTINGS
    head = b""
    with contextlib.suppress(OSError):
        while len(head) < 9 and (chunk := connection.recv(9 - len(head))):
            head += chunk
    return len(head) == 9 and head[3] == 4  # a frame header whose type is SETTINGS


def _worker_env() -> dict[str, str]:
    """The driver's ``REACT_AGENT_*`` / ``OPENAI_*`` variables, with the store's home and the tools' state
    folder made absolute (a worker's working directory is not the driver's)."""
    from .paths import home  # noqa: PLC0415

    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    env["REACT_AGENT_HOME"] = str(home().resolve())
    if env.get("REACT_AGENT_STATE_DIR"):
        env["REACT_AGENT_STATE_DIR"] = str(Path(env["REACT_AGENT_STATE_DIR"]).resolve())
    return env


def _fan_out(ray: ModuleType, jobs: list[_Job], width: int, on_item: Callable[[BatchItem], None] | None,
             ) -> list[BatchItem]:
    """Keep ``width`` items under way until every item has ended; Ctrl-C cancels the ones under way."""
    remote = ray.remote(num_cpus=1, max_retries=0)(_run_item)
    waiting = list(reversed(jobs))
    running: dict[Any, _Job] = {}
    items: list[BatchItem] = []
    try:
        while waiting or running:
            while waiting and len(running) < width:
                job = waiting.pop()
                running[remote.remote(job)] = job
            done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_SLICE)
            for ref in done:
                item = _collect(ray, ref, running.pop(ref))
                items.append(item)
                if on_item is not None:
                    on_item(item)
    except KeyboardInterrupt:
        for ref in running:
            with contextlib.suppress(Exception):  # already ended or gone: nothing to cancel
                ray.cancel(ref, force=True)
        raise
    return items


def _collect(ray: ModuleType, ref: Any, job: _Job) -> BatchItem:
    """An item's outcome, or what became of it: its worker died, or it raised."""
    try:
        worker, data = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # raised in the item: its own exception, named
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return BatchItem(task=job.task, trial=job.trial, error=f"failed: {type(cause).__name__}: "
                         f"{' '.join(str(cause).split())[:300]}")
    except ray.exceptions.RayError as exc:  # the worker process or its node died
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return BatchItem(task=job.task, trial=job.trial, error=f"the worker died ({type(exc).__name__}: {first[:200]})")
    return BatchItem(task=job.task, trial=job.trial, outcome=TaskOutcome.model_validate(data), worker=worker)


def _run_item(job: _Job) -> tuple[str, dict[str, Any]]:
    """In the worker: one task x trial, as ``run`` / ``eval`` run it; the outcome as JSON (a worker's
    ``output_type`` class need not be importable in the driver)."""
    from rich.console import Console  # noqa: PLC0415

    from .runner import run_one  # noqa: PLC0415

    with _environment(job.env):
        spec = load_task_file(job.task_file)
        task = next(t for t in spec.tasks if t.name == job.task)
        outcome = run_one(spec, task, mode=job.mode, cassettes=Path(job.cassettes) if job.cassettes else None,
                          model=job.model, console=Console(quiet=True), quiet=True,
                          trial=job.trial if job.trials > 1 else None,
                          metadata={"batch_id": job.batch_id, "trial": job.trial})
    return f"{socket.gethostname()}:{os.getpid()}", outcome.model_dump(mode="json")


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """The driver's variables for one item (a worker process runs one item at a time), then its own."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith(PASSED_ENV)]:
            del os.environ[key]
        os.environ.update(saved)


def _find_open_runs(batch_id: str, items: list[BatchItem]) -> None:
    """The runs each item without an outcome left ``running`` in the store (to ``resume``)."""
    lost: dict[tuple[object, object], BatchItem] = {(i.task, i.trial): i for i in items if i.outcome is None}
    if not lost:
        return
    from .stores import open_store  # noqa: PLC0415

    for record in open_store().runs(status="running"):  # not closed: see ``run_batch``
        meta = record.metadata
        if meta.get("batch_id") == batch_id and (item := lost.get((meta.get("task"), meta.get("trial")))):
            item.open_runs.append(record.run_id)


def _report(spec: TaskFile, trials: int, items: list[BatchItem], *, replay: bool = False,
            cassettes: Path | None = None) -> EvalReport:
    cases: list[CaseReport] = []
    all_ms: list[float] = []
    for name in dict.fromkeys(i.task for i in items):
        mine = [i for i in items if i.task == name]
        done = [(i.trial, i.outcome) for i in mine if i.outcome is not None]
        ms = [sum(r.ms for r in o.results) for _, o in done]
        all_ms += ms
        base = case_report(name, [o for _, o in done]) if done else CaseReport(
            case=name, trials=0, passed=0, failures=[], median_ms=0, p95_ms=0, tokens=0, cost_usd=None)
        failures = [f"trial {trial}: {c.name} ({c.detail[:120]})" for trial, o in done for c in o.checks
                    if not c.passed] + [f"trial {i.trial}: {i.error}" for i in mine if i.outcome is None]
        cases.append(base.model_copy(update={
            "trials": len(mine), "failures": failures,
            "could_not_run": [e for i in mine for e in i.could_not_run]}))
    report = suite_report(str(spec.path), trials, cases, all_ms or [0.0])
    return report.model_copy(update={"notes": single_recording_notes(spec, trials, cassettes)}) if replay else report
