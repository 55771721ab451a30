"""kill -9 at every persistence boundary, then resume (react_agent/journal.py's crash-safety rules).

Each case runs ``tests/crash_worker.py`` in a real subprocess that sends itself SIGKILL at a named crash
point (``REACT_AGENT_CRASH_AT``, react_agent/faults.py), reads the store back from this process, and
resumes the run in a fresh subprocess (killed again, for the chained cases). After every kill:

1. the run ends ``completed`` with the model's answer;
2. no finished call runs again: a call with a journaled result gets no new ``done`` line; a call with side
   effects starts at most once, only after it was journaled as started, and one that was started but had
   no result is answered "interrupted" (its outcome is unknown), while an idempotent one runs again;
3. no message is lost: what was on disk at the kill is still in the final history, in order;
4. the history is valid, and every call has exactly one result entry in the log;
5. the store is sound: SQLite's ``integrity_check`` says ``ok``, and every entry in the database is read.

60 kills in 50 cases: 112 processes, about 25 s of CPU, run two at a time (the time is printed). The same
checks run on ``PostgresStore`` (a real server, tests/conftest.py ``pg_server``, a fresh schema per case) for
every crash point's first hit, every kill inside a commit and one chain per variant (the ``pg-`` cases); there
"sound" means every commit row follows the one before without a gap and the session's ``next_seq`` is where the
last one ends (a killed transaction left none of its rows, and none of its numbers, behind).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import history_problems, pg_schema_url

from react_agent.faults import POINTS
from react_agent.history import Folded, fold
from react_agent.stores import DiskStore, PostgresStore

WORKER = Path(__file__).with_name("crash_worker.py")
SESSION, RUN_ID, ANSWER = "crash", "crash-run", "All done."
QUESTION = {"role": "user", "content": "Charge order 0, then look up, charge and notify in one go."}
SIDE_EFFECTS = {"charge", "notify"}

# How often a run reaches each crash point (checked against a dry run below). Turns: a lone call of
# ``charge``; ``lookup``, ``charge`` and ``notify`` at once; the final answer (in B a ``final_answer`` turn).
# ``lookup`` is idempotent: its result has no commit of its own (no ``result:after``), it rides on the next
# one — the end in A, the ``started`` of the sequential ``notify`` in B.
HITS = {
    "A": {"start:before": 1, "start:after": 1, "turn:before": 2, "turn:after": 2, "tool:returned": 4,
          "result:after": 3, "end:before": 1, "end:after": 1, "write:inside": 7},
    "B": {"start:before": 1, "start:after": 1, "turn:before": 3, "turn:after": 3, "tool:returned": 4,
          "result:after": 3, "end:before": 1, "end:after": 1, "write:inside": 9},
}
# Inside a commit (every commit passes there): the start, the first turn, a result, and the end (in A
# after ``lookup``'s deferred result, its first entry).
INSIDE = {"A": (1, 2, 5, 7), "B": (1, 2, 5, 9)}
# Kills of the resume as well: (the run's crash, the first resume's crash). Each second point is reached
# whatever the thread timing (in B, tool:returned:4 is the sequential ``notify``, which runs last).
CHAINS = {
    "A": [("start:after:1", "turn:after:1"),     # the resume's first turn
          ("turn:after:1", "turn:after:1"),      # lone call given up, then the parallel turn journaled
          ("turn:after:2", "tool:returned:1"),   # only ``lookup`` runs again, and dies unjournaled
          ("result:after:1", "result:after:1"),
          ("end:before:1", "end:before:1")],     # the final answer asked for three times
    "B": [("start:before:1", "start:after:1"),   # nothing on disk: the run starts over
          ("turn:after:2", "tool:returned:1"),   # ``lookup`` again; ``notify`` was never started
          ("tool:returned:4", "result:after:1"),  # dies right after answering ``notify`` "interrupted"
          ("turn:before:3", "turn:after:1"),     # the final-answer turn journaled by the resume
          ("turn:after:3", "end:before:1")],     # the journaled final answer, not yet the end
}


@dataclass(frozen=True)
class Case:
    variant: str
    kills: tuple[str, ...]  # the crash point of each process but the last, e.g. ("turn:after:2",)
    backend: str = "disk"  # or "postgres"

    @property
    def name(self) -> str:
        return f"{'pg-' if self.backend == 'postgres' else ''}{self.variant}-{'+'.join(self.kills)}"


CASES = [Case(variant, (f"{point}:{n}",)) for variant, hits in HITS.items()
         for point, count in hits.items()
         for n in (INSIDE[variant] if point == "write:inside" else range(1, count + 1))]
CASES += [Case(variant, chain) for variant, chains in CHAINS.items() for chain in chains]
# On Postgres: each point's first hit, every kill inside a commit, and each variant's first chain
CASES += [Case(variant, (f"{point}:{n}",), "postgres") for variant, hits in HITS.items() for point in hits
          for n in (INSIDE[variant] if point == "write:inside" else (1,))]
CASES += [Case(variant, chains[0], "postgres") for variant, chains in CHAINS.items()]


@dataclass
class Stored:
    """The store and the tools' log as a process left them."""

    entries: list[dict[str, Any]]
    status: str | None
    output: Any
    steps: int | None
    integrity: str
    keys: int  # entries of the session in the database (``entries`` stops at a gap)
    log: Counter[str]

    @property
    def folded(self) -> Folded:
        return fold(self.entries)


