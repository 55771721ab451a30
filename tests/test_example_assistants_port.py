"""The Assistants API port (examples/assistants_port/support_assistant.py) runs from its cassette,
recorded from the embedded local model (SmolLM2-135M on llama.cpp). Re-record it with ``make record``.

What the recording holds — and what this test checks — is what that model did, not a good support
conversation: it calls ``refund_order`` for every question. The approval is what stands in the way:
the refund nobody asked for (alice's) is denied and never paid, the one bob asked for is approved
and paid once, and his repeats are denied. Neither run reaches a final answer: the model asks for the
same refund a 4th time in a row, and the loop stops it (``loop_detected``) — the repeat counter
survives each pause for approval.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

import pytest
from conftest import ROOT, history_problems

from react_agent import Approve, Deny

EXAMPLE = ROOT / "examples" / "assistants_port" / "support_assistant.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("support_assistant_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def calls(result, tool: str) -> list[tuple[dict, str]]:
    """(arguments, observation kind) of each call of ``tool`` the run answered."""
    out = []
    for step in result.steps:
        kinds = {o.call_id: o.kind for o in step.observations}
        out.extend((json.loads(c.arguments), kinds[c.id]) for c in step.actions if c.name == tool and c.id in kinds)
    return out


def test_the_port_replays_from_its_cassette_and_pays_only_the_approved_refund(example, capsys):
    transcript = example.run_cassette("replay")
    out = capsys.readouterr().out
    assert "replayed" in out and "(model 'local'" in out  # recorded from the embedded model

    by_session: dict[str, list] = {}
    for result in transcript.results:
        by_session.setdefault(result.session, []).append(result)
    assert list(by_session) == ["support-alice", "support-bob"]  # one thread per customer

    for runs in by_session.values():  # each run paused for the refund, was resumed, and ended
        assert {r.run_id for r in runs} == {runs[0].run_id}
        assert [r.status for r in runs[:-1]] == ["awaiting_approval"] * (len(runs) - 1) and len(runs) > 1
        assert all([p.tool for p in r.pending] == ["refund_order"] for r in runs[:-1])
        assert runs[-1].status == "loop_detected" and runs[-1].pending == []  # what the 135M model did

    alice, bob = by_session["support-alice"][-1], by_session["support-bob"][-1]
    # Alice asked where her order is; the model tried to refund it; every try was denied, none ran.
    assert [kind for _, kind in calls(alice, "refund_order")] == ["denied"] * 3 + ["loop"]
    # Bob asked for a refund: the first request was approved and ran, the repeats were denied.
    bob_refunds = calls(bob, "refund_order")
    assert bob_refunds[0] == ({"order_id": 1043, "amount": 59.98, "reason": "arrived damaged"}, "ok")
    assert [kind for _, kind in bob_refunds[1:]] == ["denied"] * 2 + ["loop"]
    first = by_session["support-bob"][0].pending[0].call_id
    assert transcript.decisions[first] == Approve()
    assert all(isinstance(d, Deny) for call_id, d in transcript.decisions.items() if call_id != first)
    assert transcript.refunds == [{"order_id": 1043, "amount": 59.98, "reason": "arrived damaged"}]

    for session, messages in transcript.histories.items():  # every tool call has its one result
        assert history_problems(messages) == [], session
        denied = [m["content"] for m in messages if m["role"] == "tool" and "do not refund" in m["content"]]
        assert denied, f"{session}: the model was told why its refund was denied"
