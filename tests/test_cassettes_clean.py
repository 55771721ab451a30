"""No cassette may hold credentials: every file under cassettes/ is checked."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import yaml

from react_agent.redact import secret_name

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
SECRET = re.compile(r"authorization|api[-_]key|sk-[A-Za-z0-9_-]{16,}|bearer\s+\S+", re.IGNORECASE)


def all_cassettes() -> list[Path]:
    return sorted(CASSETTES.rglob("*.yaml"))


def test_there_are_cassettes() -> None:
    assert all_cassettes(), "cassettes/ must hold the recorded HTTP traffic the tests replay"


def test_no_credentials_in_any_cassette() -> None:
    leaks = [f"{path.relative_to(CASSETTES)}: {m.group(0)[:20]}" for path in all_cassettes()
             if (m := SECRET.search(path.read_text(encoding="utf-8")))]
    assert not leaks, f"credentials in cassettes: {leaks}"


def test_only_content_type_headers_are_kept() -> None:
    for path in all_cassettes():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for interaction in data["interactions"]:
            for part in ("request", "response"):
                headers = {h.lower() for h in interaction[part].get("headers") or {}}
                assert headers <= {"content-type"}, f"{path.name}: {part} headers {headers}"


def test_no_userinfo_or_key_like_query_in_any_uri() -> None:
    for path in all_cassettes():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for interaction in data["interactions"]:
            uri = urlsplit(interaction["request"]["uri"])
            assert "@" not in uri.netloc, f"{path.name}: userinfo in {uri.netloc!r}"
            keyed = [name for name, _ in parse_qsl(uri.query, keep_blank_values=True) if secret_name(name)]
            assert not keyed, f"{path.name}: key-like query parameters {keyed}"
            assert uri.path.endswith("/chat/completions"), f"{path.name}: path {uri.path!r}"
