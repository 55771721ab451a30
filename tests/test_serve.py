"""The HTTP server over real HTTP: uvicorn on a loopback port in a thread, an httpx client, SSE parsed
by httpx-sse. Agents run on ``ScriptedModel``; a "gate" tool holds a run mid-step until the test opens
it, so disconnects, reconnects, cancels and restarts happen at a known point."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import ROOT, history_problems
from httpx_sse import connect_sse

from react_agent import Agent, tool
from react_agent.acting import EDITED_NOTE
from react_agent.errors import UserError
from react_agent.router import Router, classifier_agent
from react_agent.serve import create_app
from react_agent.stores import DiskStore
from react_agent.testing import ScriptedModel, reply, tool_call
from react_agent.tools import Tool

pytestmark = pytest.mark.block_network(allowed_hosts=["127.0.0.1"])

KEYS = {"alice-key": "alice", "bob-key": "bob"}
EVENTS = {"run_start", "text_delta", "tool_start", "tool_end", "step_end", "run_end"}


class Served:
    """A uvicorn server for ``app`` on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        wait_until(lambda: self.server.started, what="the server to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the server did not stop"
        self.sock.close()

    def client(self, key: str | None = "alice-key") -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def wait_until(check: Callable[[], Any], *, what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def gate_tool(gate: threading.Event) -> Tool:
    """A tool that returns once ``gate`` is set (polling, so cancelling its task stops it at once)."""

    @tool
    async def wait_for_gate(name: str) -> str:
        """Wait until the gate opens.

        Args:
            name: who is waiting.
        """
        while not gate.is_set():
            await asyncio.sleep(0.005)
        return f"gate passed by {name}"

    return wait_for_gate


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: first number.
        b: second number.
    """
    return a + b


@tool(requires_approval=True, side_effects=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an order.

    Args:
        order_id: the order.
        amount: how much, in dollars.
    """
    return f"refunded {amount} on {order_id}"


def adder(store: Any, *script: Any) -> Agent:
    return Agent(name="adder", tools=[add], store=store,
                 model=ScriptedModel(list(script) or [tool_call("add", {"a": 2, "b": 3}), reply("The sum is 5.")]))


def gated(store: Any, gate: threading.Event, *script: Any) -> Agent:
    return Agent(name="gated", tools=[gate_tool(gate)], store=store,
                 model=ScriptedModel(list(script) or [tool_call("wait_for_gate", {"name": "x"}), reply("done")]))


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    opened = threading.Event()
    yield opened
    opened.set()  # never leave a tool polling


def sse_events(client: httpx.Client, method: str, url: str, **kwargs: Any) -> list[Any]:
    """Every event of a stream (keep-alive pings dropped)."""
    with connect_sse(client, method, url, **kwargs) as source:
        assert source.response.status_code == 200, source.response.read()
        return [e for e in source.iter_sse() if e.event in EVENTS]


def ids(events: list[Any]) -> list[int]:
    return [int(e.id) for e in events]


# -- runs ---------------------------------------------------------------------------------------------
def test_a_run_not_streamed_answers_its_result(store: Any) -> None:
    with Served(create_app({"adder": adder(store)}, store, KEYS)) as served, served.client() as http:
        answer = http.post("/v1/agents/adder/runs", json={"input": "2 + 3?", "session": "alice-1"})
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["status"] == "completed" and result["output"] == "The sum is 5."
        assert [a["name"] for s in result["steps"] for a in s["actions"]] == ["add"]
        assert result["steps"][0]["observations"][0]["content"] == "5"

        got = http.get(f"/v1/runs/{result['run_id']}").json()
        assert (got["status"], got["output"], got["live"], got["input"]) == ("completed", "The sum is 5.", False,
                                                                             "2 + 3?")
        assert store.run(result["run_id"]).user_id == "alice"
        assert store.session_info("alice-1").user_id == "alice"
        assert [s["id"] for s in http.get("/v1/sessions").json()] == ["alice-1"]
        detail = http.get("/v1/sessions/alice-1").json()
        assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert http.get("/healthz").json()["status"] == "ok"


def test_a_streamed_run_sends_the_loop_events_with_increasing_ids(store: Any) -> None:
    with Served(create_app({"adder": adder(store)}, store, KEYS)) as served, served.client() as http:
        events = sse_events(http, "POST", "/v1/agents/adder/runs", json={"input": "2 + 3?", "stream": True})
        kinds = [e.event for e in events]
        assert kinds[0] == "run_start" and kinds[-1] == "run_end"
        assert kinds.count("step_end") == 2 and "tool_start" in kinds and "tool_end" in kinds
        assert "".join(e.json()["text"] for e in events if e.event == "text_delta") == "The sum is 5."
        assert ids(events) == list(range(1, len(events) + 1))
        end = events[-1].json()
        assert end["result"]["status"] == "completed" and end["result"]["output"] == "The sum is 5."
        assert {e.json()["run_id"] for e in events} == {end["result"]["run_id"]}

        replayed = sse_events(http, "GET", f"/v1/runs/{end['result']['run_id']}/events")
        assert [(e.id, e.event, e.data) for e in replayed] == [(e.id, e.event, e.data) for e in events]


def test_a_dropped_stream_resumes_with_last_event_id_without_loss_or_repeat(store: Any, gate: threading.Event
                                                                             ) -> None:
    with Served(create_app({"gated": gated(store, gate)}, store, KEYS)) as served, served.client() as http:
        seen = []
        with connect_sse(http, "POST", "/v1/agents/gated/runs", json={"input": "go", "stream": True}) as source:
            for event in source.iter_sse():
                if event.event in EVENTS:
                    seen.append(event)
                if event.event == "tool_start":
                    break  # the connection drops here, mid-run
        run_id = seen[0].json()["run_id"]
        gate.set()
        with connect_sse(http, "GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": seen[-1].id}) as source:
            rest = [e for e in source.iter_sse() if e.event in EVENTS]
        assert rest[-1].event == "run_end" and rest[-1].json()["result"]["status"] == "completed"
        everything = sse_events(http, "GET", f"/v1/runs/{run_id}/events")
        assert ids(seen + rest) == list(range(1, len(everything) + 1))
        assert [e.data for e in seen + rest] == [e.data for e in everything]
        assert [e.data for e in sse_events(http, "GET", f"/v1/runs/{run_id}/events?after=2")] == \
               [e.data for e in everything[2:]]
        assert http.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "x"}).status_code == 422


