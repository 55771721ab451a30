"""What models actually send as tool arguments: every tool call in the recorded cassettes, each
argument's JSON type against the type in the schema sent with the request. Decides the strictness
default (README, "Argument strictness").

    python bench/cassette_arguments.py [cassettes]
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path
from typing import Any

import yaml


def tool_calls(body: Any) -> list[tuple[str, str]]:
    """(name, arguments) of each tool call in a recorded response, plain JSON or SSE."""
    text = body.get("string", "") if isinstance(body, dict) else body
    text = (text.decode() if isinstance(text, bytes) else text).strip()
    if text.startswith("{"):
        return [(c["function"]["name"], c["function"]["arguments"])
                for choice in json.loads(text).get("choices", [])
                for c in (choice.get("message") or {}).get("tool_calls") or []]
    calls: dict[int, list[str]] = {}
    for line in text.splitlines():
        data = line[5:].strip() if line.startswith("data:") else "[DONE]"
        if data == "[DONE]":
            continue
        for choice in json.loads(data).get("choices", []):
            for c in (choice.get("delta") or {}).get("tool_calls") or []:
                entry = calls.setdefault(c.get("index", 0), ["", ""])
                entry[0] += (c.get("function") or {}).get("name") or ""
                entry[1] += (c.get("function") or {}).get("arguments") or ""
    return [(name, arguments) for name, arguments in calls.values()]


def json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else "object"


def schema_types(prop: dict[str, Any]) -> set[str]:
    if "anyOf" in prop:
        return {t for option in prop["anyOf"] for t in schema_types(option)}
    kind = prop.get("type", "any")
    return set(kind) if isinstance(kind, list) else {kind}


def main(folder: str) -> None:
    counts: collections.Counter[str] = collections.Counter()
    files = sorted(Path(folder).rglob("*.yaml"))
    for path in files:
        for interaction in yaml.safe_load(path.read_text()).get("interactions", []):
            request = json.loads(interaction["request"]["body"])
            schemas = {t["function"]["name"]: t["function"]["parameters"] for t in request.get("tools", [])}
            for name, raw in tool_calls(interaction["response"]["body"]):
                counts["calls"] += 1
                try:
                    arguments = json.loads(raw or "{}")
                except ValueError:
                    try:
                        arguments = json.loads(raw or "{}", strict=False)
                        counts["JSON only with control characters allowed (literal newlines)"] += 1
                    except ValueError:
                        counts["not JSON at all"] += 1
                        continue
                if not isinstance(arguments, dict) or name not in schemas:
                    continue
                properties = schemas[name].get("properties", {})
                for key, value in arguments.items():
                    if key not in properties:
                        continue
                    wanted, sent = schema_types(properties[key]), json_type(value)
                    fits = "any" in wanted or sent in wanted or (sent == "integer" and "number" in wanted)
                    counts["arguments"] += 1
                    counts[f"{'fits' if fits else 'NEEDS COERCION'}: {name}.{key} sent {sent} for "
                           f"{'|'.join(sorted(wanted))}"] += 1
    print(f"{len(files)} cassettes")
    for label, count in sorted(counts.items()):
        print(f"{count:5d}  {label}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cassettes")
