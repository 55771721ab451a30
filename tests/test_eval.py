"""``eval``: percentiles, the aggregation (accuracy, pass^k, latency, tokens, cost), the run loop over
trials, the CLI's JSON, and the shipped suites (they load, build, and each case checks something)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from react_agent import evaluate as evaluate_module
from react_agent.cli import _parser, main
from react_agent.evaluate import case_report, evaluate, percentile, suite_report
from react_agent.steps import RunResult
from react_agent.tasks import Check, TaskOutcome, build_runner, load_task_file, run_task
from react_agent.testing import ScriptedModel, reply, tool_call
from react_agent.usage import Usage

ROOT = Path(__file__).resolve().parent.parent
SUITES = sorted((ROOT / "tasks" / "eval").glob("*.yaml"))


def outcome(passed: bool, ms: float, tokens: int = 100, cost: float | None = 0.01) -> TaskOutcome:
    usage = Usage(requests=1, prompt_tokens=tokens - 10, completion_tokens=10, cost_usd=cost)
    run = RunResult(run_id="r", agent="a", session="s", model="m", status="completed", usage=usage, ms=ms)
    return TaskOutcome(task="case", results=[run], checks=[Check(name="answer contains 'x'", passed=passed,
                                                                   detail="got y")])


# -- percentile -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "q", "expected"), [
    (list(range(1, 21)), 95, 19),  # 0.95 * 20 = 19 exactly (no float drift to 20)
    (list(range(1, 11)), 95, 10),
    (list(range(1, 101)), 95, 95),
    ([4, 1, 3, 2], 50, 2),  # order of the input does not matter
    ([1, 2, 3], 50, 2),
    ([7.5], 95, 7.5),
    ([3, 1, 2], 0, 1),
    ([3, 1, 2], 100, 3),
])
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_rejects_no_values_and_bad_q() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1], 101)


# -- aggregation ----------------------------------------------------------------------------------
def test_case_report_counts_passes_latency_tokens_and_cost() -> None:
    report = case_report("c", [outcome(True, 100, 100, 0.01), outcome(False, 300, 200, 0.03),
                               outcome(True, 200, 300, 0.02)])
    assert (report.trials, report.passed, report.all_passed) == (3, 2, False)
    assert report.failures == ["trial 2: answer contains 'x' (got y)"]
    assert report.median_ms == 200 and report.p95_ms == 300
    assert report.tokens == 200
    assert report.cost_usd == pytest.approx(0.02)


def test_an_unknown_price_makes_the_cost_unknown_not_zero() -> None:
    report = case_report("c", [outcome(True, 1, cost=0.01), outcome(True, 1, cost=None)])
    assert report.cost_usd is None
    suite = suite_report("s", 2, [report, case_report("d", [outcome(True, 1)] * 2)], [1, 1, 1, 1])
    assert suite.cost_usd is None


def test_suite_report_accuracy_and_pass_k() -> None:
    flaky = case_report("flaky", [outcome(True, 10), outcome(False, 20), outcome(True, 30)])
    solid = case_report("solid", [outcome(True, 40), outcome(True, 50), outcome(True, 60)])
    broken = case_report("broken", [outcome(False, 70), outcome(False, 80), outcome(False, 1000)])
    report = suite_report("suite.yaml", 3, [flaky, solid, broken], [10, 20, 30, 40, 50, 60, 70, 80, 1000])
    assert report.accuracy == pytest.approx(5 / 9)
    assert report.pass_k == pytest.approx(1 / 3)  # only "solid" passed all 3 trials
    assert report.median_ms == 50 and report.p95_ms == 1000
    assert report.tokens == 300 and report.cost_usd == pytest.approx(0.03)


def test_evaluate_runs_each_case_k_times_with_numbered_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int | None]] = []
    results = iter([True, True, False, True])

    def fake_run_one(suite, case, *, trial, **_):
        calls.append((case.name, trial))
        return outcome(next(results), 10.0 * len(calls))

    monkeypatch.setattr(evaluate_module, "run_one", fake_run_one)
    suite = load_task_file(SUITES[0])
    suite.tasks = suite.tasks[:2]
    report = evaluate(suite, trials=2, mode=None, cassettes=Path("c"), model=None, console=Console(), quiet=True)
    assert calls == [(suite.tasks[0].name, 1), (suite.tasks[0].name, 2),
                     (suite.tasks[1].name, 1), (suite.tasks[1].name, 2)]
    assert [c.passed for c in report.cases] == [2, 1]
    assert report.accuracy == 0.75 and report.pass_k == 0.5

    calls.clear()
    results = iter([True, True])
    evaluate(suite, trials=1, mode=None, cassettes=Path("c"), model=None, console=Console(), quiet=True)
    assert [t for _, t in calls] == [None, None]  # one trial: the plain cassette name


# -- end to end -----------------------------------------------------------------------------------
SUITE = """
agent:
  name: adder
  tools: [add]
  max_steps: 3
