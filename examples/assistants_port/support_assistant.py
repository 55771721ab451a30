"""The classic Assistants API support assistant, ported to react_agent.

What it was on the Assistants API: an *assistant* (instructions + function tools), one *thread* per
customer, a *run* per question, and a refund function the app only executed after a person said yes
(the run stopped in ``requires_action``; the app called ``submit_tool_outputs``).

What it is here: an ``Agent`` (instructions + ``@tool`` functions), one *session* per customer
(``session=..., user_id=...``), ``agent.run(...)`` per question, and a refund tool marked
``requires_approval=True`` — the run ends with status ``awaiting_approval`` and the waiting calls in
``result.pending``; ``agent.resume(run_id, {call_id: Approve() | Deny("why")})`` goes on, from this
process or another one (the pause is in the store, nothing waits in memory).

    python examples/assistants_port/support_assistant.py            # live: OPENAI_API_KEY, else the local model
    python examples/assistants_port/support_assistant.py --ask      # you decide on the refund at the terminal
    python examples/assistants_port/support_assistant.py --record   # live, saved to the cassette
    python examples/assistants_port/support_assistant.py --replay   # from the cassette, no server

Without ``--ask`` the script decides like a support lead would: it approves a refund the customer
asked for, once, and denies one nobody asked for or a repeat (the model reads the reason). Recorded
and replayed runs use a fresh store and state folder; a live run uses ``$REACT_AGENT_HOME`` (default
``.react_agent/``). See README.md beside this file for what the recorded model did.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from react_agent import Agent, Approve, Deny, DiskStore, Model, ModelRetry, PendingCall, RunResult, tool
from react_agent.paths import state_dir, state_dir_at
from react_agent.plugins import discover

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent  # the checkout: its tools/ and demo/ folders
CASSETTE = ROOT / "cassettes" / "examples" / "support_assistant.yaml"  # beside the other recordings

INSTRUCTIONS = """\
You are the support assistant of Acme Electronics (a demo shop). Answer in one or two short sentences.
- To look up an order, call check_order_status with the order number.
- To refund an order, call refund_order with the order number, the amount in USD and the reason.
  A person approves every refund before it is paid.
