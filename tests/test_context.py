"""Context budget: whole units are dropped oldest first, the task stays; long tool outputs are cut."""

from __future__ import annotations

import json

from conftest import assert_valid_history, history_problems

from react_agent import Agent, tool
from react_agent.context import estimate_tokens, fit, json_size, split_units, truncate
from react_agent.testing import ScriptedModel, reply, tool_call


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
    fitted = fit(history, 600, fixed_tokens=100)
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
    for request in model.requests:
        body = {"model": model.name, "messages": request.messages, "tools": agent.tool_schemas, "tool_choice": "auto"}
        sent = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        assert sent / 4 <= 1500, sent
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

    async def complete(self, messages, tools, settings):
        if not tools:
            self.summary_prompts.append(messages[0]["content"])
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
