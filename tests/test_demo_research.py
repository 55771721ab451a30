"""The research demo tools (tools/research.py), the citation checker and the task file, no network."""

from __future__ import annotations

import email.message
import io
from pathlib import Path

import pytest

from react_agent import ModelRetry
from react_agent.plugins import _import_file
from react_agent.tasks import build_agent, load_task_file, run_task
from react_agent.testing import ScriptedModel, reply, tool_call

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "tasks" / "research.yaml"

GOOD_REPORT = """# Checkpoints in SQLite WAL mode

A checkpoint copies pages from the WAL back into the database file [1].
SQLite checkpoints automatically once the WAL passes 1000 pages, and a long read can stop it [1, 2].

## Sources
[1] doc:sqlite-wal#3
[2] paper:lamport1978
"""


@pytest.fixture(scope="module")
def research():
    """The module itself (same instance as discovery loads), for check_citations and the fetch cache."""
    return _import_file(ROOT / "tools" / "research.py")


async def test_search_documents_ranks_the_right_section_first(tools):
    out = await tools["search_documents"](query="WAL checkpoint")
    assert out.splitlines()[0].startswith("[doc:sqlite-wal#3] Checkpoints: A checkpoint copies pages")
    assert len(out.splitlines()) == 3


async def test_search_abstracts_finds_papers_by_topic_and_author(tools):
    topic = await tools["search_abstracts"](query="vector clocks causality", limit=5)
    assert "[paper:fidge1988] Fidge (1988)" in topic
    by_author = await tools["search_abstracts"](query="Ousterhout")
    assert by_author.startswith("[paper:ongaro2014] Ongaro et al. (2014), In Search of an Understandable")


async def test_searches_bad_inputs(tools):
    for name in ("search_documents", "search_abstracts"):
        with pytest.raises(ModelRetry, match="no words"):
            await tools[name](query="...")
        too_few = await tools[name].invoke('{"query": "raft", "limit": 0}')
        assert too_few.kind == "invalid_arguments" and "greater than or equal to 1" in too_few.content
        assert (await tools[name](query="zebra giraffe")).startswith("No ")


async def test_read_source_forms(tools):
    section = await tools["read_source"](source_id="doc:raft#2")
    assert section.startswith("[doc:raft#2] The Raft consensus algorithm > Leader election\n")
    whole = await tools["read_source"](source_id="[doc:bloom-filters]")
    assert whole.startswith("[doc:bloom-filters] Bloom filters\n#1 Structure:")
    paper = await tools["read_source"](source_id="paper:bloom1970")
    assert paper.startswith("[paper:bloom1970] Space/Time Trade-offs in Hash Coding with Allowable Errors. "
                            "Burton H. Bloom. Communications of the ACM, 1970.")


@pytest.mark.parametrize(("source_id", "why"), [
    ("doc:nope", "No note"), ("doc:../../etc/passwd", "No note"), ("doc:raft#9", "sections 1 to 4"),
    ("paper:nobody2020", "No paper"), ("url:https://example.com", "has not been fetched"),
    ("sqlite-wal", "is not a source id"),
])
async def test_read_source_bad_ids(tools, source_id, why):
    with pytest.raises(ModelRetry, match=why):
        await tools["read_source"](source_id=source_id)


async def test_fetch_is_off_by_default(tools):
    with pytest.raises(ModelRetry, match="Web access is disabled"):
        await tools["fetch_url"](url="https://example.com/")


