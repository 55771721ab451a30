"""Context budget: whole units are dropped oldest first, the task stays; long tool outputs are cut;
no request body (as the OpenAI SDK serializes it) is ever over the budget."""

from __future__ import annotations

import json
import random
import re

import pytest
from conftest import assert_valid_history, history_problems

from react_agent import Agent, tool
from react_agent.context import (
    cut_to_size,
    estimate_tokens,
    fair_shares,
    fit,
    json_size,
    split_units,
    text_size,
    truncate,
)
from react_agent.testing import Request, ScriptedModel, reply, tool_call, tool_calls
from react_agent.windows import CONTEXT_WINDOWS, default_budget, register_context_window


def sdk_json(value) -> bytes:
    """What the OpenAI SDK puts on the wire for a JSON body (openai._utils._json.openapi_dumps)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def sent_bytes(model_name: str, request: Request) -> int:
    """The size of the body ``OpenAIModel`` builds for ``request`` (not streamed)."""
    body = {"model": model_name, "messages": request.messages, **request.settings}
    if request.tools:
        body["tools"] = request.tools
        body.setdefault("tool_choice", "auto")
    return len(sdk_json(body))


def assert_within(model_name: str, requests: list[Request], budget: int) -> int:
    """Every request's body / 4 is within ``budget`` tokens; returns the largest body (bytes)."""
    assert requests, "the model was never asked"
    sizes = [sent_bytes(model_name, r) for r in requests]
    for n, size in enumerate(sizes):
        assert -(-size // 4) <= budget, f"request #{n}: {size} bytes = {-(-size // 4)} tokens > {budget}"
    return max(sizes)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def answer(text: str) -> dict:
    return {"role": "assistant", "content": text}


def calls(*ids: str, text: str = "") -> dict:
    return {"role": "assistant", "content": text, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}} for i in ids]}


def result(call_id: str, text: str = "result") -> dict:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def conversation(turns: int) -> list[dict]:
    """``turns`` user turns, each: question, two parallel tool calls with results, an answer."""
    history = []
    for t in range(turns):
        history += [user(f"question {t} " + "q" * 200), calls(f"a{t}", f"b{t}"),
                    result(f"a{t}", "r" * 300), result(f"b{t}", "r" * 300), answer(f"answer {t} " + "z" * 200)]
    return history


def test_truncate_says_how_much_was_cut():
    assert truncate("short", 10) == "short"
    assert truncate("x" * 10, 10) == "x" * 10
    cut = truncate("a" * 30 + "b" * 70, 30)
    assert cut == "a" * 30 + "\n[... truncated: 70 of 100 characters cut ...]"


def test_estimate_tokens_counts_content_and_tool_calls():
    assert estimate_tokens(user("")) == 7  # {"role":"user","content":""} is 27 bytes
    assert estimate_tokens(user("x" * 400)) > estimate_tokens(user("x" * 40))
    assert estimate_tokens(calls("a", "b")) > estimate_tokens(calls("a"))
    assert estimate_tokens({"role": "assistant", "content": None}) == 9


def realistic_messages() -> list[dict]:
    order = {"order_id": "1042", "status": "shipped", "items": [{"sku": "A-1", "qty": 2}], "note": 'fragile "glass"'}
    return [
        user("Where is order 1042?\nIt was due on Monday."),
        user("Résumé: the café's naïve order — ship it to Zürich, please."),
        answer("Order 1042 shipped on Monday; it should arrive by Thursday.\n\nAnything else?"),
        {"role": "assistant", "content": None},
        calls("call_s000001"),
        calls("call_aB3dE5fG7hJ9kL1mN3pQ5rS7", "call_tU9vW1xY3zA5bC7dE9fG1hJ3", text="Let me check both."),
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_s000017", "type": "function", "function": {
            "name": "add", "arguments": '{"a": 17, "b": 18}'}}]},
        result("call_s000017", "35"),
        result("call_aB3dE5fG7hJ9kL1mN3pQ5rS7", json.dumps(order)),
        result("call_tU9vW1xY3zA5bC7dE9fG1hJ3", "line one\nline two\tand a tab, C:\\path\\file.txt " * 20),
        result("call_x", "Tool 'lookup' raised KeyError: 'q'"),
    ]


