"""The run journal: what a run writes to its session's log, and when (the README's "Crash safety").

Four kinds of commit, each atomic, each a crash point of the kill -9 tests:

1. **start** — the run record (status ``running``) and the question, together. Calls that an earlier,
   interrupted run on the session left open are answered in the same commit.
2. **turn** — the model's answer with its tool calls, the calls answered without running anything, and
   the calls about to run (``started``) — before any tool starts.
3. **result** — one call's outcome, the moment its tool returns (in the tool's own thread). A call gets
   exactly one result: a late result after the run was closed is dropped. The result of a call that is
   safe to repeat (``idempotent``) and took under ``DEFER_MS`` rides on the run's next commit instead
   (the next turn, a pause, the end): one commit per step instead of two. A crash before that commit
   loses at most that many milliseconds of work, which resume repeats — the rule below for a call
   started without a result.
4. **end** — the final answer (if any), the status and the run record, together.

Besides (not a crash point of the matrix): **waiting** — a call of an agent called as a tool whose nested
run paused for approval; it has no result until that run goes on, and a resume takes it up with that run.

A crash leaves a prefix of these commits; ``resume`` reads it back (``plan_resume``): a call with a
result is never run again; a call waiting on a nested run goes on with it; a call that was started but
has no result is run again only if its tool is safe to repeat (``idempotent``), otherwise the model is
told its outcome is unknown; a call that never started runs. The question is always in the history,
because it is committed with the run record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from .faults import point
from .history import Folded, Turn, fold
from .stores.base import Entry, RunRecord, SessionInfo, Store

__all__ = ["DEFER_MS", "INTERRUPTED", "NOT_STARTED", "RESUMABLE", "Journal", "closing_outcomes", "start_entries",
           "superseded_runs", "unknown_outcome"]

DEFER_MS = 10.0  # an idempotent call quicker than this has its result committed with the run's next commit
RESUMABLE = ("running", "error", "awaiting_approval")  # a superseded run cannot go on
NOT_STARTED = "Not run: the run was interrupted before this call started."
NEVER_APPROVED = "Not run: the call waited for approval and the conversation went on without it."
NESTED_NEVER_APPROVED = ("Not finished: the nested run waited for approval and the conversation went on without "
                         "it (it stays paused).")
INTERRUPTED = ("Interrupted: the run stopped while this call was running, so its outcome is unknown "
               "(it may or may not have taken effect).")


def unknown_outcome(tool: str) -> dict[str, Any]:
    """What the model sees of a call that was running when the process died, for a tool not safe to
    repeat: at-most-once, never a silent second run."""
    return {"kind": "interrupted", "ms": 0.0,
            "content": f"{INTERRUPTED} It was not run again because {tool!r} has side effects; check its "
                       "effect before calling it again."}


def closing_outcomes(turn: Turn) -> list[tuple[int, dict[str, Any]]]:
    """Answers for the open calls of an interrupted turn that will not be run (a new run took over)."""
    return [(i, {"kind": "interrupted", "ms": 0.0, "content": NESTED_NEVER_APPROVED if i in turn.delegated else
                 INTERRUPTED if i in turn.started else NEVER_APPROVED if i in turn.pending else NOT_STARTED})
            for i in turn.open]


class Journal:
    """Writes one run's entries. The loop calls it; it knows nothing of the loop."""

    defer_ms = DEFER_MS  # see the module's docstring (the kill -9 tests raise it, to defer every time)

    def __init__(self, store: Store, record: RunRecord) -> None:
        self.store = store
        self.record = record
        self._answered: set[tuple[int, int]] = set()
        self._deferred: list[Entry] = []  # results that ride on the next commit (``result(defer=True)``)
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def session(self) -> str:
        return self.record.session

    def _entry(self, kind: str, **fields: Any) -> Entry:
        return {"run": self.run_id, "kind": kind, **fields}

    def _write(self, entries: Sequence[Entry], runs: Sequence[RunRecord] = (), info: SessionInfo | None = None) -> int:
        """One commit of ``entries`` after the deferred results; returns the number of ``entries[0]``."""
        with self._lock:
            deferred, self._deferred = self._deferred, []
        try:
            first = self.store.write(self.session, [*deferred, *entries], runs=runs, info=info)
        except BaseException:
            with self._lock:  # nothing was written: they go with the next commit
                self._deferred[:0] = deferred
            raise
        return first + len(deferred)

    def _claim(self, turn: int, index: int, deferred: Entry | None = None) -> bool:
        """True once per call: the first answer wins (a tool's result, or the loop closing the turn). A
        ``deferred`` result is queued for the next commit in the same breath, so a commit that closes the
        turn either takes it along or has claimed the call first."""
        with self._lock:
            if (turn, index) in self._answered:
                return False
            self._answered.add((turn, index))
            if deferred is not None:
                self._deferred.append(deferred)
            return True

    def flush(self) -> None:
        """Commit the deferred results now: the run stops without its end (an exception, a cancellation
        that leaves it to ``resume``) while the process lives on, so nothing done is lost."""
        if self._deferred:
            self._write([])

    def start(self, messages: list[dict[str, Any]], *, info: SessionInfo, closing: Sequence[Entry] = (),
              superseded: Sequence[RunRecord] = ()) -> None:
        point("start:before")
        self._write([self._entry("start", messages=messages), *closing], runs=[*superseded, self.record], info=info)
        point("start:after")

    def resume(self, decisions: Sequence[tuple[int, int, dict[str, Any]]] = ()) -> None:
        """Mark the run resumed, with the human decisions on its pending calls (same commit)."""
        self.record = self.record.model_copy(update={"status": "running", "pending": [], "updated": time.time()})
        entries = [self._entry("decision", turn=t, index=i, decision=d) for t, i, d in decisions]
        self._write([*entries, self._entry("resume")], runs=[self.record])

    def turn(self, body: dict[str, Any]) -> int:
        """Commit a model answer (before any of its tools starts); returns its sequence number."""
        point("turn:before")
        seq = self._write([self._entry("turn", **body)])
        for index, _ in body.get("answered") or ():
            self._claim(seq, index)
        point("turn:after")
        return seq

    def started(self, turn: int, calls: list[int]) -> None:
        self._write([self._entry("started", turn=turn, calls=calls)])

    def result(self, turn: int, index: int, outcome: dict[str, Any], *, defer: bool = False) -> bool:
        """Commit one call's outcome — or, with ``defer``, keep it for the next commit; ``False``
        (nothing written) if the call was already answered."""
        entry = self._entry("result", turn=turn, index=index, outcome=outcome)
        if not self._claim(turn, index, entry if defer else None):
            return False
        if defer:
            return True
        self._write([entry])
        point("result:after")
        return True

    def waiting(self, turn: int, index: int, run_id: str) -> None:
        """Commit that call ``index`` left its nested run ``run_id`` paused for approval: it has no result
        yet, and a resume goes on with that run (never runs the call anew)."""
        self._write([self._entry("waiting", turn=turn, index=index, run_id=run_id)])

    def end(self, fields: dict[str, Any], *, record: dict[str, Any],
            closing: Sequence[tuple[int, int, dict[str, Any]]] = ()) -> None:
        """Commit the run's end (or its pause for approval: ``record["status"] == "awaiting_approval"``):
        answers for calls still open, the end entry, the run record."""
        answers = [self._entry("result", turn=t, index=i, outcome=o) for t, i, o in closing if self._claim(t, i)]
        self.record = self.record.model_copy(update={**record, "updated": time.time()})
        kind = "pause" if self.record.status == "awaiting_approval" else "end"
        point("end:before")
        self._write([*answers, self._entry(kind, **fields)], runs=[self.record])
        point("end:after")


def start_entries(store: Store, entries: Sequence[Entry]) -> tuple[list[Entry], list[RunRecord]]:
    """What a new run on a session commits besides its question: answers for the calls an interrupted
    run left open, and that run's record closed as ``interrupted``."""
    folded = fold(entries)
    last = folded.last_turn()
    closing = [{"run": last.run, "kind": "result", "turn": last.seq, "index": i, "outcome": outcome}
               for i, outcome in closing_outcomes(last)] if last is not None else []
    return closing, superseded_runs(store, folded)


def superseded_runs(store: Store, folded: Folded) -> list[RunRecord]:
    """Runs of the session that never ended (their process died): a new run on the session closes them."""
    found = []
    for run_id in folded.runs:
        if run_id not in folded.ends and (record := store.run(run_id)) is not None and record.status in (
                "running", "awaiting_approval"):
            found.append(record.model_copy(update={"status": "interrupted", "updated": time.time(),
                                                   "error": "interrupted: a new run started on the session"}))
    return found
