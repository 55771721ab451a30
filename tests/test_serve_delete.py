"""Deleting a session over HTTP makes its runs unreadable everywhere: the journal and the server's
memory of recent runs (their channels) alike. In-process (Starlette's TestClient); agents on
``ScriptedModel``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from react_agent import Agent
from react_agent.router import Router, classifier_agent
from react_agent.serve import create_app
from react_agent.testing import ScriptedModel, reply, tool_call

pytestmark = pytest.mark.block_network

KEYS = {"alice-key": "alice", "bob-key": "bob"}
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


def readable(client: TestClient, run_id: str, headers: dict[str, str]) -> list[int]:
    """The status codes of every way to read a run."""
    return [client.get(f"/v1/runs/{run_id}{tail}", headers=headers).status_code
            for tail in ("", "/events", "/timeline")]


def test_a_deleted_sessions_runs_are_not_found_even_while_kept_in_memory(store: Any) -> None:
    agent = Agent(name="a", store=store, model=ScriptedModel([reply("your diagnosis is X"), reply("kept"),
                                                              reply("bob's")]))
    with TestClient(create_app({"a": agent}, store, KEYS)) as client:
        gone = client.post("/v1/agents/a/runs", json={"input": "private symptoms", "session": "s1"}, headers=ALICE)
        kept = client.post("/v1/agents/a/runs", json={"input": "other", "session": "s2"}, headers=ALICE)
        bobs = client.post("/v1/agents/a/runs", json={"input": "mine", "session": "b1"}, headers=BOB)
        assert [r.status_code for r in (gone, kept, bobs)] == [200, 200, 200]
        gone_id = gone.json()["run_id"]
        assert readable(client, gone_id, ALICE) == [200, 200, 200]

        assert client.delete("/v1/sessions/s1", headers=ALICE).status_code == 204
        assert store.run(gone_id) is None
        assert readable(client, gone_id, ALICE) == [404, 404, 404]
        assert client.post(f"/v1/runs/{gone_id}/cancel", headers=ALICE).status_code == 404
        assert client.post(f"/v1/runs/{gone_id}/resume", headers=ALICE).status_code == 404
        assert "private symptoms" not in client.get(f"/v1/runs/{gone_id}", headers=ALICE).text
        assert client.app.state.manager.channels.get(gone_id) is None  # memory forgot it too
        # the same user's other session and another user's runs are untouched
        assert readable(client, kept.json()["run_id"], ALICE) == [200, 200, 200]
        assert readable(client, bobs.json()["run_id"], BOB) == [200, 200, 200]


def test_a_deleted_sessions_router_run_kept_only_in_memory_is_not_found(store: Any) -> None:
    billing = Agent(name="billing", store=store, model=ScriptedModel([reply("billing here")]))
    classifier = classifier_agent(["billing"], store=store, model=ScriptedModel(
        [tool_call("final_answer", {"category": "billing", "reason": "money"})]))
    router = Router({"billing": billing}, classifier=classifier, name="front")
    with TestClient(create_app({"front": router}, store, KEYS)) as client:
        run = client.post("/v1/agents/front/runs", json={"input": "refund?", "session": "r1"}, headers=ALICE)
        assert run.status_code == 200, run.text
        run_id = run.json()["run_id"]
        assert store.run(run_id) is None  # a router's own run lives in memory only
        assert readable(client, run_id, ALICE) == [200, 200, 200]
        assert client.delete("/v1/sessions/r1", headers=ALICE).status_code == 204
        assert readable(client, run_id, ALICE) == [404, 404, 404]