def test_estimate_tracks_the_json_sent_within_15_percent():
    for message in realistic_messages():
        sent = len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())  # as the SDK sends it
        spaced = len(json.dumps(message, ensure_ascii=False).encode())  # json.dumps' default separators
        estimate = estimate_tokens(message) * 4
        assert abs(estimate - sent) <= 0.15 * sent, (message, estimate, sent)
        assert abs(estimate - spaced) <= 0.15 * spaced, (message, estimate, spaced)
        assert json_size(message) == sent


def test_split_units_keeps_calls_with_their_results():
    history = [user("q"), calls("a", "b"), result("a"), result("b"), answer("done"), user("next")]
    assert [len(u) for u in split_units(history)] == [1, 3, 1, 1]


def test_everything_fits_in_a_large_budget():
    history = conversation(3)
    fitted = fit(history, 100_000)
    assert fitted.messages == history
    assert fitted.dropped == []


def test_fit_drops_oldest_units_whole():
    history = conversation(4)
    fitted = fit(history, 600, fixed=100)
    assert fitted.dropped, "the budget is too small for everything"
    assert fitted.messages == history[len(fitted.dropped):]  # a suffix: the oldest were dropped
    assert history_problems(fitted.messages) == []
    assert fitted.messages[0]["role"] in ("user", "assistant")  # never a lone tool result
    assert sum(estimate_tokens(m) for m in fitted.messages) <= 600 - 100


def test_fit_never_separates_a_call_from_its_results():
    history = conversation(5)
    for budget in range(50, 2000, 37):
        fitted = fit(history, budget)
        assert history_problems(fitted.messages) == [], budget
        assert len(fitted.messages) + len(fitted.dropped) == len(history)


def test_fit_always_keeps_the_last_user_message():
    history = [*conversation(2), user("the current task " + "t" * 2000), calls("c1"), result("c1", "r" * 2000)]
    fitted = fit(history, 50)
    assert history[-3] in fitted.messages
    assert fitted.messages[-2:] == history[-2:]  # the newest unit is kept even when it alone is too big
    assert history_problems(fitted.messages) == []


def test_fit_keeps_the_task_even_when_newer_units_do_not_fit():
    history = [answer("old"), user("the task"), calls("c1"), result("c1", "r" * 4000), answer("partial " * 10)]
    fitted = fit(history, 60)
    assert fitted.messages[0] == user("the task")
    assert fitted.messages[-1] == history[-1]
    assert history_problems(fitted.messages) == []


@tool
def lookup(q: str) -> str:
    """Look something up."""
    return f"{q}: " + "data " * 200


async def test_agent_trims_requests_to_the_context_budget():
    script = [tool_call("lookup", {"q": f"q{i}"}) for i in range(6)] + [reply("done")]
    model = ScriptedModel(script)
    agent = Agent(tools=[lookup], model=model, context_budget=700)
    run = await agent.run("find it " + "please " * 20)
    assert run.status == "completed"
    assert_valid_history(model)
    last = model.requests[-1].messages
    assert "earlier messages of this conversation were left out" in last[0]["content"]
    assert any(m == {"role": "user", "content": "find it " + "please " * 20} for m in last)
    assert len(last) - 1 < len(agent.store.messages(run.session))  # something was dropped
    assert all("left out" not in r.messages[0]["content"] for r in model.requests[:1])



async def test_the_request_body_stays_within_the_context_budget():
    """The budget bounds the bytes actually sent (system prompt, tools and JSON keys included), not
    just the message texts: every request body / 4 <= the budget once trimming starts."""
    script = [tool_call("lookup", {"q": f"q{i}"}) for i in range(30)] + [reply("done")]
    model = ScriptedModel(script)
    agent = Agent(tools=[lookup], model=model, context_budget=1500, max_steps=40)
    run = await agent.run("find it")
    assert run.status == "completed"
    assert_within(model.name, model.requests, 1500)
    assert len(model.requests[-1].messages) < 2 + 2 * 30  # and it did trim