tools_dir: tools
tasks:
  - name: sum
    input: What is 2 + 3?
    expect_tool: {name: add, arguments: {a: 2, b: 3}}
    expect_contains: "5"
  - name: wrong-answer
    input: What is 2 + 2?
    expect_contains: "4"
"""

TOOL = '''
from react_agent import tool

@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first number.
        b: the second number.
    """
    return a + b
'''


def test_eval_command_prints_the_report_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "adder.py").write_text(TOOL)
    (tmp_path / "suite.yaml").write_text(SUITE)

    def scripted(model, **_):
        return ScriptedModel([tool_call("add", {"a": 2, "b": 3}), reply("2 + 3 = 5")])

    monkeypatch.setattr("react_agent.agent.resolve_model", scripted)
    code = main(["eval", str(tmp_path / "suite.yaml"), "--trials", "2", "--json"])
    report = json.loads(capsys.readouterr().out)

    assert code == 1  # "wrong-answer" fails: the scripted model always says 5
    assert set(report) == {"suite", "trials", "cases", "accuracy", "pass_k", "median_ms", "p95_ms", "tokens",
                           "cost_usd", "notes"}
    assert report["trials"] == 2 and report["accuracy"] == 0.5 and report["pass_k"] == 0.5
    by_case = {c["case"]: c for c in report["cases"]}
    assert set(by_case["sum"]) == {"case", "trials", "passed", "failures", "median_ms", "p95_ms", "tokens",
                                   "cost_usd", "could_not_run"}
    assert by_case["sum"]["could_not_run"] == []
    assert by_case["sum"]["passed"] == 2 and by_case["sum"]["failures"] == []
    assert by_case["sum"]["tokens"] == 60 and by_case["sum"]["cost_usd"] is None  # scripted: no price
    assert by_case["wrong-answer"]["passed"] == 0
    assert len(by_case["wrong-answer"]["failures"]) == 2


def test_eval_command_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "adder.py").write_text(TOOL)
    (tmp_path / "suite.yaml").write_text(SUITE)
    monkeypatch.setattr("react_agent.agent.resolve_model",
                        lambda model, **_: ScriptedModel([tool_call("add", {"a": 2, "b": 3}), reply("5")]))
    assert main(["eval", str(tmp_path / "suite.yaml")]) == 1
    out = capsys.readouterr().out
    assert "accuracy 50%" in out and "pass^1 50%" in out and "✗ wrong-answer" in out


def test_eval_command_line() -> None:
    args = _parser().parse_args(["eval", "tasks/eval/support.yaml", "--trials", "3", "--json", "--replay"])
    assert (args.command, args.trials, args.json, args.replay, args.record) == ("eval", 3, True, True, False)
    assert main(["eval", "tasks/eval/support.yaml", "--trials", "0"]) == 2
    assert main(["eval", "tasks/eval/support.yaml", "--record", "--replay"]) == 2


# -- the shipped suites ---------------------------------------------------------------------------
def test_a_suite_per_agent_is_shipped() -> None:
    assert [p.stem for p in SUITES] == ["code_review", "data_analysis", "quickstart", "research", "router", "support"]


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_shipped_suite_loads_and_every_case_checks_the_work(path: Path) -> None:
    suite = load_task_file(path)
    if path.stem == "quickstart":  # the local model's answer accuracy: enough simple cases for a percentage
        assert len(suite.tasks) >= 20
    else:
        assert 2 <= len(suite.tasks) <= 3
    for case in suite.tasks:
        runner = build_runner(suite, case.agent, model="gpt-4o-mini")
        assert case.expect_tool, case.name
        assert case.expect_contains or case.expect_matches, case.name
        assert len(case.inputs) == 1 and len(case.inputs[0]) < 80, "inputs stay short for a 4k context"
        if runner.output_type is not None:
            assert case.expect_output, f"{case.name}: the output type is not checked"
    names = [c.name for c in suite.tasks]
    task_file = ROOT / "tasks" / path.name
    if task_file.exists():  # cassettes are filed by the file's stem: keep the case names apart
        assert not set(names) & {t.name for t in load_task_file(task_file).tasks}


async def test_router_suite_case_passes_with_a_scripted_model(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("REACT_AGENT_STATE_DIR", str(tmp_path / "state"))
    suite = load_task_file(ROOT / "tasks" / "eval" / "router.yaml")
    case = next(c for c in suite.tasks if c.name == "refund-1009")
    model = ScriptedModel([tool_call("final_answer", {"category": "billing", "reason": "refund"}),
                           tool_call("billing_status", {"order_id": 1009}),
                           reply("Order 1009 was cancelled and refunded: $207.95.")])
    result = await run_task(suite, case, model=model)
    assert result.passed, result.checks
    assert "output validates" in [c.name for c in result.checks]
