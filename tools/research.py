"""Research tools over local sources, plus a citation checker for the final report.

Sources and their ids:

* ``doc:<name>`` — the technical notes in ``demo/research/docs/*.md``; ``doc:<name>#<n>`` is section n;
* ``paper:<id>`` — paper summaries in ``demo/research/abstracts.csv``;
* ``url:<url>`` — a web page read with ``fetch_url`` (off unless ``REACT_AGENT_ALLOW_FETCH=1``).

Both local corpora are searched with SQLite FTS5 (bm25). The agent's final answer is a Markdown report
whose claims carry ``[n]`` markers and which ends with a "Sources" list mapping each n to a source id;
``verify_report`` checks that every marker resolves to a real source before the agent answers.
"""

from __future__ import annotations

import csv
import os
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated

from pydantic import Field

from react_agent import ModelRetry, tool
from react_agent.plugins import load_sibling

text_search = load_sibling(__file__, "_text_search")

DEMO_DIR_ENV = "REACT_AGENT_DEMO_DIR"
FETCH_ENV = "REACT_AGENT_ALLOW_FETCH"
FETCH_TIMEOUT = 10.0
FETCH_MAX_BYTES = 500_000
SNIPPET_CHARS = 220
READ_CHARS = 2500
_DOCS_INDEX = text_search.Index()
_PAPERS_INDEX = text_search.Index()
_FETCHED: dict[str, tuple[str, str]] = {}  # url → (title, text), pages read in this process


def research_dir() -> Path:
    override = os.environ.get(DEMO_DIR_ENV)
    base = Path(override) if override else Path(__file__).resolve().parent.parent / "demo"
    return base / "research"


def _doc_files() -> list[Path]:
    return sorted((research_dir() / "docs").glob("*.md"))


def _doc_rows() -> list[tuple[str, int, str, str, str]]:
    rows = []
    for path in _doc_files():
        title, sections = text_search.markdown_sections(path)
        rows.extend((path.stem, n, title, heading, text) for n, (heading, text) in enumerate(sections, start=1))
    return rows


def _papers() -> dict[str, dict[str, str]]:
    path = research_dir() / "abstracts.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def _paper_rows() -> list[tuple[str, int, str, str, str]]:
    # the authors go in the heading column, so a search for "Lamport" finds his papers
    return [(pid, 0, p["title"], f"{p['authors']} {p['year']} {p['venue']}", p["summary"])
            for pid, p in _papers().items()]


def _first_author(authors: str) -> str:
    first = authors.split(";", 1)[0].replace(" et al.", "").strip()
    surname = first.split()[-1] if first else "?"
    return surname + (" et al." if ";" in authors or "et al." in authors else "")


def known_sources() -> dict[str, str]:
    """Every source id a report may cite → its title."""
    known: dict[str, str] = {}
    for path in _doc_files():
        title, sections = text_search.markdown_sections(path)
        known[f"doc:{path.stem}"] = title
        for n, (heading, _) in enumerate(sections, start=1):
            known[f"doc:{path.stem}#{n}"] = f"{title} > {heading}"
    for pid, paper in _papers().items():
        known[f"paper:{pid}"] = paper["title"]
    for url, (title, _) in _FETCHED.items():
        known[f"url:{url}"] = title
    return known


@tool(untrusted_output=True)
def search_documents(query: str, limit: Annotated[int, Field(ge=1, le=5)] = 3) -> str:
    """Search the technical notes (SQLite, HTTP caching, clocks, Raft, Bloom filters, TCP).

    Args:
        query: a few keywords, e.g. "WAL checkpoint".
        limit: how many passages to return.
    """
    text_search.require_words(query, "'raft election'")
    hits = _DOCS_INDEX.search(_DOCS_INDEX.fingerprint(_doc_files()), _doc_rows, query, limit)
    if not hits:
        return f"No notes match {query!r}. Try other keywords or search_abstracts."
    return "\n".join(f"[doc:{h.doc_id}#{h.section}] {h.heading}: {text_search.shorten(h.text, SNIPPET_CHARS)}"
                     for h in hits)