async def test_long_tool_output_is_truncated_with_a_marker():
    model = ScriptedModel([tool_call("lookup", {"q": "x"}), reply("done")])
    run = await Agent(tools=[lookup], model=model, max_tool_output=100).run("go")
    full = lookup.fn("x")
    content = run.steps[0].observations[0].content
    assert content.startswith(full[:100])
    assert content.endswith(f"[... truncated: {len(full) - 100} of {len(full)} characters cut ...]")
    assert model.requests[1].messages[-1]["content"] == content


class SummarizingModel(ScriptedModel):
    """Answers the summary requests (the ones without tools) itself; the rest come from the script."""

    def __init__(self, script: list) -> None:
        super().__init__(script)
        self.summary_prompts: list[str] = []
        self.summary_requests: list[Request] = []

    async def complete(self, messages, tools, settings):
        if not tools:
            self.summary_prompts.append(messages[0]["content"])
            self.summary_requests.append(Request(messages, tools, dict(settings)))
            return reply(f"summary #{len(self.summary_prompts)}")
        return await super().complete(messages, tools, settings)


async def test_left_out_messages_are_summarized_when_asked():
    model = SummarizingModel([tool_call("lookup", {"q": f"q{i}"}) for i in range(6)] + [reply("done")])
    agent = Agent(tools=[lookup], model=model, context_budget=900, summarize_dropped=True)
    run = await agent.run("find it")
    assert run.status == "completed"
    assert_valid_history(model)
    assert model.summary_prompts, "the budget left messages out, so a summary was asked for"
    first, second = model.summary_prompts[:2]  # the budget is small: messages are left out twice or more
    assert "[called lookup(" in first and "Summary of what came before" not in first
    assert "summary #1" in second and "\"q0\"" not in second  # folds the earlier summary in, not q0 again
    system = model.requests[-1].messages[0]["content"]
    assert f"summary #{len(model.summary_prompts)}" in system and "left out" in system
    assert run.usage.requests == len(model.requests) + len(model.summary_prompts)


# -- the hard budget ----------------------------------------------------------------------------------