def test_a_client_that_disconnects_does_not_end_its_run(store: Any, gate: threading.Event) -> None:
    with Served(create_app({"gated": gated(store, gate)}, store, KEYS)) as served, served.client() as http:
        with connect_sse(http, "POST", "/v1/agents/gated/runs",
                         json={"input": "go", "stream": True, "session": "s1"}) as source:
            first = next(e for e in source.iter_sse() if e.event == "run_start")
        run_id = first.json()["run_id"]
        assert http.get(f"/v1/runs/{run_id}").json()["live"] is True
        busy = http.post("/v1/agents/gated/runs", json={"input": "me too", "session": "s1"})
        assert busy.status_code == 409 and run_id in busy.json()["detail"]  # one run at a time on a session
        assert http.delete("/v1/sessions/s1").status_code == 409
        gate.set()
        done = wait_until(lambda: (r := http.get(f"/v1/runs/{run_id}").json())["status"] == "completed" and r,
                          what="the run to complete")
        assert done["output"] == "done" and done["live"] is False
        assert store.run(run_id).status == "completed"
        messages = store.messages("s1")
        assert history_problems(messages) == [] and messages[2]["content"] == "gate passed by x"


def test_cancel_ends_a_run_closed_with_a_valid_history(store: Any, gate: threading.Event) -> None:
    agent = gated(store, gate, tool_call("wait_for_gate", {"name": "x"}), reply("later"))
    with Served(create_app({"gated": agent}, store, KEYS)) as served, served.client() as http:
        with connect_sse(http, "POST", "/v1/agents/gated/runs",
                         json={"input": "go", "stream": True, "session": "s1"}) as source:
            run_id = next(e for e in source.iter_sse() if e.event == "tool_start").json()["run_id"]
        assert http.post(f"/v1/runs/{run_id}/cancel", headers={"Authorization": "Bearer bob-key"}).status_code == 404
        cancelled = http.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["live"]) == ("cancelled", False)
        assert store.run(run_id).status == "cancelled"
        messages = store.messages("s1")
        assert history_problems(messages) == []
        assert messages[-1]["role"] == "tool" and "ended (cancelled)" in messages[-1]["content"]
        events = sse_events(http, "GET", f"/v1/runs/{run_id}/events")
        assert events[-1].event == "run_end" and events[-1].json()["result"]["status"] == "cancelled"
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 409  # nothing left to cancel
        gate.set()
        again = http.post("/v1/agents/gated/runs", json={"input": "and now?", "session": "s1"}).json()
        assert again["status"] == "completed" and again["output"] == "later"
        assert history_problems(store.messages("s1")) == []


