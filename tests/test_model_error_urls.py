"""Every failed model request names its URL, credentials removed (the README's exit 3): an HTTP error
status, an ``error`` object in a 200 answer or inside an SSE stream, a stream that broke off or ended
early — streamed and not. ``OpenAIModel`` over an httpx mock transport; no network."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx2
import openai
import pytest
from conftest import use_model

from react_agent import Agent, ModelHTTPError
from react_agent.cli import main
from react_agent.model import OpenAIModel

# These URLs carry user:password on purpose (what must never reach a file or a message); the
# warning that the key is then not sent is tested in test_model_error_urls.py.
pytestmark = pytest.mark.filterwarnings("ignore:the base URL .* carries user.password:UserWarning")

BASE = "http://user:hunter2@mock:8080/v1?api-key=s3cret"
URL = "http://mock:8080/v1/chat/completions"
SSE = {"content-type": "text/event-stream"}
MESSAGES = [{"role": "user", "content": "hi"}]
RATE_LIMITED = {"error": {"code": 429, "message": "Rate limited, slow down"}}


def sse(*payloads: dict | str) -> bytes:
    return b"".join(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads)


def chunk(text: str) -> dict:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


class Broken(httpx2.AsyncByteStream):
    """An SSE body that sends ``parts`` and then loses its connection."""

    def __init__(self, *parts: bytes) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        raise httpx2.ReadError("connection reset")


ANSWERS: dict[str, Callable[[], httpx2.Response]] = {
    "HTTP 429 with an error object": lambda: httpx2.Response(429, json=RATE_LIMITED),
    "HTTP 500 with an error object": lambda: httpx2.Response(500, json={"error": {"message": "boom"}}),
    "an error object in a 200 answer": lambda: httpx2.Response(200, json=RATE_LIMITED),
    "an error object inside the stream": lambda: httpx2.Response(200, headers=SSE, content=sse(chunk(""),
                                                                                                RATE_LIMITED)),
    "a stream that broke off": lambda: httpx2.Response(200, headers=SSE, stream=Broken(sse(chunk("")))),
    "a stream that ended early": lambda: httpx2.Response(200, headers=SSE, content=sse(chunk(""))),
}
STREAMED_ONLY = {"an error object inside the stream", "a stream that broke off", "a stream that ended early"}


def mocked(monkeypatch: pytest.MonkeyPatch, answer: Callable[[], httpx2.Response]) -> OpenAIModel:
    real_client = openai.AsyncOpenAI
    monkeypatch.setattr(openai, "AsyncOpenAI", lambda **kwargs: real_client(
        **{**kwargs, "http_client": httpx2.AsyncClient(transport=httpx2.MockTransport(lambda _: answer()))}))
    model = OpenAIModel("gpt-4o-mini", base_url=BASE, api_key="sk-secret-key", max_retries=0)
    model.retry_backoff = 0.0
    return model


def assert_names_the_url(text: str) -> None:
    assert f"model request to {URL} failed" in text, text
    assert "hunter2" not in text and "s3cret" not in text and "sk-secret-key" not in text, text


@pytest.mark.parametrize(("case", "stream"), [
    pytest.param(case, stream, id=f"{case}-{'stream' if stream else 'complete'}")
    for case in ANSWERS for stream in (False, True) if stream or case not in STREAMED_ONLY])  # a stream's own failures
async def test_a_failed_model_request_names_its_url(monkeypatch: pytest.MonkeyPatch, case: str, stream: bool
                                                    ) -> None:
    model = mocked(monkeypatch, ANSWERS[case])
    with pytest.raises(ModelHTTPError) as caught:
        if stream:
            async for _ in model.stream(MESSAGES, [], {}):
                pass
        else:
            await model.complete(MESSAGES, [], {})
    assert_names_the_url(str(caught.value))
    assert caught.value.url == URL


def test_the_cli_names_the_url_of_an_error_the_server_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks.yaml").write_text("agent:\n  name: solo\ntasks:\n  - name: one\n    input: hi\n")
    use_model(monkeypatch, mocked(monkeypatch, ANSWERS["an error object in a 200 answer"]))
    assert main(["run", "tasks.yaml"]) == 3
    err = capsys.readouterr().err
    assert "Rate limited" in err
    assert_names_the_url(err)


async def test_an_agent_run_ending_on_a_stream_error_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    model = mocked(monkeypatch, ANSWERS["an error object inside the stream"])
    events = [e async for e in Agent(model=model).stream("hi")]
    result = events[-1].result  # type: ignore[attr-defined]
    assert result.error_type == "ModelHTTPError" and result.error is not None
    assert_names_the_url(result.error)


def test_a_base_url_with_user_info_says_the_key_is_not_sent() -> None:
    """httpx turns `user:pw@` into HTTP Basic auth, replacing the SDK's Bearer key — which then silently
    never reached the server."""
    from react_agent.model import _new_client  # noqa: PLC0415 - the one place clients are made

    with pytest.warns(UserWarning, match=r"Basic auth .* the API key is not sent") as seen:
        _new_client("http://bob:pw@127.0.0.1:9/v1", "sk-secret-key", 0, 5.0)
    assert "pw@" not in str(seen[0].message) and "sk-secret-key" not in str(seen[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _new_client("http://127.0.0.1:9/v1", "sk-secret-key", 0, 5.0)  # no user info: no warning
