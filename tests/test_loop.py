"""The ReAct loop, driven by ``ScriptedModel``: tool calls, model mistakes, limits, resume, events."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import threading
from collections import Counter

import pytest
from conftest import assert_valid_history, history_problems
from pydantic import BaseModel

from react_agent import Agent, ModelHTTPError, ModelRetry, ToolContext, UserError, tool
from react_agent.history import fold
from react_agent.log import configure_logging
from react_agent.steps import RunEnd, StepEnd, TextDelta, ToolEnd, ToolStart
from react_agent.testing import ScriptedModel, reply, tool_call, tool_calls

CALLS: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    CALLS["add"] += 1
    return a + b


@tool
def explode(reason: str = "boom") -> str:
    """Always fails."""
    CALLS["explode"] += 1
    raise ValueError(reason)


@tool
def picky(date: str = "") -> str:
    """Wants a date."""
    raise ModelRetry("ask again with a date in YYYY-MM-DD form")


@tool(timeout=0.2)
async def sleepy() -> str:
    """Takes far longer than its timeout."""
    await asyncio.sleep(30)
    return "never"


TOOLS = (add, explode, picky, sleepy)


def make_agent(script, *tools, **options) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(script)
    return Agent(tools=tools or TOOLS, model=model, **options), model


async def run(script, *tools, input: str = "go", **options):
    agent, model = make_agent(script, *tools, **options)
    result = await agent.run(input)
    return result, model


def stored_history(agent: Agent, result) -> list[dict]:
    return agent.store.messages(result.session)


# -- the basic cycle --------------------------------------------------------------------------------
async def test_tool_call_then_final_answer():
    result, model = await run([tool_call("add", {"a": 1, "b": 2}, thought="I will add."), reply("It is 3.")])
    assert result.status == "completed"
    assert result.output == "It is 3."
    first, last = result.steps
    assert first.thought == "I will add."
    assert [(c.name, c.arguments) for c in first.actions] == [("add", '{"a": 1, "b": 2}')]
    assert [(o.kind, o.content) for o in first.observations] == [("ok", "3")]
    assert last.answer == "It is 3."
    assert model.requests[1].messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "3"}
    assert model.requests[0].tool_names == ["add", "explode", "picky", "sleepy"]
    assert result.usage.requests == 2
    assert result.usage.total_tokens == 60
    assert_valid_history(model)


async def test_tool_context_is_injected_and_not_in_schema():
    seen = []

    @tool
    def whoami(ctx: ToolContext) -> str:
        """Report the run context."""
        seen.append(ctx)
        return ctx.agent

    result, model = await run([tool_call("whoami", {}), reply("done")], whoami, name="helper")
    assert result.steps[0].observations[0].content == "helper"
    assert (seen[0].run_id, seen[0].session, seen[0].step) == (result.run_id, result.session, 0)
    assert model.requests[0].tools[0]["function"]["parameters"]["properties"] == {}


# -- parallel and sequential tool calls ------------------------------------------------------------
async def test_async_calls_of_one_turn_run_concurrently():
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    @tool(timeout=5)
    async def meet(me: str, other: str) -> str:
        """Wait until the other call has started too (deadlocks, then times out, if run one by one)."""
        started[me].set()
        await started[other].wait()
        return f"{me} met {other}"

    result, model = await run([
        tool_calls([("meet", {"me": "a", "other": "b"}), ("meet", {"me": "b", "other": "a"})]), reply("ok"),
    ], meet)
    observations = result.steps[0].observations
    assert [(o.kind, o.content) for o in observations] == [("ok", "a met b"), ("ok", "b met a")]
    assert_valid_history(model)


async def test_sync_calls_of_one_turn_run_concurrently_in_threads():
    barrier = threading.Barrier(2, timeout=5)  # broken (an error) unless both calls wait at once

    @tool
    def rendezvous(n: int) -> str:
        """Wait at the barrier."""
        barrier.wait()
        return threading.current_thread().name

    result, _ = await run([tool_calls([("rendezvous", {"n": 1}), ("rendezvous", {"n": 2})]), reply("ok")],
                          rendezvous)
    observations = result.steps[0].observations
    assert [o.kind for o in observations] == ["ok", "ok"]
    assert observations[0].content != observations[1].content  # two worker threads
    assert threading.current_thread().name not in {o.content for o in observations}


async def test_sequential_tool_does_not_overlap_other_calls():
    running: set[str] = set()
    visits: list[tuple[str, set[str], set[str]]] = []  # (call, running when it started, when it ended)

    async def visit(name: str) -> str:
        before = set(running)
        running.add(name)
        await asyncio.sleep(0.05)
        running.discard(name)
        visits.append((name, before, set(running)))
        return name

    @tool
    async def fast(name: str) -> str:
        """Runs beside others."""
        return await visit(name)

    @tool(sequential=True)
    async def alone(name: str) -> str:
        """Must run alone."""
        return await visit(name)

    calls = [("fast", {"name": "f1"}), ("alone", {"name": "s1"}), ("fast", {"name": "f2"}),
             ("alone", {"name": "s2"})]
    result, model = await run([tool_calls(calls), reply("ok")], fast, alone)
    assert sorted(name for name, _, _ in visits) == ["f1", "f2", "s1", "s2"]  # each call ran once
    for name, before, after in visits:
        others = (before | after) - {name}
        if name.startswith("s"):
            assert others == set(), name
        else:
            assert not others & {"s1", "s2"}, name
    assert any(before for name, before, _ in visits if name.startswith("f"))  # the fast ones did overlap
    assert [o.content for o in result.steps[0].observations] == ["f1", "s1", "f2", "s2"]
    tool_messages = [m["content"] for m in model.requests[1].messages if m["role"] == "tool"]
    assert tool_messages == ["f1", "s1", "f2", "s2"]  # history keeps the call order
    assert_valid_history(model)


# -- model mistakes become observations ------------------------------------------------------------
@pytest.mark.parametrize(("name", "arguments", "kind", "expected"), [
    ("add", '{"a": 1,', "invalid_arguments", "not valid JSON"),
    ("add", {"a": "one", "b": 2}, "invalid_arguments", "a: Input should be a valid integer"),
    ("add", {"a": 1}, "invalid_arguments", "b: Field required"),
    ("add", {"a": 1, "b": 2, "c": 3}, "invalid_arguments", "c: Extra inputs are not permitted"),
    ("subtract", {"a": 1}, "unknown_tool", "Available tools: add, explode, picky, sleepy."),
    ("explode", {}, "tool_error", "raised ValueError: boom"),
    ("picky", {}, "retry", "ask again with a date in YYYY-MM-DD form"),
    ("sleepy", {}, "timeout", "timed out after 0.2s"),
], ids=["not-json", "wrong-type", "missing-field", "extra-field", "unknown-tool", "raises", "model-retry",
        "timeout"])
async def test_malformed_call_becomes_an_observation_and_the_run_goes_on(name, arguments, kind, expected):
    result, model = await run([tool_call(name, arguments), reply("recovered")])
    observation = result.steps[0].observations[0]
    assert observation.kind == kind
    assert expected in observation.content
    assert model.requests[1].messages[-1]["content"] == observation.content  # the model reads it
    assert result.status == "completed"
    assert result.output == "recovered"
    assert_valid_history(model)


async def test_invalid_arguments_describe_only_the_failing_argument():
    result, _ = await run([tool_call("add", {"a": 1}), reply("ok")])
    content = result.steps[0].observations[0].content
    assert content == "Invalid arguments for 'add': b: Field required. Fix: b (integer, required)."
    assert '"properties"' not in content  # not the whole schema again


# -- bounded retries -------------------------------------------------------------------------------
async def test_a_tool_that_keeps_failing_ends_the_run_with_an_error():
    script = [tool_call("explode", {"reason": f"boom {i}"}, thought=f"try {i}") for i in range(1, 5)]
    agent, model = make_agent(script)  # max_retries=3: the 4th failure ends the run
    result = await agent.run("go")
    assert result.status == "error"
    assert result.output == "try 4"
    assert result.error_type == "ToolRetriesExceeded"
    assert "'explode' failed 4 times" in result.error
    assert "boom 4" in result.error
    assert CALLS["explode"] == 4
    assert len(model.requests) == 4
    assert_valid_history(model)
    assert history_problems(stored_history(agent, result)) == []


async def test_malformed_arguments_are_kept_as_sent_until_retries_run_out():
    broken = ['{"a": 1,', '{"a": 1, "b"', "a=1, b=2", '{"a": [}']
    agent, model = make_agent([tool_call("add", raw) for raw in broken])
    result = await agent.run("go")
    assert result.status == "error"
    assert result.error_type == "ToolRetriesExceeded"
    assert [step.actions[0].arguments for step in result.steps] == broken
    assert {o.kind for step in result.steps for o in step.observations} == {"invalid_arguments"}
    sent = [m["tool_calls"][0]["function"]["arguments"] for m in model.requests[-1].messages
            if m.get("tool_calls")]
    assert sent == broken[:3]  # the model sees its own raw arguments again
    assert CALLS["add"] == 0
    assert_valid_history(model)
    assert history_problems(stored_history(agent, result)) == []


async def test_max_retries_is_per_tool():
    @tool(max_retries=1)
    def fragile(n: int) -> str:
        """Fails."""
        raise RuntimeError(f"broken {n}")

    result, model = await run([tool_call("fragile", {"n": 1}), tool_call("fragile", {"n": 2})], fragile)
    assert (result.status, result.error_type) == ("error", "ToolRetriesExceeded")
    assert len(model.requests) == 2


async def test_unknown_tools_are_bounded_too():
    script = [tool_call("nope", {"i": i}) for i in range(3)] + [reply("fine")]
    result, _ = await run(script, max_unknown_tool_calls=3)
    assert result.status == "completed"
    result, model = await run([tool_call("nope", {"i": i}) for i in range(4)], max_unknown_tool_calls=3)
    assert (result.status, result.error_type) == ("error", "ToolRetriesExceeded")
    assert_valid_history(model)


# -- structured output -----------------------------------------------------------------------------
class Weather(BaseModel):
    city: str
    celsius: float


async def test_output_type_is_validated():
    result, model = await run(['```json\n{"city": "Oslo", "celsius": 3.5}\n```'], output_type=Weather)
    assert result.status == "completed"
    assert result.output == Weather(city="Oslo", celsius=3.5)
    assert '"celsius"' in model.requests[0].messages[0]["content"]  # the schema is in the system prompt


async def test_a_rejected_answer_is_sent_back_with_what_was_wrong():
    script = [reply("It is mild in Oslo."), reply('{"city": "Oslo"}'),
              reply('{"city": "Oslo", "celsius": 9}')]
    result, model = await run(script, output_type=Weather)
    assert result.status == "completed"
    assert result.output == Weather(city="Oslo", celsius=9)
    first, second = model.requests[1].messages[-1], model.requests[2].messages[-1]
    assert first["role"] == "user"
    assert first["content"].startswith("Your answer was not accepted: it must be JSON")
    assert "Invalid JSON" in first["content"]
    assert "celsius: Field required" in second["content"]
    assert [s.note is not None for s in result.steps] == [True, True, False]


async def test_output_retries_exhausted_is_an_error():
    result, model = await run([reply("no"), reply("still no")], output_type=Weather, output_retries=1)
    assert result.status == "error"
    assert result.error_type == "UnexpectedModelBehavior"
    assert "final answer rejected" in result.error
    assert result.output == "still no"
    assert len(model.requests) == 2
    assert_valid_history(model)


async def test_an_empty_answer_is_sent_back():
    result, model = await run([reply(""), reply("Here it is.")])
    assert result.status == "completed"
    assert "empty" in model.requests[1].messages[-1]["content"]


# -- limits -----------------------------------------------------------------------------------------
async def test_max_steps_returns_the_last_thought():
    script = [tool_call("add", {"a": 1, "b": 1}, thought="First I add."),
              tool_call("add", {"a": 2, "b": 2}, thought="Now I add again.")]
    agent, model = make_agent(script, max_steps=2)
    result = await agent.run("go")
    assert result.status == "max_steps"
    assert result.output == "Now I add again."
    assert len(result.steps) == 2
    assert CALLS["add"] == 2
    assert_valid_history(model)
    assert history_problems(stored_history(agent, result)) == []


async def test_the_same_call_four_times_in_a_row_is_a_loop():
    same = tool_call("add", {"a": 1, "b": 2})
    agent, model = make_agent([same, same, same, tool_call("add", {"b": 2, "a": 1}, thought="Once more.")])
    result = await agent.run("go")
    assert result.status == "loop_detected"
    assert result.output == "Once more."
    assert CALLS["add"] == 3  # the 4th was not run
    assert result.steps[-1].observations[0].kind == "loop"
    assert len(model.requests) == 4
    assert_valid_history(model)
    assert history_problems(stored_history(agent, result)) == []


async def test_repeats_must_be_in_a_row_to_count_as_a_loop():
    same, other = tool_call("add", {"a": 1, "b": 2}), tool_call("add", {"a": 5, "b": 5})
    result, _ = await run([same, same, same, other, same, reply("done")])
    assert result.status == "completed"
    assert CALLS["add"] == 5


async def test_token_budget_stops_before_running_more_tools():
    script = [tool_call("add", {"a": 1, "b": 1}, thought="one"),
              tool_call("add", {"a": 2, "b": 2}, thought="two"), reply("never asked")]
    agent, model = make_agent(script, max_tokens_total=50)  # each scripted turn costs 30 tokens
    result = await agent.run("go")
    assert result.status == "token_budget"
    assert result.output == "two"
    assert CALLS["add"] == 1
    assert result.steps[1].observations[0].kind == "skipped"
    assert len(model.requests) == 2
    assert_valid_history(model)
    assert history_problems(stored_history(agent, result)) == []


async def test_token_budget_already_spent_stops_before_the_next_request():
    result, model = await run([tool_call("add", {"a": 1, "b": 1}), reply("never asked")], max_tokens_total=30)
    assert result.status == "token_budget"
    assert CALLS["add"] == 1
    assert len(model.requests) == 1


async def test_a_model_error_ends_the_run_with_status_error():
    agent, model = make_agent([tool_call("add", {"a": 1, "b": 1}, thought="adding"),
                               ModelHTTPError(503, None, "overloaded")])
    result = await agent.run("go")
    assert result.status == "error"
    assert result.error_type == "ModelHTTPError"
    assert "HTTP 503" in result.error
    assert result.output == "adding"
    assert_valid_history(model)
    assert agent.store.run(result.run_id).status == "error"


# -- sessions and resume ---------------------------------------------------------------------------
class Crash(BaseException):
    """The process dying mid-run (like KeyboardInterrupt, but not one pytest reacts to)."""


@pytest.fixture
def fetch():
    """A tool whose call with key "b" crashes once, after the call with key "a" has finished."""
    a_done = asyncio.Event()
    crashes = [Crash("killed")]

    @tool
    async def fetch(key: str) -> str:
        """Fetch a value."""
        CALLS[key] += 1
        if key == "a":
            a_done.set()
        else:
            await a_done.wait()
            if crashes:
                raise crashes.pop()
        return f"value of {key}"

    return fetch


def agent_on(store, script, *tools) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(script)
    return Agent(tools=tools, model=model, store=store), model


async def crash_in_tool(store, fetch) -> None:
    agent, _ = agent_on(store, [tool_calls([("fetch", {"key": "a"}), ("fetch", {"key": "b"})])], fetch)
    with pytest.raises(Crash):
        await agent.run("get a and b", session="s1")
    assert CALLS == {"a": 1, "b": 1}


async def test_resume_after_a_crash_in_a_tool_does_not_rerun_finished_tools(store, fetch):
    await crash_in_tool(store, fetch)
    crashed_run = store.runs(session="s1")[-1].run_id
    agent, model = agent_on(store, [reply("a and b fetched")], fetch)
    result = await agent.run("get a and b", session="s1", resume=True)
    assert result.status == "completed"
    assert result.run_id == crashed_run
    assert CALLS == {"a": 1, "b": 2}  # only the unfinished call ran again
    assert [o.content for o in result.steps[0].observations] == ["value of a", "value of b"]
    tool_messages = [m["content"] for m in model.requests[0].messages if m["role"] == "tool"]
    assert tool_messages == ["value of a", "value of b"]
    assert_valid_history(model)
    assert history_problems(store.messages("s1")) == []


async def test_resume_after_a_crash_in_the_model_call(store, fetch):
    agent, _ = agent_on(store, [tool_call("fetch", {"key": "a"}), RuntimeError("process died")], fetch)
    with pytest.raises(RuntimeError):
        await agent.run("get a", session="s1")
    agent, model = agent_on(store, [reply("got a")], fetch)
    result = await agent.run("get a", session="s1", resume=True)
    assert result.status == "completed"
    assert result.output == "got a"
    assert CALLS == {"a": 1}
    assert len(result.steps) == 2  # the journaled step and the new one
    assert result.steps[0].observations[0].content == "value of a"
    assert (result.usage.requests, result.usage.total_tokens) == (2, 60)  # both runs' requests count
    assert store.run(result.run_id).usage["requests"] == 2
    assert_valid_history(model)


async def test_new_input_on_a_crashed_session_closes_the_open_calls(store, fetch):
    await crash_in_tool(store, fetch)
    agent, model = agent_on(store, [reply("4")], fetch)
    result = await agent.run("never mind: 2+2?", session="s1")
    assert result.status == "completed"
    messages = model.requests[0].messages
    tool_messages = [m["content"] for m in messages if m["role"] == "tool"]
    assert tool_messages[0] == "value of a"  # finished before the crash: its stored result
    assert tool_messages[1].startswith("Interrupted: the run stopped while this call was running")
    assert messages[-1] == {"role": "user", "content": "never mind: 2+2?"}
    assert CALLS == {"a": 1, "b": 1}
    assert_valid_history(model)


async def test_resume_needs_a_session_with_a_run(store):
    agent, _ = agent_on(store, [])
    with pytest.raises(UserError):
        await agent.run("x", resume=True)
    with pytest.raises(UserError):
        await agent.run("x", session="unknown", resume=True)


async def test_a_session_carries_history_and_each_run_runs_its_own_calls(store):
    agent, _ = agent_on(store, [tool_call("add", {"a": 1, "b": 2}), reply("3")], add)
    first = await agent.run("1+2?", session="chat", user_id="u1")
    agent, model = agent_on(store, [tool_call("add", {"a": 5, "b": 5}), reply("10")], add)
    second = await agent.run("5+5?", session="chat")
    assert (first.status, second.status) == ("completed", "completed")
    assert second.steps[0].observations[0].content == "10"  # not the earlier call's stored result
    assert CALLS["add"] == 2
    assert [m["content"] for m in model.requests[0].messages if m["role"] == "user"] == ["1+2?", "5+5?"]
    assert_valid_history(model)
    assert [s.id for s in store.sessions(user_id="u1")] == ["chat"]


# -- events, hooks, run_sync -----------------------------------------------------------------------
async def test_stream_yields_text_tool_step_and_run_events():
    agent, _ = make_agent([tool_call("add", {"a": 1, "b": 2}, thought="Let me add."), reply("The sum is 3.")])
    events = [event async for event in agent.stream("1+2?")]
    kinds = [e.type for e in events]
    assert kinds[0] == "run_start"
    assert isinstance(events[-1], RunEnd)
    assert events[-1].result.status == "completed"
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(e.text for e in deltas if e.step == 0) == "Let me add."
    assert "".join(e.text for e in deltas if e.step == 1) == "The sum is 3."
    assert kinds.index("text_delta") < kinds.index("tool_start")
    assert kinds.index("tool_start") < kinds.index("tool_end") < kinds.index("step_end")
    ends = [e for e in events if isinstance(e, ToolEnd)]
    assert [(e.observation.tool, e.observation.content) for e in ends] == [("add", "3")]
    assert [e.call.name for e in events if isinstance(e, ToolStart)] == ["add"]
    assert [e.step.index for e in events if isinstance(e, StepEnd)] == [0, 1]


async def test_sync_and_async_hooks_see_every_event():
    sync_seen, async_seen = [], []

    async def async_hook(event):
        await asyncio.sleep(0)
        async_seen.append(event)

    model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")])
    agent = Agent(tools=[add], model=model, hooks=[sync_seen.append, async_hook])
    streamed = [event async for event in agent.stream("1+2?")]
    assert sync_seen == streamed
    assert async_seen == streamed
    assert {e.type for e in streamed} == {"run_start", "text_delta", "tool_start", "tool_end", "step_end",
                                          "run_end"}


async def test_run_sync_inside_a_running_loop_is_a_user_error():
    agent, model = make_agent([reply("hi")])
    with pytest.raises(UserError, match="running event loop"):
        agent.run_sync("hello")
    assert model.requests == []


def test_run_sync_without_a_loop():
    agent, _ = make_agent([reply("hi")])
    assert agent.run_sync("hello").output == "hi"


async def test_every_tool_end_and_step_end_comes_after_what_it_reports_is_on_disk(store):
    """Crash safety: when a ToolEnd or StepEnd reaches a hook (where a crash may happen), the tool's
    result - and at StepEnd the whole step - is already in the journal; except the result of a quick
    call that is safe to repeat, which rides on the run's next commit (journal.DEFER_MS)."""

    @tool
    async def slow(n: int) -> int:
        """Sleep n hundredths of a second."""
        await asyncio.sleep(n / 100)
        return n

    @tool(side_effects=True)
    def mark(n: int) -> int:
        """Mark n (at once)."""
        return n

    seen: list[str] = []
    quick = {"call_3"}  # slow(0): idempotent and done in well under DEFER_MS; the next commit is mark's turn

    def check(event):
        folded = fold(store.entries("s1"))
        answered = {t.calls[i]["id"] for t in folded.turns for i in t.results}
        if isinstance(event, ToolEnd):
            call = event.observation.call_id
            assert (call in answered) is (call not in quick), call
            seen.append(f"tool {call}")
        elif isinstance(event, StepEnd):
            steps = folded.steps(run_id)
            assert len(steps) == event.step.index + 1
            deferred = len({a.id for a in event.step.actions} & quick - answered)
            assert len(steps[-1].observations) == len(event.step.actions) - deferred
            assert deferred == (event.step.index == 1)
            seen.append(f"step {event.step.index}")

    run_id = "run-1"
    script = [tool_calls([("slow", {"n": 4}), ("slow", {"n": 2})]), tool_call("slow", {"n": 0}),
              tool_call("mark", {"n": 1}), reply("done")]
    agent = Agent(tools=[slow, mark], model=ScriptedModel(script), store=store, hooks=[check])
    result = await agent.run("go", session="s1", run_id=run_id)
    assert result.status == "completed", result.error
    assert len(seen) == 8 and seen[-1] == "step 3"
    assert history_problems(store.messages("s1")) == []
    assert [s.model_dump() for s in fold(store.entries("s1")).steps(run_id)] == [
        s.model_dump() for s in result.steps]