def test_approval_over_http_pauses_then_continues(store: Any) -> None:
    model = ScriptedModel([tool_call("refund", {"order_id": "1003", "amount": 500}), reply("Refunded 136.49.")])
    agent = Agent(name="billing", tools=[refund], model=model, store=store)
    with Served(create_app({"billing": agent}, store, KEYS)) as served, served.client() as http:
        paused = http.post("/v1/agents/billing/runs", json={"input": "refund 1003", "session": "b1"}).json()
        assert paused["status"] == "awaiting_approval"
        [pending] = paused["pending"]
        run_id, call = paused["run_id"], pending["call_id"]
        assert http.get("/v1/runs", params={"status": "awaiting_approval"}).json()[0]["run_id"] == run_id

        assert http.post(f"/v1/runs/{run_id}/approvals", json={"decisions": {"nope": {"approve": True}}}
                         ).status_code == 422
        bad = http.post(f"/v1/runs/{run_id}/approvals",
                        json={"decisions": {call: {"approve": True, "arguments": {"order_id": "1003"}}}})
        assert bad.status_code == 422 and "amount" in bad.json()["detail"]
        assert store.run(run_id).status == "awaiting_approval"  # nothing written
        with served.client("bob-key") as bob:
            assert bob.post(f"/v1/runs/{run_id}/approvals", json={"decisions": {call: {"approve": True}}}
                            ).status_code == 404

        events_before = http.get(f"/v1/runs/{run_id}").json()["events"]
        accepted = http.post(f"/v1/runs/{run_id}/approvals",
                             json={"decisions": {call: {"approve": True, "arguments": {"order_id": "1003",
                                                                                      "amount": 136.49}}}})
        assert accepted.status_code == 202, accepted.text
        rest = sse_events(http, "GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(events_before)})
        assert ids(rest)[0] == events_before + 1
        assert rest[-1].json()["result"]["status"] == "completed"
        [ran] = [e.json()["observation"] for e in rest if e.event == "tool_end"]
        edited = '{"order_id": "1003", "amount": 136.49}'  # on the record, and what the model reads next
        assert (ran["content"], ran["arguments"]) == (f"{EDITED_NOTE}{edited}\nrefunded 136.49 on 1003", edited)
        steps = http.get(f"/v1/runs/{run_id}").json()["steps"]
        assert steps[0]["observations"][0]["arguments"] == edited
        assert http.post(f"/v1/runs/{run_id}/approvals", json={"decisions": {call: {"approve": True}}}
                         ).status_code == 409  # not paused any more
        assert history_problems(store.messages("b1")) == []


def test_a_nested_agents_pause_is_decided_on_its_callers_run_over_http(store: Any) -> None:
    billing = Agent(name="billing", tools=[refund], store=store, model=ScriptedModel([
        tool_call("refund", {"order_id": "1003", "amount": 5}), reply("Refunded 5.")]))
    desk = Agent(name="desk", tools=[billing.as_tool()], store=store, model=ScriptedModel([
        tool_call("ask_billing", {"request": "refund 1003"}), reply("Billing refunded it.")]))
    with Served(create_app({"desk": desk}, store, KEYS)) as served, served.client() as http:
        paused = http.post("/v1/agents/desk/runs", json={"input": "refund 1003", "session": "d1"}).json()
        assert paused["status"] == "awaiting_approval"
        [pending] = paused["pending"]
        assert pending["tool"] == "refund" and pending["run_id"] != paused["run_id"]
        accepted = http.post(f"/v1/runs/{paused['run_id']}/approvals",
                             json={"decisions": {pending["call_id"]: {"approve": True}}})
        assert accepted.status_code == 202, accepted.text
        done = wait_until(lambda: (r := http.get(f"/v1/runs/{paused['run_id']}").json())["status"] == "completed"
                          and r, what="the caller to complete")
        assert done["output"] == "Billing refunded it."
        assert store.run(pending["run_id"]).status == "completed"
        assert history_problems(store.messages("d1")) == []


# -- users ------------------------------------------------------------------------------------------
def test_no_key_or_a_wrong_key_is_401(store: Any) -> None:
    with Served(create_app({"adder": adder(store)}, store, KEYS)) as served:
        for key in (None, "wrong-key"):
            with served.client(key) as http:
                answer = http.post("/v1/agents/adder/runs", json={"input": "hi"})
                assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
                assert http.get("/v1/sessions").status_code == 401
        with httpx.Client(base_url=served.url, headers={"Authorization": "Basic alice-key"}) as http:
            assert http.get("/v1/sessions").status_code == 401
        with served.client(None) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/openapi.json").json()["paths"]["/v1/agents/{agent}/runs"]


def test_a_user_sees_and_touches_only_their_own_runs_and_sessions(store: Any) -> None:
    agent = adder(store, tool_call("add", {"a": 2, "b": 3}), reply("5"), reply("mine"))
    with (Served(create_app({"adder": agent}, store, KEYS)) as served, served.client() as alice,
          served.client("bob-key") as bob):
        run = alice.post("/v1/agents/adder/runs", json={"input": "2 + 3?", "session": "alice-1"}).json()
        run_id = run["run_id"]
        for method, url in (("GET", f"/v1/runs/{run_id}"), ("GET", f"/v1/runs/{run_id}/events"),
                            ("POST", f"/v1/runs/{run_id}/cancel"), ("POST", f"/v1/runs/{run_id}/resume"),
                            ("GET", "/v1/sessions/alice-1"), ("DELETE", "/v1/sessions/alice-1")):
            assert bob.request(method, url).status_code == 404, (method, url)
        assert bob.post("/v1/agents/adder/runs", json={"input": "hi", "session": "alice-1"}).status_code == 404
        assert bob.get("/v1/sessions").json() == [] and bob.get("/v1/runs").json() == []
        assert bob.get("/v1/runs/no-such-run").status_code == 404

        mine = bob.post("/v1/agents/adder/runs", json={"input": "hi", "session": "bob-1"}).json()
        assert mine["output"] == "mine"
        assert [s["id"] for s in bob.get("/v1/sessions").json()] == ["bob-1"]
        assert [s["id"] for s in alice.get("/v1/sessions").json()] == ["alice-1"]
        assert alice.get(f"/v1/runs/{mine['run_id']}").status_code == 404
        assert alice.delete("/v1/sessions/alice-1").status_code == 204
        assert alice.get("/v1/sessions/alice-1").status_code == 404 and store.run(run_id) is None
        assert bob.get("/v1/sessions/bob-1").status_code == 200


# -- bodies -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    {}, {"input": ""}, {"input": 5}, {"input": "hi", "extra": 1}, {"input": "x" * 100_001},
    {"input": "hi", "session": "../etc"}, {"input": "hi", "stream": "yes"},
])
def test_bad_run_bodies_are_422(store: Any, body: dict[str, Any]) -> None:
    with Served(create_app({"adder": adder(store)}, store, KEYS)) as served, served.client() as http:
        answer = http.post("/v1/agents/adder/runs", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]
        assert store.sessions() == []