SPECIAL = ['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x01", "\x1b", "\x1f", "\x7f", "é", "ü", "中",
           "\u2028", "\u00a0", "😀", "🇫🇷", "\U0001f9ea", "</", "'", "{", "}"]


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(SPECIAL) if rng.random() < 0.4 else chr(rng.randrange(32, 127)) for _ in range(length))


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False, 0, -17, 10**12, 0.0, 3.25, -1e-7, 1e300])
    if kind < 5:
        return random_text(rng, rng.randrange(40))
    if kind < 7:
        return {random_text(rng, rng.randrange(8)): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_json_size_is_exactly_the_bytes_the_sdk_sends():
    openai_json = pytest.importorskip("openai._utils._json")
    rng = random.Random(20240601)
    for _ in range(2000):
        value = random_value(rng)
        assert json_size(value) == len(sdk_json(value)) == len(openai_json.openapi_dumps(value)), repr(value)
    for text in ["\x01" * 100, "😀" * 10, "中文", 'a"b\\c', "\u2028", "".join(map(chr, range(128)))]:
        assert json_size(text) == len(sdk_json(text)), repr(text)
        assert text_size(text) == json_size(text) - 2
    odd_keys = {1: "a", None: True, False: [1.5, None], 2.5: ()}
    assert json_size(odd_keys) == len(sdk_json(odd_keys))


def test_cut_to_size_fits_and_says_how_much_was_cut():
    rng = random.Random(7)
    for _ in range(200):
        text = random_text(rng, rng.randrange(1, 400))
        size = rng.randrange(60, 600)
        cut = cut_to_size(text, size)
        assert cut is not None and text_size(cut) <= size
        if cut != text:
            found = re.search(r"\n\[\.\.\. truncated: (\d+) of (\d+) characters cut \.\.\.\]$", cut)
            assert found and int(found.group(2)) == len(text)
            kept = len(text) - int(found.group(1))
            assert cut[:kept] == text[:kept] and cut[kept:] == found.group(0)
            widest = f"\n[... truncated: {len(text)} of {len(text)} characters cut ...]"  # what room is kept for
            assert text_size(text[:kept + 1]) + text_size(widest) > size  # the longest prefix that fits
    assert cut_to_size("x" * 100, 20) is None  # not even the marker fits
    twice = cut_to_size(truncate("y" * 5000, 1000), 200)  # cut again: one marker, counting from the original
    assert twice is not None and twice.count("truncated") == 1 and twice.endswith(" of 5000 characters cut ...]")


def test_fair_shares_give_small_parts_all_and_big_ones_equal_shares():
    assert fair_shares([10, 100, 1000], 400) == [10, 100, 290]
    assert fair_shares([10, 300, 1000], 400) == [10, 195, 195]
    assert fair_shares([300, 300, 300, 300], 1000) == [250, 250, 250, 250]
    assert fair_shares([5, 6], 100) == [5, 6]
    rng = random.Random(3)
    for _ in range(200):
        sizes = [rng.randrange(2000) for _ in range(rng.randrange(1, 6))]
        total = rng.randrange(4000)
        shares = fair_shares(sizes, total)
        assert sum(shares) <= max(total, sum(sizes)) and all(s <= w for s, w in zip(shares, sizes, strict=True))


@tool
def dump(i: int) -> str:
    """Return a big record."""
    return f"record {i}: " + "data " * 1600  # 8,010 characters: under max_tool_output's cut


async def test_newest_parallel_results_are_cut_fairly_to_the_budget():
    model = ScriptedModel([tool_calls([("dump", {"i": i}) for i in range(4)]), reply("done")])
    agent = Agent(tools=[dump], model=model, context_budget=4000)
    run = await agent.run("dump four records")
    assert run.status == "completed"
    assert_valid_history(model)
    assert_within(model.name, model.requests, 4000)
    results = [m["content"] for m in model.requests[1].messages if m["role"] == "tool"]
    assert len(results) == 4
    for i, content in enumerate(results):
        assert content.startswith(f"record {i}: data")
        assert re.search(r"\[\.\.\. truncated: \d+ of 8010 characters cut \.\.\.\]$", content)
    assert max(map(len, results)) - min(map(len, results)) <= 2  # fair: equal shares
    assert sent_bytes(model.name, model.requests[1]) > 0.9 * 4000 * 4  # and not cut more than needed


@tool
def small_and_big(size: int) -> str:
    """Return ``size`` characters."""
    return "s" * size


async def test_small_results_of_the_newest_turn_stay_whole():
    calls = [("small_and_big", {"size": n}) for n in (100, 7000, 7000)]
    model = ScriptedModel([tool_calls(calls), reply("done")])
    run = await Agent(tools=[small_and_big], model=model, context_budget=3000).run("go")
    assert run.status == "completed"
    assert_within(model.name, model.requests, 3000)
    results = [m["content"] for m in model.requests[1].messages if m["role"] == "tool"]
    assert results[0] == "s" * 100
    assert "truncated" in results[1] and "truncated" in results[2]


@tool
def noisy(i: int) -> str:
    """Return terminal output full of control characters, quotes and non-ASCII text."""
    return (f"run {i}: \x1b[31mFAIL\x1b[0m \x01\x02\x03 \"quoted\" C:\\path 中文 café 😀\n") * 15


async def test_control_characters_and_non_ascii_are_counted_as_sent():
    model = ScriptedModel([tool_call("noisy", {"i": i}) for i in range(30)] + [reply("done")])
    agent = Agent(tools=[noisy], model=model, context_budget=4000, max_steps=40)
    run = await agent.run("run the tests")
    assert run.status == "completed"
    assert_valid_history(model)
    assert_within(model.name, model.requests, 4000)
    assert "left out" in model.requests[-1].messages[0]["content"]


async def test_a_question_that_cannot_fit_ends_the_run_before_any_request():
    model = ScriptedModel([reply("never sent")])
    agent = Agent(tools=[dump], model=model, context_budget=4000)
    run = await agent.run("q" * 100_000)
    assert run.status == "error" and run.error_type == "ContextBudgetExceeded"
    assert model.requests == []
    assert "over the context budget of 4,000" in (run.error or "") and "nothing was sent" in (run.error or "")
    assert agent.store.run(run.run_id).status == "error"
    # The session goes on: the next question fits and the huge one is left out.
    model.script.append(reply("fine"))
    again = await agent.run("a short question", session=run.session)
    assert again.status == "completed" and len(model.requests) == 1
    assert_within(model.name, model.requests, 4000)


async def test_tool_calls_too_big_for_the_budget_end_the_run_with_an_error():
    model = ScriptedModel([tool_call("small_and_big", {"size": 1, "pad": "p" * 20_000}), reply("never")])
    run = await Agent(tools=[small_and_big], model=model, context_budget=2000).run("go")
    assert run.status == "error" and run.error_type == "ContextBudgetExceeded"
    assert len(model.requests) == 1  # the first request went out; nothing over the budget did
    assert_within(model.name, model.requests, 2000)


@tool
def page(n: int) -> str:
    """Read one page."""
    return f"page {n}: " + "lorem ipsum " * 80


async def test_without_a_budget_a_long_run_stays_within_its_models_window():
    model = ScriptedModel([tool_call("page", {"n": n}) for n in range(200)] + [reply("done")])
    agent = Agent(tools=[page], model=model, max_steps=250)
    run = await agent.run("read all pages")
    assert run.status == "completed" and len(model.requests) == 201
    budget = default_budget("scripted", {})
    assert budget == 8192 - 1024  # an unknown model: a small window
    largest = assert_within(model.name, model.requests, budget)
    assert largest > 0.9 * budget * 4  # it filled the window, and no more
    assert_valid_history(model)


async def test_the_default_budget_follows_the_context_window_table():
    register_context_window("tiny-test-model", 1500, reserve=300)
    try:
        model = ScriptedModel([tool_call("page", {"n": n}) for n in range(20)] + [reply("done")],
                              name="tiny-test-model-2025-01-01")
        run = await Agent(tools=[page], model=model, max_steps=30).run("read")
        assert run.status == "completed"
        assert_within(model.name, model.requests, 1200)
        assert sent_bytes(model.name, model.requests[-1]) > 0.8 * 1200 * 4
    finally:
        del CONTEXT_WINDOWS["tiny-test-model"]


def test_default_budgets_leave_room_for_the_answer():
    assert default_budget("gpt-4o-mini-2024-07-18", {}) == 128_000 - 16_384
    assert default_budget("gpt-5", {}) == 272_000  # gpt-5's input limit
    assert default_budget("gpt-4.1-nano", {}) == 1_047_576 - 32_768
    assert default_budget("o3-mini", {"max_completion_tokens": 1000}) == 100_000
    assert default_budget("some-server-model", {}) == 7_168
    assert default_budget("some-server-model", {"max_tokens": 3000}) == 8_192 - 3000
    from react_agent.local import LocalModel  # noqa: PLC0415

    assert default_budget("local", LocalModel.default_settings) == 4096 - 384


async def test_summary_requests_stay_within_the_budget_too():
    model = SummarizingModel([tool_calls([("dump", {"i": 2 * i}), ("dump", {"i": 2 * i + 1})]) for i in range(5)]
                             + [reply("done")])
    agent = Agent(tools=[dump], model=model, context_budget=3000, summarize_dropped=True)
    run = await agent.run("dump records")
    assert run.status == "completed"
    assert model.summary_requests, "messages were left out, so summaries were asked for"
    assert_within(model.name, model.requests, 3000)
    assert_within(model.name, model.summary_requests, 3000)
    assert "record 0: data" in model.summary_prompts[0] and "truncated" in model.summary_prompts[0]


async def test_the_note_is_left_out_when_only_the_question_fits():
    from react_agent.context import ContextWindow  # noqa: PLC0415
    from react_agent.usage import Usage  # noqa: PLC0415

    agent = Agent(model=ScriptedModel([]), context_budget=1000)
    window = ContextWindow()
    assert await window.messages("sys", [user("hi")], agent, Usage()) == [
        {"role": "system", "content": "sys"}, user("hi")]
    assert window.fixed is not None
    question = user("q" * (4000 - window.fixed - json_size(user("")) - 1 - 10))  # 10 bytes to spare
    sent = await window.messages("sys", [user("old " * 50), answer("old"), question], agent, Usage())
    assert sent == [{"role": "system", "content": "sys"}, question]
    assert window.fixed + json_size(question) + 1 == 4000 - 10