async def test_every_event_is_logged_as_json_lines_with_run_data():
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        model = ScriptedModel([tool_call("add", {"a": 1, "b": 2}), reply("3")])
        result = await Agent(tools=[add], model=model).run("1+2?", session="logged")
    finally:
        configure_logging("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "run_start", "tool_start", "tool_end", "step", "step", "run_end"]
    assert all(line["run_id"] == result.run_id and line["session"] == "logged" for line in lines)
    tool_end = lines[2]
    assert tool_end["tool"] == "add" and tool_end["step"] == 0 and "ms" in tool_end
    assert lines[3]["prompt_tokens"] == 20 and lines[-1]["status"] == "completed"


async def test_one_commit_per_step_for_quick_calls_that_are_safe_to_repeat(store, monkeypatch):
    """A quick idempotent call's result rides on the run's next commit; a call with side effects gets a
    commit of its own the moment it returns; every result is in the log at the end, once."""
    commits: list[list[str]] = []
    real = type(store).write

    def counting(self, session, entries, **kwargs):
        commits.append([e["kind"] for e in entries])
        return real(self, session, entries, **kwargs)

    monkeypatch.setattr(type(store), "write", counting)

    @tool
    def look(n: int) -> int:
        """Look n up."""
        return n

    @tool(side_effects=True)
    def pay(n: int) -> int:
        """Pay n."""
        return n

    script = [tool_call("look", {"n": 1}), tool_call("look", {"n": 2}), tool_call("pay", {"n": 3}), reply("done")]
    agent = Agent(tools=[look, pay], model=ScriptedModel(script), store=store)
    result = await agent.run("go", session="s1")
    assert result.status == "completed"
    assert commits == [["start"], ["turn"], ["result", "turn"], ["result", "turn"], ["result"], ["end"]]
    folded = fold(store.entries("s1"))
    assert [turn.results[0]["content"] for turn in folded.turns if turn.calls] == ["1", "2", "3"]


async def test_a_run_stopped_by_an_exception_keeps_its_deferred_results(store):
    """Only a dead process loses a deferred result: an exception on its way out commits it first."""
    runs = Counter()

    @tool
    def look(n: int) -> int:
        """Look n up."""
        runs[n] += 1
        return n

    agent = Agent(tools=[look], model=ScriptedModel([tool_call("look", {"n": 1}), RuntimeError("a bug")]), store=store)
    with pytest.raises(RuntimeError):
        await agent.run("go", session="s1")
    (turn,) = fold(store.entries("s1")).turns
    assert turn.results[0]["content"] == "1"
    agent = Agent(tools=[look], model=ScriptedModel([reply("done")]), store=store)
    assert (await agent.run("go", session="s1", resume=True)).output == "done"
    assert runs == {1: 1}


async def test_a_tools_context_variables_stay_in_its_call():
    """Each call runs in a copy of the run's context, a lone call too: what a tool sets is not seen by
    the hooks, the next tools or the caller."""
    mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="clean")
    seen: list[str] = []

    @tool
    async def dirty() -> str:
        """Set a context variable."""
        seen.append(mark.get())
        mark.set("dirty")
        return "done"

    @tool
    def dirty_sync() -> str:
        """Set a context variable, in sync code."""
        seen.append(mark.get())
        mark.set("dirty")
        return "done"

    script = [tool_call("dirty", {}), tool_call("dirty_sync", {}), tool_call("dirty", {}), reply("ok")]
    agent = Agent(tools=[dirty, dirty_sync], model=ScriptedModel(script * 2),
                  hooks=[lambda event: seen.append(mark.get()) if isinstance(event, RunEnd) else None])
    assert (await agent.run("go")).output == "ok"
    # run_sync: the lone sync call runs in the calling thread
    assert await asyncio.to_thread(lambda: agent.run_sync("go").output) == "ok"
    assert seen == ["clean"] * 8 and mark.get() == "clean"


async def test_a_consumer_that_stops_listening_keeps_the_deferred_results(store):
    @tool
    def look(n: int) -> int:
        """Look n up."""
        return n

    agent = Agent(tools=[look], model=ScriptedModel([tool_call("look", {"n": 7}), reply("done")]), store=store)
    stream = agent.stream("go", session="s1")
    async for event in stream:
        if isinstance(event, ToolEnd):
            break
    await stream.aclose()
    (turn,) = fold(store.entries("s1")).turns
    assert turn.results[0]["content"] == "7"