def test_bad_approval_bodies_and_oversized_requests(store: Any) -> None:
    with (Served(create_app({"adder": adder(store)}, store, KEYS, max_body=4096)) as served,
          served.client() as http):
        for body in ({"decisions": {}}, {"decisions": {"c": {"approve": True, "reason": "why"}}},
                     {"decisions": {"c": {"approve": False, "arguments": {}}}}, {"decisions": {"c": {}}}):
            assert http.post("/v1/runs/r1/approvals", json=body).status_code == 422, body
        big = http.post("/v1/agents/adder/runs", json={"input": "x" * 5000})
        assert big.status_code == 413
        streamed = http.post("/v1/agents/adder/runs", content=iter([b'{"input": "', b"x" * 5000, b'"}']),
                             headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert http.post("/v1/agents/nobody/runs", json={"input": "hi"}).status_code == 404


# -- restarts ---------------------------------------------------------------------------------------
def test_a_run_left_open_by_a_stopped_server_is_resumed_by_the_next(store: Any, gate: threading.Event) -> None:
    first = gated(store, gate, tool_call("wait_for_gate", {"name": "x"}))
    with (Served(create_app({"gated": first}, store, KEYS)) as served, served.client() as http,
          connect_sse(http, "POST", "/v1/agents/gated/runs",
                      json={"input": "go", "stream": True, "session": "s1"}) as source):
        run_id = next(e for e in source.iter_sse() if e.event == "tool_start").json()["run_id"]
    assert store.run(run_id).status == "running"  # stopped, not closed: resumable

    gate.set()
    second = gated(store, gate, reply("resumed and done"))
    with Served(create_app({"gated": second}, store, KEYS)) as served, served.client() as http:
        [left] = http.get("/v1/runs", params={"status": "running"}).json()
        assert (left["run_id"], left["live"]) == (run_id, False)
        replay = sse_events(http, "GET", f"/v1/runs/{run_id}/events")  # rebuilt from the journal
        assert [e.event for e in replay] == ["run_start", "tool_start"]
        assert http.post(f"/v1/runs/{run_id}/resume").status_code == 202
        rest = sse_events(http, "GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "2"})
        assert ids(rest)[0] == 3 and rest[-1].json()["result"]["status"] == "completed"
        assert http.get(f"/v1/runs/{run_id}").json()["output"] == "resumed and done"
        assert http.post(f"/v1/runs/{run_id}/resume").status_code == 409
    assert history_problems(store.messages("s1")) == []


def test_a_router_streams_its_nested_runs(store: Any) -> None:
    billing = adder(store, reply("billing here"))
    billing.name = "billing"
    classifier = classifier_agent(["billing"], store=store,
                                  model=ScriptedModel([tool_call("final_answer", {"category": "billing",
                                                                                 "reason": "money"})]))
    router = Router({"billing": billing}, classifier=classifier, name="front")
    with Served(create_app({"front": router}, store, KEYS)) as served, served.client() as http:
        events = sse_events(http, "POST", "/v1/agents/front/runs", json={"input": "refund?", "stream": True})
        starts = [e.json()["run_id"] for e in events if e.event == "run_start"]
        assert len(set(starts)) == 3
        end = events[-1].json()
        assert end["run_id"] == starts[0] and end["result"]["output"]["handled_by"] == "billing"
        assert http.get(f"/v1/runs/{starts[0]}").json()["status"] == "completed"
        assert http.get(f"/v1/runs/{starts[2]}").json()["output"] == "billing here"


def test_the_app_refuses_agents_on_another_store(store: Any, tmp_path: Any) -> None:
    other = DiskStore(tmp_path / "other")
    with pytest.raises(UserError, match="store"):
        create_app({"adder": adder(other)}, store, KEYS)
    with pytest.raises(UserError, match="API keys"):
        create_app({"adder": adder(store)}, store, {})
    other.close()


# -- the command ------------------------------------------------------------------------------------
def test_serve_command_serves_the_task_files_agents(repo_copy: Any, tmp_path: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "REACT_AGENT_API_KEYS": "k1:alice", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "react_agent", "serve", "tasks/quickstart.yaml", "tasks/router.yaml",
            "tasks/support.yaml", "--port", str(port)]
    server = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k1"}) as http:
            def healthy() -> bool:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, what="serve to answer", timeout=30)
            agents = {a["id"]: a for a in http.get("/v1/agents").json()}
            assert agents["calculator"]["kind"] == "agent" and agents["coordinator"]["kind"] == "router"
            assert {"router.support", "support.support"} <= set(agents)  # one name, two files
            assert http.get("/v1/sessions", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        server.terminate()
        server.wait(10)

    missing = subprocess.run([sys.executable, "-m", "react_agent", "serve", "tasks/quickstart.yaml"], check=False,
                             env={**env, "REACT_AGENT_API_KEYS": ""}, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "REACT_AGENT_API_KEYS" in missing.stderr