Never invent order details."""

# Two customers, one thread (session) each — the Assistants API's one thread per user.
CONVERSATIONS = [
    ("alice", "Where is my order 1042? Use check_order_status."),
    ("bob", "My order 1043 arrived broken. Please refund the full 59.98 USD with refund_order."),
]


@tool(side_effects=True, requires_approval=True)
def refund_order(order_id: int, amount: float, reason: str) -> str:
    """Refund (part of) an order to the customer's card. A person approves every refund first.

    Args:
        order_id: the order number, e.g. 1042.
        amount: the amount to refund in USD, at most the order's total.
        reason: why the customer gets the refund, e.g. "arrived damaged".
    """
    total = _order_totals().get(order_id)
    if total is None:
        raise ModelRetry(f"order {order_id} does not exist; check the order number")
    left = total - refunded(order_id)
    if not 0 < amount <= left + 0.005:
        raise ModelRetry(f"amount must be more than 0 and at most {left:.2f} USD (order total {total:.2f} USD, "
                         f"{total - left:.2f} USD refunded already)")
    with (state_dir() / "refunds.jsonl").open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps({"order_id": order_id, "amount": amount, "reason": reason}) + "\n")
    return f"Refunded {amount:.2f} USD on order {order_id}."


def _order_totals() -> dict[int, float]:
    with (ROOT / "demo" / "shop" / "orders.csv").open(newline="", encoding="utf-8") as f:
        return {int(row["order_id"]): float(row["total"]) for row in csv.DictReader(f)}


def refunds() -> list[dict[str, object]]:
    """The refunds paid so far (the ledger the refund tool writes)."""
    ledger = state_dir() / "refunds.jsonl"
    if not ledger.is_file():
        return []
    return [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]


def refunded(order_id: int) -> float:
    """How much of an order has been refunded so far."""
    return sum(float(str(r["amount"])) for r in refunds() if r["order_id"] == order_id)


def build_agent(model: str | Model | None, store: DiskStore | None = None,
                variables: dict[str, str] | None = None) -> Agent:
    """The assistant: instructions, the shipped order lookup and the refund tool."""
    shipped = discover([ROOT / "tools"], use_entry_points=False).tools
    return Agent(name="support", instructions=INSTRUCTIONS, tools=[shipped["check_order_status"], refund_order],
                 model=model, store=store, variables=variables, max_steps=4)


Decision = Approve | Deny
Decide = Callable[[str, PendingCall], Decision]  # (the customer's question, the waiting call)


def support_lead(question: str, call: PendingCall) -> Decision:
    """What a support lead decides without being asked: pay a refund the customer asked for, once;
    refuse one nobody asked for, or a repeat. (The 135M local model reaches for refund_order on any
    question about an order, and asks again after it is paid — the approval is what stops it.)"""
    order_id = json.loads(call.arguments).get("order_id")
    if "refund" not in question.lower():
        return Deny("the customer did not ask for a refund; do not refund. Answer their question.")
    if refunded(order_id) > 0:
        return Deny(f"order {order_id} is refunded already; do not refund it again. "
                    "Tell the customer the refund is done.")
    return Approve()


def ask_at_terminal(question: str, call: PendingCall) -> Decision:
    print(f"  the customer asked: {question}")
    answer = input(f"  {call.tool}({call.arguments}) — approve? [y/N] ").strip().lower()
    return Approve() if answer in ("y", "yes") else Deny(input("  reason: ").strip() or "declined by support")


@dataclass
class Transcript:
    """What happened, for the caller (and the test) to check."""

    results: list[RunResult] = field(default_factory=list)  # every run, the paused ones included
    decisions: dict[str, Decision] = field(default_factory=dict)
    histories: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # session -> its messages
    refunds: list[dict[str, object]] = field(default_factory=list)  # the refunds paid


async def converse(agent: Agent, decide: Decide, new_agent: Callable[[], Agent]) -> Transcript:
    """Each customer asks in their own session; a run that pauses for approval is decided and resumed
    by a fresh agent on the same store — what a restart (or a web request an hour later) would do."""
    out = Transcript()
    for user, question in CONVERSATIONS:
        print(f"{user}: {question}")
        result = await agent.run(question, session=f"support-{user}", user_id=user)
        out.results.append(result)
        while result.status == "awaiting_approval":
            print(f"  run {result.run_id} is awaiting approval:")
            decisions = {}
            for call in result.pending:
                decisions[call.call_id] = decide(question, call)
                print(f"  {call.tool} {call.arguments} ({call.reason}) -> {decisions[call.call_id]}")
            out.decisions.update(decisions)
            result = await new_agent().resume(result.run_id, decisions)
            out.results.append(result)
        print(f"  assistant [{result.status}]: {result.output}")
    for user, _ in CONVERSATIONS:
        threads = [s.id for s in agent.store.sessions(user_id=user)]
        out.histories.update((thread, agent.store.messages(thread)) for thread in threads)
        print(f"{user}'s threads: {threads}")
    out.refunds = refunds()
    print(f"refunds paid: {out.refunds}")
    return out


def run_live(model: str | None, decide: Decide) -> Transcript:
    store = DiskStore()
    return asyncio.run(converse(build_agent(model, store), decide, lambda: build_agent(model, store)))


def run_cassette(mode: str, path: Path = CASSETTE, model: str | None = None) -> Transcript:
    """Record the live run to ``path`` or replay it from there, with a fresh store and state folder."""
    from react_agent.recording import cassette, replay_model  # noqa: PLC0415
    from react_agent.resolve import resolve_model  # noqa: PLC0415

    assert mode in ("record", "replay")
    with tempfile.TemporaryDirectory(prefix="assistants_port_") as scratch, state_dir_at(Path(scratch) / "state"):
        store = DiskStore(Path(scratch) / "store")
        live = resolve_model(model) if mode == "record" else None
        with cassette(path, "record" if mode == "record" else "replay", live.name if live else None) as tape:
            chosen = live if live is not None else replay_model(tape.model)
            variables = {"today": tape.today}  # the recorded date: the replay sends the same prompts
            try:
                return asyncio.run(converse(build_agent(chosen, store, variables), support_lead,
                                            lambda: build_agent(chosen, store, variables)))
            finally:
                store.close()
                print(f"{'recorded' if mode == 'record' else 'replayed'} {path} "
                      f"(model {tape.model!r}, {tape.today})")



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--record", action="store_true", help="run live and save the traffic to --cassette")
    how.add_argument("--replay", action="store_true", help="run from --cassette, with no model server")
    parser.add_argument("--cassette", type=Path, default=CASSETTE, help=f"default: {CASSETTE}")
    parser.add_argument("--model", help="model name (default: REACT_AGENT_MODEL, gpt-4o-mini with a key, else local)")
    parser.add_argument("--ask", action="store_true", help="decide on each refund at the terminal (live runs)")
    args = parser.parse_args(argv)
    if args.record or args.replay:
        transcript = run_cassette("record" if args.record else "replay", args.cassette, args.model)
    else:
        transcript = run_live(args.model, ask_at_terminal if args.ask else support_lead)
    ended = [r for r in transcript.results if r.status != "awaiting_approval"]  # each conversation's last run
    return 0 if all(r.status == "completed" for r in ended) else 1


if __name__ == "__main__":
    sys.exit(main())