@tool(untrusted_output=True)
def search_abstracts(query: str, limit: Annotated[int, Field(ge=1, le=5)] = 3) -> str:
    """Search summaries of research papers (distributed systems, networking, retrieval, agents).

    Args:
        query: a few keywords, e.g. "vector clocks".
        limit: how many papers to return.
    """
    text_search.require_words(query, "'raft election'")
    path = research_dir() / "abstracts.csv"
    hits = _PAPERS_INDEX.search(_PAPERS_INDEX.fingerprint([path]), _paper_rows, query, limit)
    if not hits:
        return f"No paper matches {query!r}. Try other keywords or search_documents."
    papers = _papers()
    lines = []
    for h in hits:
        paper = papers[h.doc_id]
        lines.append(f"[paper:{h.doc_id}] {_first_author(paper['authors'])} ({paper['year']}), "
                     f"{paper['title']}: {text_search.shorten(paper['summary'], SNIPPET_CHARS)}")
    return "\n".join(lines)


@tool(untrusted_output=True)
def read_source(source_id: str) -> str:
    """Read a source in full: a note (doc:NAME or doc:NAME#N for one section), a paper (paper:ID) or a
    fetched page (url:URL).

    Args:
        source_id: an id from a search result, e.g. doc:sqlite-wal#3 or paper:lamport1978.
    """
    source_id = source_id.strip().strip("[]")
    kind, _, rest = source_id.partition(":")
    if kind == "doc":
        name, _, section = rest.partition("#")
        path = research_dir() / "docs" / f"{name}.md"
        if not re.fullmatch(r"[\w-]+", name) or not path.is_file():
            names = ", ".join(f"doc:{p.stem}" for p in _doc_files())
            raise ModelRetry(f"No note {source_id!r}. Notes: {names}")
        title, sections = text_search.markdown_sections(path)
        if section:
            if not section.isdigit() or not 1 <= int(section) <= len(sections):
                raise ModelRetry(f"{name} has sections 1 to {len(sections)}; {section!r} is not one.")
            heading, text = sections[int(section) - 1]
            return f"[doc:{name}#{section}] {title} > {heading}\n{text}"
        body = "\n".join(f"#{n} {heading}: {text}" for n, (heading, text) in enumerate(sections, start=1))
        return f"[doc:{name}] {title}\n{text_search.shorten(body, READ_CHARS)}"
    if kind == "paper":
        paper = _papers().get(rest)
        if paper is None:
            raise ModelRetry(f"No paper {source_id!r}. Use an id from search_abstracts, e.g. paper:lamport1978.")
        return (f"[paper:{rest}] {paper['title']}. {paper['authors']}. {paper['venue']}, {paper['year']}.\n"
                f"{paper['summary']}")
    if kind == "url":
        if rest not in _FETCHED:
            raise ModelRetry(f"{rest!r} has not been fetched; call fetch_url first.")
        title, text = _FETCHED[rest]
        return f"[url:{rest}] {title}\n{text_search.shorten(text, READ_CHARS)}"
    raise ModelRetry(f"{source_id!r} is not a source id; ids look like doc:sqlite-wal, doc:raft#2 or "
                     "paper:ongaro2014.")


