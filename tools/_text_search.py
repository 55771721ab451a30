"""Ranked full-text search for the demo tools: SQLite FTS5 (porter stemming, bm25 ranking) built in
memory from small local corpora. Not a plugin (leading underscore); tool files load it by path."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from react_agent import ModelRetry

_WORD = re.compile(r"[A-Za-z0-9]+")
_STOPWORD_TEXT = (
    "a an and are as at be been but by can could do does did for from had has have how i if in into is it its "
    "me my no not of on or our please so than that the their them then there these they this to was we were "
    "what when where which who why will with would you your"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def match_expression(text: str) -> str | None:
    """An FTS5 MATCH expression (any of the words) for free text; None when it has no usable word."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in STOPWORDS] or words
    unique = list(dict.fromkeys(kept))[:24]
    return " OR ".join(f'"{w}"' for w in unique) if unique else None


def require_words(query: str, example: str) -> str:
    """The MATCH expression for ``query``; a ModelRetry when the query has no word to search for."""
    expression = match_expression(query)
    if expression is None:
        raise ModelRetry(f"The query has no words to search for; use a few keywords, e.g. {example}.")
    return expression


def markdown_sections(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(title, [(section heading, section text)]) of a Markdown file with one ``#`` title and ``##``
    sections; text before the first ``##`` is a section headed by the title."""
    title = path.stem
    sections: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
        elif line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif line.strip():
            if not sections:
                sections.append((title, []))
            sections[-1][1].append(line.strip())
    return title, [(heading, " ".join(lines)) for heading, lines in sections if lines]


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (with an ellipsis)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


Row = tuple[str, int, str, str, str]  # doc id, section number, title, heading, text


@dataclass(frozen=True, slots=True)
class Hit:
    doc_id: str
    section: int
    title: str
    heading: str
    text: str


class Index:
    """An in-memory FTS5 index of (doc id, section number, title, heading, text) rows, rebuilt only when
    the fingerprint of its source files changes. Safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._fingerprint: object = None

    @staticmethod
    def fingerprint(files: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
        return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(files))

    def search(self, fingerprint: object, load: Callable[[], Iterable[Row]], query: str, limit: int) -> list[Hit]:
        """Rank rows for ``query`` (bm25: title and heading weigh more than the text); ``load()`` yields
        the rows and is called only when ``fingerprint`` differs from the indexed one."""
        expression = match_expression(query)
        if expression is None:
            return []
        with self._lock:
            if self._conn is None or self._fingerprint != fingerprint:
                conn = sqlite3.connect(":memory:", check_same_thread=False)
                conn.execute("CREATE VIRTUAL TABLE passages USING fts5("
                             "doc_id UNINDEXED, section UNINDEXED, title, heading, text, "
                             "tokenize = 'porter unicode61')")
                conn.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?)", load())
                conn.commit()
                if self._conn is not None:
                    self._conn.close()
                self._conn, self._fingerprint = conn, fingerprint
            rows = self._conn.execute(
                "SELECT doc_id, section, title, heading, text FROM passages WHERE passages MATCH ? "
                "ORDER BY bm25(passages, 0, 0, 3.0, 2.0, 1.0), doc_id, section LIMIT ?",
                (expression, limit),
            ).fetchall()
        return [Hit(str(d), int(s), t, h, x) for d, s, t, h, x in rows]
