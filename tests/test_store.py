"""The store contract, run on every backend, and what the disk backend promises besides: JSON only
(a planted pickle is reported, never loaded), a private folder, few SQLite statements per step."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from react_agent import Agent, Approve, tool
from react_agent.cli import main
from react_agent.errors import StoreCorruptError
from react_agent.history import fold
from react_agent.paths import default_store_path
from react_agent.stores import DiskStore, MemoryStore, PostgresStore, RunRecord, SessionInfo, Store
from react_agent.testing import ScriptedModel, reply, tool_call

BACKENDS = ["disk", "memory", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Store:
    if request.param == "postgres":  # a real server (tests/conftest.py: pg_server), a fresh schema per test
        store = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        store = DiskStore(tmp_path / "store") if request.param == "disk" else MemoryStore()
    yield store
    store.close()


def say(text: str, role: str = "user") -> dict:
    return {"role": role, "content": text}


# -- the contract ---------------------------------------------------------------------------------
def test_entries_are_appended_in_order_with_their_numbers(backend):
    assert backend.write("s1", [{"kind": "messages", "messages": [say("a")]}]) == 0
    assert backend.write("s1", [{"kind": "messages", "messages": [say("b")]},
                                {"kind": "messages", "messages": [say("c")]}]) == 1
    assert [e["seq"] for e in backend.entries("s1")] == [0, 1, 2]
    assert [e["seq"] for e in backend.entries("s1", start=2)] == [2]
    assert backend.messages("s1") == [say("a"), say("b"), say("c")]


def test_a_write_creates_the_session_once_and_keeps_it(backend):
    backend.create_session("s1", user_id="ann", agent="helper")
    backend.create_session("s1", user_id="bob")
    backend.append("s1", say("hi"))
    info = backend.session_info("s1")
    assert (info.id, info.user_id, info.agent) == ("s1", "ann", "helper")
    assert backend.exists("s1") and not backend.exists("s2")
    assert backend.session("s1").messages() == [say("hi")]


def test_sessions_are_listed_by_user_oldest_first(backend):
    for sid, user in [("a1", "ann"), ("b1", "bob"), ("a2", "ann")]:
        backend.write(sid, [], info=SessionInfo(sid, user))
    assert [s.id for s in backend.sessions(user_id="ann")] == ["a1", "a2"]
    assert [s.id for s in backend.sessions()] == ["a1", "b1", "a2"]
    assert backend.sessions(user_id="nobody") == []


def test_run_records_go_with_their_entries_and_are_listed(backend):
    first = RunRecord(run_id="r1", session="s1", agent="a", user_id="ann")
    backend.write("s1", [{"run": "r1", "kind": "start", "messages": [say("q")]}], runs=[first])
    backend.write("s2", [{"run": "r2", "kind": "start", "messages": []}],
                  runs=[RunRecord(run_id="r2", session="s2", agent="a", status="awaiting_approval")])
    backend.write("s1", [{"run": "r1", "kind": "end"}], runs=[first.model_copy(update={"status": "completed"})])
    assert backend.run("r1").status == "completed"
    assert backend.run("missing") is None
    assert [r.run_id for r in backend.runs()] == ["r1", "r2"]
    assert [r.run_id for r in backend.runs(session="s1")] == ["r1"]
    assert [r.run_id for r in backend.runs(status="awaiting_approval")] == ["r2"]
    assert [r.run_id for r in backend.runs(user_id="ann")] == ["r1"]


def test_delete_session_removes_its_log_and_runs_only(backend):
    backend.write("s1", [{"run": "r1", "kind": "start", "messages": [say("q")]}],
                  runs=[RunRecord(run_id="r1", session="s1", agent="a")])
    backend.append("s2", say("keep me"))
    assert backend.session("s1").delete() is True
    assert not backend.exists("s1") and backend.entries("s1") == [] and backend.run("r1") is None
    assert backend.runs() == [] and [s.id for s in backend.sessions()] == ["s2"]
    assert backend.messages("s2") == [say("keep me")]
    assert backend.delete_session("s1") is False
    backend.append("s1", say("a new s1"))  # the id can be used again, from entry 0
    assert [e["seq"] for e in backend.entries("s1")] == [0]


def test_parallel_writers_never_overwrite_each_other(backend, tmp_path):
    other = (DiskStore(backend.path) if isinstance(backend, DiskStore) else  # a second process' view
             PostgresStore(backend._url) if isinstance(backend, PostgresStore) else backend)
    backend.append("s1", say("0"))
    other.append("s1", say("1"))  # other's idea of the end is fresh; backend's is stale now
    backend.append("s1", say("2"))

    def many(store: Store, tag: str) -> None:
        for i in range(20):
            store.append("s1", say(f"{tag}{i}"))

    threads = [threading.Thread(target=many, args=(s, t)) for s, t in [(backend, "x"), (other, "y")]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = [m["content"] for m in backend.messages("s1")]
    assert contents[:3] == ["0", "1", "2"] and len(contents) == 43 and len(set(contents)) == 43
    assert [e["seq"] for e in other.entries("s1")] == list(range(43))
    if other is not backend:
        other.close()


# -- the disk backend -----------------------------------------------------------------------------
def test_the_store_folder_is_private_whatever_the_umask(tmp_path):
    (tmp_path / "there").mkdir(mode=0o755)
    tmp_path = tmp_path / "there"
    old = os.umask(0)
    try:
        store = DiskStore(tmp_path / "deep" / "store")
        store.append("s1", say("secret"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "deep" / "store").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700, "a parent it made ($REACT_AGENT_HOME) too"
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755, "a folder that was there keeps its mode"
    files = [p for p in (tmp_path / "deep" / "store").iterdir() if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files
    store.close()


def test_values_are_json_in_the_database(store):
    store.append("s1", say("hello"))
    rows = sqlite3.connect(store.path / "cache.db").execute("SELECT key, mode, value FROM Cache").fetchall()
    assert rows and all(mode == 1 for _, mode, _ in rows)  # inline, never pickled (mode 4) or in side files
    assert b'{"role":"user","content":"hello"}' in b"".join(bytes(v) for _, _, v in rows if isinstance(v, bytes))


class Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("mode", [4, 2])  # a pickle in the row, a value in a side file
def test_a_planted_value_is_reported_never_loaded(tmp_path, monkeypatch, capsys, mode):
    monkeypatch.chdir(tmp_path)
    store = DiskStore(default_store_path())
    store.create_session("s1", user_id="ann")
    store.close()
    database = sqlite3.connect(default_store_path() / "cache.db")
    if mode == 4:
        database.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = 'si:0'", (pickle.dumps(Boom()),))
    else:
        database.execute("UPDATE Cache SET mode = 2, filename = 'x.val', value = NULL WHERE key = 'si:0'")
    database.commit()
    database.close()
    assert main(["sessions", "list"]) == 2
    err = capsys.readouterr().err
    assert "holds a value stored in mode" in err and "not loaded" in err and err.count("\n") == 1
    assert not (tmp_path / "PWNED").exists()


def test_a_value_that_is_not_json_is_reported(store):
    store.append("s1", say("x"))
    database = sqlite3.connect(store.path / "cache.db")
    database.execute("UPDATE Cache SET value = ? WHERE key = 'e:s1:0'", (b"\x80not json",))
    database.commit()
    with pytest.raises(StoreCorruptError, match="not JSON"):
        DiskStore(store.path).entries("s1")


START = {"kind": "start", "run": "r1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("value", [
    [START, {"kind": "turn"}],  # a turn without its message
    [{"kind": "start", "run": "r1", "messages": "notalist"}],
    [START, {"kind": "turn", "run": "r1", "message": {"role": "assistant", "tool_calls": [{"id": 1}]}}],
    [START, {"kind": "result", "run": "r1", "turn": 1, "index": 0, "outcome": "ok"}],
    [START, {"kind": "turn", "run": "r1", "message": {"role": "assistant", "content": "x"}},
     {"kind": "started", "run": "r1", "turn": 1, "calls": ["x"]}],
    [START, {"kind": "turn", "run": "r1", "message": {"role": "assistant", "content": "x"}},
     {"kind": "waiting", "run": "r1", "turn": 1, "index": 0}],
])
@pytest.mark.parametrize("argv", [["sessions", "list"], ["sessions", "show", "s1"], ["show", "r1"]])
def test_an_entry_the_journal_did_not_write_is_reported_in_one_line(tmp_path, monkeypatch, capsys, value, argv):
    """Valid JSON of the wrong shape (a hand-edited or hostile row) was a traceback (KeyError, AttributeError)."""
    monkeypatch.chdir(tmp_path)
    store = DiskStore(default_store_path())
    store.write("s1", [{"kind": "start", "run": "r1", "messages": [say("hi")]},
                       {"kind": "turn", "run": "r1", "message": {"role": "assistant", "content": "hello"}}],
                runs=[RunRecord(run_id="r1", session="s1", agent="a")])
    store.close()
    database = sqlite3.connect(default_store_path() / "cache.db")
    database.execute("UPDATE Cache SET value = ? WHERE key = 'e:s1:0'", (json.dumps(value).encode(),))
    database.commit()
    database.close()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the store holds a session log entry it did not write") and err.count("\n") == 1, err
    with pytest.raises(StoreCorruptError):
        Agent(model=ScriptedModel([reply("x")]), store=DiskStore(default_store_path())).run_sync("again", session="s1")


def test_a_tool_step_costs_one_commit_of_four_statements(store, monkeypatch):
    """The journal's cost per step with one quick call that is safe to repeat: one commit — the turn
    (before the tool starts), carrying the previous call's result — of one row: BEGIN, SELECT, INSERT,
    COMMIT. Measured as the difference between a run of 12 tool steps and one of 2, so what a run costs
    once (its start and end) cancels out."""

    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    statements: list[str] = []
    original = sqlite3.connect

    def traced(*args, **kwargs):  # every thread's connection (sync tools write from their own)
        made = original(*args, **kwargs)
        made.set_trace_callback(statements.append)
        return made

    monkeypatch.setattr(sqlite3, "connect", traced)

    def count(steps: int, session: str) -> int:
        script = [tool_call("echo", {"text": str(i)}) for i in range(steps)] + [reply("done")]
        agent = Agent(tools=[echo], store=store, max_steps=20, model=ScriptedModel(script))
        statements.clear()
        assert agent.run_sync("go", session=session).status == "completed"
        issued = [s for i, s in enumerate(statements) if i == 0 or s != statements[i - 1]]  # not trigger echoes
        return len([s for s in issued if not s.startswith(("PRAGMA", "SELECT key, value FROM Settings"))])

    count(1, "warm-up")
    per_step = (count(12, "long") - count(2, "short")) / 10
    print(f"SQLite statements per tool step: {per_step:.1f}")
    assert per_step == 4, per_step


def test_fold_reads_back_what_the_loop_ran(backend):
    store = backend
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    agent = Agent(tools=[add], store=store, model=ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")]))
    result = agent.run_sync("1+2?", session="s1")
    folded = fold(store.entries("s1"))
    assert [s.model_dump(exclude={"ms"}) for s in folded.steps(result.run_id)] == [
        s.model_dump(exclude={"ms"}) for s in result.steps]
    assert folded.history == store.messages("s1")
    record = store.run(result.run_id)
    assert (record.status, record.output, record.steps, record.usage["requests"]) == ("completed", "3", 2, 2)


def test_the_store_lives_under_react_agent_home(tmp_path):
    assert default_store_path() == tmp_path / "home" / "store"
    assert DiskStore().path == Path(tmp_path / "home" / "store")


def test_threads_sharing_one_unopened_store_do_not_lock_each_other_out(tmp_path):
    """50 threads calling run_sync on one agent whose store nobody opened yet (the run_sync bench row):
    the store is opened once, and every run completes. Two Cache objects initializing one database
    at the same moment used to spin on 'database is locked' for a minute."""

    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    def script(request):
        done = sum(1 for m in request.messages if m["role"] == "tool")
        return tool_call("echo", {"text": str(done)}) if done < 3 else reply("done")

    agent = Agent(tools=[echo], store=DiskStore(tmp_path / "fresh"), model=ScriptedModel([script] * 200))
    statuses: list[str] = []
    threads = [threading.Thread(target=lambda: statuses.append(agent.run_sync("go").status), daemon=True)
               for _ in range(50)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "runs hung on the store"
    assert statuses == ["completed"] * 50
    agent.close()


def test_a_commit_that_rolls_back_leaves_no_gap(store, monkeypatch):
    """A commit that fails after its rows went in (a COMMIT error) is rolled back whole; the next commit
    takes its place, so the log has no gap for ``entries`` to stop at."""
    store.append("s1", say("one"))
    real = DiskStore._write

    def failing(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise OSError("disk I/O error")

    monkeypatch.setattr(DiskStore, "_write", failing)
    with pytest.raises(OSError):
        store.append("s1", say("lost"))
    monkeypatch.undo()
    store.append("s1", say("two"))
    assert [m["content"] for m in DiskStore(store.path).messages("s1")] == ["one", "two"]


def test_a_run_on_a_memory_store_leaves_nothing_on_disk_and_resumes_in_process(tmp_path, monkeypatch):
    """The journal's rules hold on MemoryStore while the process lives: a run paused for approval goes
    on with the decision, its finished call is not run again, and no store folder is ever made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REACT_AGENT_HOME", str(tmp_path / "home"))
    ran: list[str] = []

    @tool
    def look(key: str) -> str:
        """Look a key up."""
        ran.append(f"look {key}")
        return key.upper()

    @tool(requires_approval=True)
    def pay(amount: int) -> str:
        """Pay an amount."""
        ran.append(f"pay {amount}")
        return "paid"

    store = MemoryStore()
    script = [tool_call("look", {"key": "a"}), tool_call("pay", {"amount": 5}), reply("done")]
    agent = Agent(tools=[look, pay], store=store, model=ScriptedModel(script))
    paused = agent.run_sync("go", session="s1")
    assert paused.status == "awaiting_approval" and store.run(paused.run_id).status == "awaiting_approval"
    (waiting,) = paused.pending
    done = asyncio.run(agent.resume(paused.run_id, {waiting.call_id: Approve()}))
    assert (done.status, done.output) == ("completed", "done")
    assert ran == ["look a", "pay 5"]
    assert [m["role"] for m in store.messages("s1")] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert list(tmp_path.iterdir()) == []
    agent.close()


def test_a_store_written_one_entry_per_key_reads_on_and_grows(store):
    """Stores from before commits were rows hold one entry (a JSON object) per key: they read the same,
    and new commits go after them."""
    store.cache.set("s:old", {"id": "old", "user_id": None, "agent": None, "created": 1.0})
    for n, text in enumerate(["a", "b"]):
        store.cache.set(f"e:old:{n}", {"kind": "messages", "run": None, "messages": [say(text)]})
    store.cache.set("h:old", 2)
    fresh = DiskStore(store.path)  # knows nothing of this session's end yet
    fresh.append("old", say("c"))
    assert [m["content"] for m in DiskStore(store.path).messages("old")] == ["a", "b", "c"]
    assert [e["seq"] for e in fresh.entries("old")] == [0, 1, 2]