async def test_fetch_when_enabled_validates_and_extracts_text(tools, research, monkeypatch):
    monkeypatch.setenv("REACT_AGENT_ALLOW_FETCH", "1")
    with pytest.raises(ModelRetry, match="not an http"):
        await tools["fetch_url"](url="file:///etc/passwd")

    page = (b"<html><head><title>Caching  notes</title><style>p{}</style></head>"
            b"<body><script>x()</script><p>ETags make   revalidation cheap.</p></body></html>")
    requested = []

    def fake_urlopen(request, timeout):
        requested.append((request.full_url, timeout))
        response = io.BytesIO(page)
        response.headers = email.message.Message()
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        return response

    monkeypatch.setattr(research.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(research, "_FETCHED", {})
    out = await tools["fetch_url"](url="https://example.org/caching")
    assert out == "[url:https://example.org/caching] Caching notes\nETags make revalidation cheap."
    assert requested == [("https://example.org/caching", research.FETCH_TIMEOUT)]
    assert (await tools["read_source"](source_id="url:https://example.org/caching")).endswith("cheap.")
    report = "Revalidation with ETags is cheap [1].\n\n## Sources\n[1] url:https://example.org/caching\n"
    assert (await tools["verify_report"](report=report)).startswith("OK")


def test_check_citations_accepts_a_good_report(research):
    assert research.check_citations(GOOD_REPORT, research.known_sources()) == []


def test_check_citations_rejects_a_citation_pointing_nowhere(research):
    report = GOOD_REPORT.replace("[1, 2]", "[3]")
    assert research.check_citations(report, research.known_sources()) == [
        "[3] is cited but the Sources list has no entry 3."]


def test_check_citations_rejects_unknown_source_ids(research):
    report = GOOD_REPORT.replace("paper:lamport1978", "paper:madeup2099")
    problems = research.check_citations(report, research.known_sources())
    assert problems == ["Source [2] 'paper:madeup2099' is not a source that was found; use ids from the "
                        "search results (doc:..., paper:..., url:...)."]


def test_check_citations_needs_a_sources_list_and_citations(research):
    problems = research.check_citations("SQLite has a write-ahead log mode for concurrency.", {})
    assert problems[0].startswith("The report has no 'Sources' list")
    assert problems[1] == "The report cites nothing; put [n] after each claim."
    assert problems[2].startswith("No citation for: 'SQLite has a write-ahead log")


def test_check_citations_flags_an_uncited_paragraph_but_not_headings(research):
    report = GOOD_REPORT.replace("## Sources", "- Readers never block writers in WAL mode at all.\n\n## Sources")
    assert research.check_citations(report, research.known_sources()) == [
        "No citation for: '- Readers never block writers in WAL mode at all.'"]


def test_citation_forms(research):
    sources = {"doc:a": "A", "doc:b": "B", "doc:c": "C"}
    report = ("Claim one is supported by sources [1-3].\nClaim two is also supported [2][3].\n\n"
              "**Sources:**\n1. doc:a — note A\n- [2] `doc:b`\n3) see (doc:c).\n")
    assert research.check_citations(report, sources) == []
    assert research.check_citations(report.replace("[1-3]", "[1-4]"), sources) == [
        "[4] is cited but the Sources list has no entry 4."]


async def test_verify_report_tool(tools):
    assert (await tools["verify_report"](report=GOOD_REPORT)).startswith("OK: every citation resolves (2 sources)")
    out = await tools["verify_report"](report=GOOD_REPORT.replace("[1, 2]", "[7]"))
    assert out == "Fix these problems, then verify again:\n- [7] is cited but the Sources list has no entry 7."
    with pytest.raises(ModelRetry, match="report is empty"):
        await tools["verify_report"](report="  ")


async def test_scripted_research_run():
    model = ScriptedModel([
        tool_call("search_documents", {"query": "WAL checkpoint"}),
        tool_call("read_source", {"source_id": "doc:sqlite-wal#3"}),
        tool_call("verify_report", {"report": GOOD_REPORT.replace("[1, 2]", "[3]")}),
        tool_call("verify_report", {"report": GOOD_REPORT}),
        reply(GOOD_REPORT),
    ])
    agent = build_agent(load_task_file(TASKS), model=model)
    assert sorted(agent.tools) == ["read_source", "search_abstracts", "search_documents", "verify_report"]
    result = await agent.run("What does a checkpoint do in SQLite WAL mode?")
    assert result.status == "completed"
    contents = [o.content for s in result.steps for o in s.observations]
    assert "[3] is cited but" in contents[2]
    assert contents[3].startswith("OK")
    assert result.output.endswith("[2] paper:lamport1978")


async def test_task_file_expectations_pass_with_a_scripted_model():
    task_file = load_task_file(TASKS)
    task = next(t for t in task_file.tasks if t.name == "wal-checkpoint")
    model = ScriptedModel([tool_call("search_documents", {"query": "WAL checkpoint"}), reply(GOOD_REPORT)])
    outcome = await run_task(task_file, task, model=model)
    assert outcome.passed, outcome.checks