@dataclass
class Played:
    returncodes: list[int] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    snapshots: list[Stored] = field(default_factory=list)  # after each kill
    final: Stored | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def spawn(phase: str, folder: Path, variant: str, crash: str | None,
          url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACT_AGENT_", "OPENAI_"))}
    env.update(REACT_AGENT_HOME=str(folder / "home"), REACT_AGENT_STATE_DIR=str(folder / "state"))
    if crash:
        env["REACT_AGENT_CRASH_AT"] = crash
    argv = [sys.executable, str(WORKER), phase, url or str(folder / "store"), str(folder / "tools.log"), variant]
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False)


def pg_soundness(url: str) -> tuple[str, int]:
    """``("ok", entries)`` when the session's commit rows follow each other without a gap and its
    ``next_seq`` is where the last one ends; else what is wrong."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT seq, count, json_array_length(entries) FROM react_agent_entries "
                          "WHERE session = %s ORDER BY seq", (SESSION,)).fetchall()
        ends = db.execute("SELECT next_seq FROM react_agent_sessions WHERE id = %s", (SESSION,)).fetchall()
    end = 0
    for seq, count, length in rows:
        if (seq, count) != (end, length):
            return f"row {seq} ({count} entries, {length} stored) after entry {end}", end
        end += count
    if ends != ([(end,)] if rows or ends else []):
        return f"next_seq {ends} where the log ends at {end}", end
    return "ok", end


def read(folder: Path, url: str | None = None) -> Stored:
    store = DiskStore(folder / "store") if url is None else PostgresStore(url)
    try:
        entries = store.entries(SESSION)
        record = store.run(RUN_ID)
    finally:
        store.close()
    if url is not None:
        integrity, keys = pg_soundness(url)
    else:
        with closing(sqlite3.connect(folder / "store" / "cache.db")) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            rows = db.execute("SELECT value FROM Cache WHERE key LIKE ?", (f"e:{SESSION}:%",)).fetchall()
            keys = sum(len(json.loads(bytes(value))) for value, in rows)  # each row: one commit's entries
    log = folder / "tools.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Stored(entries, record and record.status, record and record.output, record and record.steps,
                  integrity, keys, Counter(lines))


def play(case: Case, folder: Path, url: str | None = None) -> Played:
    """Kill the run (and its resumes) at ``case.kills``, then resume it to the end (on the Postgres store
    at ``url`` when given)."""
    played = Played()
    for n, crash in enumerate([*case.kills, None]):
        done = spawn("run" if n == 0 else "resume", folder, case.variant, crash, url)
        played.returncodes.append(done.returncode)
        played.stderr.append(done.stderr[-3000:])
        if crash is None:
            played.final = read(folder, url)
            played.summary = json.loads(done.stdout.splitlines()[-1]) if done.returncode == 0 else {}
        else:
            played.snapshots.append(read(folder, url))
    return played


@pytest.fixture(scope="module")
def played(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[Case, Played]:
    """Every selected case, two at a time (each case is a few processes in a row)."""
    wanted = [item.callspec.params["case"] for item in request.session.items
              if getattr(item, "originalname", None) == "test_kill"]
    server = request.getfixturevalue("pg_server") if any(c.backend == "postgres" for c in wanted) else ""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(play, case, tmp_path_factory.mktemp(case.name.replace(":", "_")),
                                     pg_schema_url(server) if case.backend == "postgres" else None)
                   for case in dict.fromkeys(wanted)}
        results = {case: future.result() for case, future in futures.items()}
    seconds = time.perf_counter() - started
    kills = sum(len(case.kills) for case in results)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\ntest_crash: {kills} kills in {len(results)} cases, {seconds:.1f} s")
    return results


@pytest.fixture(scope="module")
def reached(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, int]]:
    """How often a run without a crash reaches each point, per variant."""
    found = {}
    for variant in HITS:
        done = spawn("count", tmp_path_factory.mktemp(f"count-{variant}"), variant, None, None)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.splitlines()[-1])
        assert (summary["status"], summary["output"]) == ("completed", ANSWER)
        found[variant] = summary["hits"]
    return found


def test_the_matrix_is_big_enough() -> None:
    assert sum(len(case.kills) for case in CASES) >= 40


@pytest.mark.parametrize("variant", HITS)
def test_hits_match_a_dry_run(variant: str, reached: dict[str, dict[str, int]]) -> None:
    """``HITS`` is what a run reaches: every kill below is a real one, and none is left out."""
    assert reached[variant] == HITS[variant]


def test_every_crash_point_is_reached(reached: dict[str, dict[str, int]]) -> None:
    assert set(POINTS) - set(reached["A"]) - set(reached["B"]) == set()


def call_key(call: dict[str, Any]) -> str:
    """How the call shows in the tools' log: ``<tool> <its one argument>``."""
    (value,) = json.loads(call["function"]["arguments"]).values()
    return f"{call['function']['name']} {value}"