class _TextExtractor(HTMLParser):
    """Visible text and <title> of an HTML page."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping and data.strip():
            self.parts.append(" ".join(data.split()))


def html_to_text(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML document."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join(parser.title.split()), " ".join(parser.parts)


@tool(untrusted_output=True)
def fetch_url(url: str) -> str:
    """Fetch a web page and return its text (only when web access is enabled).

    Args:
        url: an http or https address.
    """
    if os.environ.get(FETCH_ENV) != "1":
        raise ModelRetry("Web access is disabled here; use search_documents and search_abstracts instead.")
    url = url.strip()
    if not re.match(r"^https?://[^\s/]+", url):
        raise ModelRetry(f"{url!r} is not an http(s) URL.")
    request = urllib.request.Request(url, headers={"User-Agent": "react-agent-research-demo/0.1"})  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 - http(s) only
            content_type = response.headers.get("Content-Type", "")
            charset = response.headers.get_content_charset() or "utf-8"
            data = response.read(FETCH_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ModelRetry(f"{url} answered HTTP {exc.code}; try another source.") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelRetry(f"Could not fetch {url} ({reason}); try another source.") from None
    if not content_type.startswith(("text/", "application/xhtml")):
        raise ModelRetry(f"{url} is {content_type or 'not text'}; only web pages and text can be read.")
    text = data[:FETCH_MAX_BYTES].decode(charset, errors="replace")
    title, body = html_to_text(text) if "html" in content_type else ("", " ".join(text.split()))
    _FETCHED[url] = (title or url, body)
    return f"[url:{url}] {title or url}\n{text_search.shorten(body, READ_CHARS)}"


_DASH = "-\u2013"  # hyphen or en dash in a range like [1-3]
_CITATION = re.compile(rf"\[(\d+(?:\s*[,{_DASH}]\s*\d+)*)\]")
_SOURCES_HEADING = re.compile(r"^\s*(?:#{1,6}\s*)?(?:\*\*)?(?:sources|references)(?:\*\*)?\s*:?\s*(?:\*\*)?\s*$",
                              re.IGNORECASE)
_SOURCE_LINE = re.compile(r"^\s*(?:[-*+]\s*)?\[?(\d+)\]?[.):]?\s+(.+)$")
_SOURCE_ID = re.compile(r"\b((?:doc|paper|url):\S+)")
_RANGE = re.compile(rf"^(\d+)\s*[{_DASH}]\s*(\d+)$")


def _cited_numbers(marker: str) -> list[str]:
    """"1, 3-4" → ["1", "3", "4"]."""
    numbers: list[str] = []
    for part in (p.strip() for p in marker.split(",")):
        span = _RANGE.match(part)
        if span and int(span[1]) <= int(span[2]) <= int(span[1]) + 20:
            numbers.extend(str(n) for n in range(int(span[1]), int(span[2]) + 1))
        else:
            numbers.append(part)
    return numbers


def split_report(report: str) -> tuple[str, dict[str, str]]:
    """(body, {number: source id}) — the text before the Sources heading, and that list parsed."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if _SOURCES_HEADING.match(line)), None)
    if start is None:
        return report, {}
    listed: dict[str, str] = {}
    for line in lines[start + 1:]:
        match = _SOURCE_LINE.match(line)
        if match is None:
            continue
        found = _SOURCE_ID.search(match.group(2))
        source = found.group(1) if found else match.group(2).split()[0]
        listed.setdefault(match.group(1), source.strip("`*").rstrip(".,;)]`*"))
    return "\n".join(lines[:start]), listed


def check_citations(report: str, sources: dict[str, str]) -> list[str]:
    """Problems with a report's citations ([] when it is fine).

    ``sources`` maps every source id the report may cite to its title. Each ``[n]`` in the body must
    have an entry ``n`` in the report's Sources list, each entry must name one of ``sources``, and each
    paragraph or list item of the body must cite something.
    """
    body, listed = split_report(report)
    problems = []
    if not listed:
        problems.append("The report has no 'Sources' list; end it with '## Sources' and lines like "
                        "'[1] doc:sqlite-wal#2'.")
    cited: list[str] = []
    for match in _CITATION.finditer(body):
        cited.extend(n for n in _cited_numbers(match.group(1)) if n not in cited)
    if not cited:
        problems.append("The report cites nothing; put [n] after each claim.")
    for number in cited:
        if listed and number not in listed:
            problems.append(f"[{number}] is cited but the Sources list has no entry {number}.")
    for number, source in listed.items():
        if source not in sources:
            problems.append(f"Source [{number}] {source!r} is not a source that was found; use ids from "
                            "the search results (doc:..., paper:..., url:...).")
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]|\d+\.)\s)", body):
        text = " ".join(block.split())
        if not text or text.startswith("#") or len(text.split()) < 6:
            continue
        if not _CITATION.search(text):
            problems.append(f"No citation for: {text_search.shorten(text, 80)!r}")
    return problems


@tool
def verify_report(report: str) -> str:
    """Check a draft report's [n] citations against its Sources list and the real sources. Call it
    before giving the final answer.

    Args:
        report: the full Markdown report, ending with the Sources list.
    """
    if not report.strip():
        raise ModelRetry("report is empty; pass the whole draft report.")
    problems = check_citations(report, known_sources())
    if not problems:
        _, listed = split_report(report)
        return f"OK: every citation resolves ({len(listed)} sources). Give this report as the final answer."
    return "Fix these problems, then verify again:\n" + "\n".join(f"- {p}" for p in problems[:10])
