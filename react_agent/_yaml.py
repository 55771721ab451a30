"""Reading a YAML file someone else wrote: bounded size, UTF-8 only, bounded nesting and alias expansion,
no duplicate keys. Every problem is a ``TaskFileError`` naming the file and, where there is one, the line.

PyYAML's ``SafeLoader`` builds no objects from tags, but it still follows aliases (a 645-byte file can
expand into millions of nodes), recurses once per nesting level (5,000 levels is a ``RecursionError``) and
keeps the last of two equal keys. ``_LimitedLoader`` counts and refuses each of these while composing.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from .errors import TaskFileError

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_EXPANDED", "MAX_FILE_BYTES", "read_yaml"]

MAX_FILE_BYTES = 1024 * 1024  # a task file is a page of settings and prompts, not a data set
MAX_DEPTH = 64  # nested mappings and lists
MAX_ALIASES = 100  # `*name` uses in one file
MAX_EXPANDED = 2_000_000  # nodes plus scalar characters once every alias is expanded

_WIDE_BOMS = {codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32",  # before UTF-16: FF FE 00 00
              codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16"}


class _LimitError(yaml.MarkedYAMLError):
    """A limit of this loader; a ``MarkedYAMLError`` so it reports the line like PyYAML's own errors."""


class _LimitedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expanded = 0  # size of the document so far, aliases counted as copies
        self._sizes: dict[str, int] = {}  # anchor -> expanded size of its node, once composed

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        is_alias = self.check_event(AliasEvent)  # also makes the next event `current_event`, unconsumed
        event = self.current_event
        if is_alias:
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _LimitError(problem=f"more than {MAX_ALIASES} aliases (*name)", problem_mark=event.start_mark)
            if event.anchor in self.anchors and event.anchor not in self._sizes:
                raise _LimitError(problem=f"alias *{event.anchor} refers to itself", problem_mark=event.start_mark)
            self._grow(self._sizes.get(event.anchor, 0), event)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitError(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        before = self._expanded
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._grow(1 + (len(node.value) if isinstance(node, ScalarNode) else 0), event)
        if event.anchor is not None:
            self._sizes[event.anchor] = self._expanded - before
        return node

    def _grow(self, size: int, event: Any) -> None:
        self._expanded += size
        if self._expanded > MAX_EXPANDED:
            raise _LimitError(problem=f"expands (aliases included) to more than {MAX_EXPANDED:,} nodes and characters",
                              problem_mark=event.start_mark)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, MappingNode) else []:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _LimitError(problem=f"duplicate key {key!r} (first on line {seen[key]})",
                                  problem_mark=key_node.start_mark)
            seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _read_text(path: Path) -> str:
    """The file as text: a regular file, at most ``MAX_FILE_BYTES``, UTF-8 (a UTF-8 BOM is fine)."""
    try:
        if path.is_dir():
            raise TaskFileError(str(path), "", "is a directory, expected a YAML task file")
        if not path.exists():
            raise TaskFileError(str(path), "", "no such file")
        if not path.is_file():
            raise TaskFileError(str(path), "", "not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise TaskFileError(str(path), "", f"{path.stat().st_size:,} bytes, more than the "
                                               f"{MAX_FILE_BYTES:,}-byte limit for a task file")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TaskFileError(str(path), "", f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise TaskFileError(str(path), "", f"more than the {MAX_FILE_BYTES:,}-byte limit for a task file")
    for bom, name in _WIDE_BOMS.items():
        if data.startswith(bom):
            raise TaskFileError(str(path), "", f"{name} encoded; save it as UTF-8")
    if b"\x00" in data:
        raise TaskFileError(str(path), _line(data, data.index(b"\x00")),
                            "a NUL byte: a binary or UTF-16/32 file, expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TaskFileError(str(path), _line(data, exc.start),
                            f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8",
                            ) from None


def _line(data: bytes, offset: int) -> str:
    lines = data.count(b"\n", 0, offset) + 1
    return f"line {lines}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_yaml(path: Path) -> Any:
    """The one YAML document in ``path``, within the limits above; ``None`` for an empty document."""
    text = _read_text(path)
    try:
        loader = _LimitedLoader(text)  # checks for characters YAML does not allow
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise TaskFileError(str(path), f"line {line}", f"character {exc.character:#06x} is not allowed in YAML "
                                                       "(a control character?)") from None
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}" if exc.problem_mark else "YAML"
        problem = _one_line(": ".join(part for part in (exc.context, exc.problem) if part) or str(exc))
        raise TaskFileError(str(path), where, f"not valid YAML ({problem})" if not isinstance(exc, _LimitError)
                            else problem) from None
    except yaml.YAMLError as exc:
        raise TaskFileError(str(path), "YAML", f"not valid YAML ({_one_line(str(exc))})") from None