def answer_counts(entries: list[dict[str, Any]]) -> Counter[tuple[int, int]]:
    """How many outcomes the log holds for each call (turn seq, index), in turn and result entries."""
    counts: Counter[tuple[int, int]] = Counter()
    for entry in entries:
        body = entry.get("turn") if entry["kind"] == "end" else entry
        if entry["kind"] in ("turn", "end") and body:
            counts.update((entry["seq"], int(i)) for i, _ in body.get("answered") or ())
        elif entry["kind"] == "result":
            counts[(int(entry["turn"]), int(entry["index"]))] += 1
    return counts


def is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


def calls(folded: Folded) -> list[tuple[Any, int, dict[str, Any]]]:
    """Every tool call of the log (answer-tool calls aside), with its turn and index."""
    return [(turn, i, call) for turn in folded.turns for i, call in enumerate(turn.calls)
            if call["function"]["name"] != "final_answer"]


def check_finished_calls_stay_finished(snapshot: Stored, final: Stored, last: bool) -> None:
    """What the calls journaled at the kill became: a call with a result kept it and did not run again; a
    call with side effects was journaled as started before it started, and was given up if it had been
    started; anything else (an idempotent call, a call never started) ran after the kill."""
    outcome = {call["id"]: turn.results[i] for turn, i, call in calls(final.folded)}
    tool_messages = {m["tool_call_id"]: m["content"] for m in final.folded.history if m["role"] == "tool"}
    for turn, i, call in calls(snapshot.folded):
        key, result = call_key(call), turn.results.get(i)
        ran_before, ran_after = snapshot.log[f"done {key}"], final.log[f"done {key}"] - snapshot.log[f"done {key}"]
        if result is not None:
            assert (outcome[call["id"]], ran_after) == (result, 0), f"{key} ran again"
        elif call["function"]["name"] in SIDE_EFFECTS and i in turn.started:
            assert outcome[call["id"]]["kind"] == "interrupted", key
            assert "outcome is unknown" in tool_messages[call["id"]], key  # what the model is told
            assert final.log[f"start {key}"] == snapshot.log[f"start {key}"], f"{key} ran again"
        elif call["function"]["name"] in SIDE_EFFECTS:
            assert snapshot.log[f"start {key}"] == 0, f"{key} started before it was journaled as started"
            if last:  # (after an earlier kill, a later process may start it and die)
                assert (outcome[call["id"]]["kind"], ran_after) == ("ok", 1), key
        else:
            assert outcome[call["id"]]["kind"] == "ok" and ran_after >= 1, (key, ran_before)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_kill(case: Case, played: dict[Case, Played]) -> None:
    run = played[case]
    assert run.returncodes == [-9] * len(case.kills) + [0], run.stderr  # really killed, then resumed
    final = run.final
    assert final is not None
    folded = final.folded

    # 1. completed, with the answer (a kill after the end's commit leaves nothing to resume)
    assert (final.status, final.output, final.steps) == ("completed", ANSWER, 3)
    if run.snapshots[-1].status == "completed":
        assert "already ended with status 'completed'" in run.summary["ended"]
    else:
        assert (run.summary["status"], run.summary["output"], run.summary["steps"]) == ("completed", ANSWER, 3)

    for snapshot in run.snapshots:
        before = snapshot.folded
        assert before.history[:1] == ([QUESTION] if snapshot.status else [])  # one commit: record, question
        # 2. no finished call runs again
        check_finished_calls_stay_finished(snapshot, final, last=snapshot is run.snapshots[-1])
        # 3. nothing on disk at the kill is lost, and the conversation goes on from where it stopped
        assert is_subsequence(before.history, folded.history)
        said = [m for m in before.history if m["role"] != "tool"]
        assert said == [m for m in folded.history if m["role"] != "tool"][:len(said)]
        # 5. each kill left a sound store
        assert (snapshot.integrity, snapshot.keys) == ("ok", len(snapshot.entries))

    for turn, i, call in calls(folded):  # a call with side effects ran at most once, a successful one once
        key, kind = call_key(call), turn.results[i]["kind"]
        if call["function"]["name"] in SIDE_EFFECTS:
            assert final.log[f"start {key}"] <= 1, key
            assert kind != "ok" or final.log[f"done {key}"] == 1, key
        else:
            assert kind == "ok", key  # an idempotent call is never given up

    # 4. a valid history: the question, three turns, one tool message and one result entry per call
    assert folded.history[0] == QUESTION
    assert history_problems(folded.history) == []
    roles = ["user", "assistant", "tool", "assistant", "tool", "tool", "tool", "assistant"]
    assert [m["role"] for m in folded.history] == roles + (["tool"] if case.variant == "B" else [])
    every_call = {(turn.seq, i) for turn in folded.turns for i in range(len(turn.calls))}
    assert answer_counts(final.entries) == Counter(dict.fromkeys(every_call, 1))
    # 5. a sound store at the end
    assert (final.integrity, final.keys) == ("ok", len(final.entries))
