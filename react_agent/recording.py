"""Record and replay a run's HTTP traffic with vcrpy.

* Matching ignores host, port, query and headers (a local server gets a new port every run) and
  compares the method, the path and the JSON request body.
* Nothing but ``content-type`` is kept of the request and response headers, so ``authorization`` and
  ``api-key`` headers never reach a file; request URIs lose their userinfo (``user:KEY@``) and every
  query parameter with a key-like name (``redact.redact_url``), so a key in the base URL does not either.
* The cassette keeps the date the prompts were rendered with, the run's fence around untrusted tool
  output and the model name, so a replay sends byte-identical requests on another day.
* A replay whose requests differ from the recording raises ``ReplayMismatchError`` naming the request
  and the fields that differ.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ReplayMismatchError, UserError
from .redact import redact_url

if TYPE_CHECKING:
    from .model import Model

__all__ = ["Cassette", "body_differences", "cassette", "replay_model"]

Mode = Literal["record", "replay"]
KEPT_HEADERS = {"content-type"}
REPLAY_URL = "http://replay.invalid/v1"  # never contacted: every answer comes from the cassette


def _json(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        return json.loads(body)
    except ValueError:
        return body


def body_differences(recorded: Any, live: Any, path: str = "", limit: int = 5) -> list[str]:
    """Where two JSON values differ, as ``path: recorded X, now Y`` lines (at most ``limit``)."""
    out: list[str] = []

    def short(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 120 else text[:117] + "..."

    def walk(a: Any, b: Any, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in b:
                    out.append(f"{where}.{key}: recorded {short(a[key])}, now missing")
                elif key not in a:
                    out.append(f"{where}.{key}: not recorded, now {short(b[key])}")
                else:
                    walk(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list) and isinstance(b, list):
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{where}[{i}]")
            if len(a) != len(b):
                out.append(f"{where}: recorded {len(a)} items, now {len(b)}")
        elif isinstance(a, str) and isinstance(b, str):
            if a != b:
                at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
                start = max(0, at - 30)
                out.append(f"{where or 'body'} (from character {at}): recorded {short(a[start:at + 60])}, "
                           f"now {short(b[start:at + 60])}")
        elif a != b:
            out.append(f"{where or 'body'}: recorded {short(a)}, now {short(b)}")

    walk(recorded, live, path)
    return [line.lstrip(".") for line in out]


def _json_body_matcher(r1: Any, r2: Any) -> None:
    differences = body_differences(_json(r2.body), _json(r1.body))
    if differences:
        raise AssertionError("; ".join(differences))


def _strip_request(request: Any) -> Any:
    if request.method == "GET" and request.path.endswith("/models"):
        return None  # the local server's health check: not part of the run, not replayed
    for name in list(request.headers):
        if name.lower() not in KEPT_HEADERS:
            del request.headers[name]
    request.uri = redact_url(request.uri)
    return request


def _strip_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers") or {}
    response["headers"] = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
    return response


def replay_model(name: str | None) -> Model:
    """The model a replay talks to: same name and default settings as the recording, no server."""
    from .local import LOCAL_NAME, LocalModel  # noqa: PLC0415
    from .model import OpenAIModel  # noqa: PLC0415

    if name == LOCAL_NAME:
        return LocalModel(base_url=REPLAY_URL)
    return OpenAIModel(name, base_url=REPLAY_URL, api_key="replay", max_retries=0)


def make_vcr(mode: Mode) -> Any:
    import vcr  # noqa: PLC0415 - only record/replay needs vcrpy

    recorder = vcr.VCR(
        record_mode="all" if mode == "record" else "none",
        match_on=("method", "path", "json_body"),
        before_record_request=_strip_request,
        before_record_response=_strip_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("json_body", _json_body_matcher)
    return recorder


@dataclass
class Cassette:
    path: Path
    mode: Mode
    today: str
    model: str | None
    raw: Any
    fence: str | None = None

    @property
    def variables(self) -> dict[str, str]:
        """What a recording pins of a run's prompt variables: the date, and the fence around untrusted
        tool output (random per run otherwise), so a replay sends byte-identical requests."""
        return {"today": self.today, **({"fence": self.fence} if self.fence else {})}

    def mismatch(self, exc: Exception) -> ReplayMismatchError:
        """Turn vcrpy's 'cannot overwrite' into which request differs and how."""
        played = sum(1 for i in range(len(self.raw.data)) if self.raw.play_counts[i])
        failed = getattr(exc, "failed_request", None)
        live = _json(failed.body) if failed is not None else None
        if played < len(self.raw.requests):
            recorded = _json(self.raw.requests[played].body)
            if self.raw.requests[played].method != getattr(failed, "method", "POST"):
                return ReplayMismatchError(str(self.path), played + 1, [
                    f"method: recorded {self.raw.requests[played].method}, now {getattr(failed, 'method', '?')}"])
            differences = body_differences(recorded, live) or ["method or path differ"]
        else:
            differences = [f"the recording holds {len(self.raw.requests)} requests; the run made more"]
        return ReplayMismatchError(str(self.path), played + 1, differences)


@contextlib.contextmanager
def cassette(path: Path, mode: Mode, model: str | None = None) -> Iterator[Cassette]:
    """Record to, or replay from, one cassette file. In replay the file must exist."""
    from vcr.errors import CannotOverwriteExistingCassetteException, MissingMetadataError  # noqa: PLC0415

    from .approval import new_fence  # noqa: PLC0415

    if mode == "replay" and not path.is_file():
        raise UserError(f"no cassette at {path}: record it first with --record")
    if mode == "record":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    with make_vcr(mode).use_cassette(str(path)) as raw:
        today = raw.get_metadata("today", date.today().isoformat())
        recorded_model = raw.get_metadata("model", model)
        try:
            fence: str | None = raw.get_metadata("fence", new_fence())
        except MissingMetadataError:  # recorded before fences existed: its agents read no untrusted output
            fence = None
        handle = Cassette(path, mode, today, recorded_model, raw, fence)
        try:
            yield handle
        except CannotOverwriteExistingCassetteException as exc:
            raise handle.mismatch(exc) from None
