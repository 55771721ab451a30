"""The FastAPI app: thin routes over the ``RunManager`` (runs), the store (sessions) and the keys (users).

Every ``/v1`` route needs ``Authorization: Bearer KEY``; a user sees and touches only their own runs and
sessions — another user's are "not found" (404), like ones that do not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..approval import Approve, Decision, Deny
from ..errors import StoreUnavailableError, UserError
from ..history import fold
from ..router import Router
from ..steps import RunResult
from ..stores import SessionInfo, Store
from ..viewer import render_html, result_tree, run_tree
from .auth import Keys
from .manager import Channel, Conflict, NotFound, RunManager, Runner, agents_of
from .schemas import AgentInfo, ApprovalRequest, RunRequest, RunView, SessionDetail, SessionView

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 1 << 20  # a request body (the input is at most 100,000 characters)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_bearer = HTTPBearer(auto_error=False, description="an API key of REACT_AGENT_API_KEYS or --keys")


async def current_user(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The user id bound to the request's bearer key; 401 without a valid one."""
    keys: Keys = request.app.state.keys
    user = keys.user(credentials.credentials) if credentials is not None else None
    if user is None:
        raise HTTPException(401, "a valid API key is needed: Authorization: Bearer KEY",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


User = Annotated[str, Depends(current_user)]


def create_app(agents: Mapping[str, Runner], store: Store, keys: Keys | Mapping[str, str], *,
               sources: Mapping[str, str] | None = None, max_body: int = MAX_BODY_BYTES, keep: int = 1000,
               ping: float = 15) -> FastAPI:
    """The HTTP API for ``agents`` ({id: Agent or Router}), whose runs are journaled in ``store``.
    ``keys`` maps bearer keys to user ids; ``sources`` says which task file each agent comes from."""
    for name, runner in agents.items():
        if any(agent.store is not store for agent in agents_of(runner)):
            raise UserError(f"agent {name!r} does not use the server's store")
    keys = keys if isinstance(keys, Keys) else Keys(keys)
    manager = RunManager(agents, store, keep=keep)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await manager.close()

    app = FastAPI(title="react-agent", version="1", lifespan=lifespan,
                  description="Run the served agents; follow their events (SSE); approve, cancel, resume.")
    app.state.manager = manager
    app.state.keys = keys
    app.add_middleware(_BodyLimit, limit=max_body)
    app.add_exception_handler(NotFound, _status(404))
    app.add_exception_handler(Conflict, _status(409))
    app.add_exception_handler(StoreUnavailableError, _status(503))  # its database is down: try again later
    _run_routes(app, manager, store, agents, sources=sources or {}, ping=ping)
    _session_routes(app, manager, store)
    _viewer_routes(app, manager, store, ping=ping)
    return app


def _run_routes(app: FastAPI, manager: RunManager, store: Store, agents: Mapping[str, Runner], *,
                sources: Mapping[str, str], ping: float) -> None:
    def stream(channel: Channel, after: int = 0) -> EventSourceResponse:
        async def events() -> AsyncIterator[ServerSentEvent]:
            async for n, kind, data in channel.follow(after):
                yield ServerSentEvent(data=data, event=kind, id=str(n))

        return EventSourceResponse(events(), ping=ping, headers={"Location": f"/v1/runs/{channel.run_id}"})

    @app.get("/healthz", tags=["server"], responses={503: {"description": "the store cannot be used"}})
    async def health() -> dict[str, Any]:
        """200 when the server can serve: its store answers a read (else 503, saying why)."""
        await asyncio.to_thread(store.session_info, "healthz")  # StoreUnavailableError -> 503
        return {"status": "ok", "agents": len(agents), "live_runs": manager.live()}

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(user: User) -> list[AgentInfo]:
        return [AgentInfo(id=name, name=runner.name, kind="router" if isinstance(runner, Router) else "agent",
                          source=sources.get(name)) for name, runner in agents.items()]

    @app.post("/v1/agents/{agent}/runs", tags=["runs"], response_model=RunResult,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "the RunResult, or with stream: true the run's events (SSE)"}})
    async def start_run(agent: str, body: RunRequest, user: User) -> Any:
        try:
            channel = await manager.start(agent, body.input, body.session, user)
        except UserError as exc:
            raise HTTPException(500, f"the run could not start: {_one_line(exc)}") from None
        if body.stream:
            return stream(channel)
        await channel.idle()
        if channel.result is None or channel.result.run_id != channel.run_id:
            raise HTTPException(500, f"run {channel.run_id} stopped without a result: {channel.failure}")
        return channel.result

    @app.get("/v1/runs", tags=["runs"])
    async def list_runs(user: User, status: str | None = None, session: str | None = None) -> list[RunView]:
        """Your runs, oldest first (without their steps): e.g. ``?status=awaiting_approval``, or
        ``?status=running`` for runs a stopped server left open (``live: false``: resume them)."""
        return [RunView.of_record(r, [], live=(c := manager.channels.get(r.run_id)) is not None and c.running,
                                  events=len(c.events) if c else 0)
                for r in store.runs(user_id=user, status=status, session=session)]

    @app.get("/v1/runs/{run_id}", tags=["runs"])
    async def get_run(run_id: str, user: User) -> RunView:
        return _view(store, manager.channel(run_id, user))

    @app.get("/v1/runs/{run_id}/events", tags=["runs"], response_class=Response,
             responses={200: {"content": {"text/event-stream": {}}}})
    async def run_events(run_id: str, user: User,
                         last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
                         after: Annotated[int | None, Query(ge=0, description="like Last-Event-ID")] = None,
                         ) -> EventSourceResponse:
        """The run's events so far, then live ones while it runs. Each event has an ``id`` (1, 2, ...);
        reconnect with ``Last-Event-ID`` (or ``?after=``) to get exactly the events after it."""
        if last_event_id is not None:
            if not last_event_id.strip().isdigit():
                raise HTTPException(422, "Last-Event-ID must be an event id (a whole number)")
            after = int(last_event_id)
        return stream(manager.channel(run_id, user), after or 0)

    @app.post("/v1/runs/{run_id}/approvals", tags=["runs"], status_code=202)
    async def approve(run_id: str, body: ApprovalRequest, user: User) -> RunView:
        """Decide every call the paused run waits for; it goes on in the background (follow it with
        ``GET /v1/runs/{run_id}/events``)."""
        record = manager.record(run_id, user)
        waiting = [p["call_id"] for p in record.pending]
        if record.status == "awaiting_approval" and set(body.decisions) != set(waiting):
            raise HTTPException(422, f"decide every waiting call, no other: waiting {waiting}, "
                                     f"decided {sorted(body.decisions)}")
        decisions: dict[str, Decision] = {
            call: Approve(d.arguments) if d.approve else Deny(d.reason or "denied by a human")
            for call, d in body.decisions.items()}
        try:
            channel = await manager.resume(run_id, user, decisions)
        except UserError as exc:
            raise HTTPException(422, _one_line(exc)) from None
        return _view(store, channel)

    @app.post("/v1/runs/{run_id}/resume", tags=["runs"], status_code=202)
    async def resume(run_id: str, user: User) -> RunView:
        """Take up a run a stopped server left open (status ``running``, not live) or one that ended in
        ``error``, in the background."""
        try:
            channel = await manager.resume(run_id, user, None)
        except UserError as exc:
            raise HTTPException(409, _one_line(exc)) from None
        return _view(store, channel)

    @app.post("/v1/runs/{run_id}/cancel", tags=["runs"])
    async def cancel(run_id: str, user: User) -> RunView:
        """End a running run: status ``cancelled``, the calls under way answered, the history valid."""
        return _view(store, await manager.cancel(run_id, user))


def _viewer_routes(app: FastAPI, manager: RunManager, store: Store, *, ping: float) -> None:
    @app.get("/v1/runs/{run_id}/view", tags=["viewer"], response_class=HTMLResponse)
    async def view_run(run_id: str, request: Request) -> HTMLResponse:
        """The run viewer (HTML). No key needed for the page itself: it holds no data, and reads the run
        with the key typed into it or given in the URL fragment (``#key=...``, never sent to the server)."""
        page = render_html(run_id, api=f"{request.scope.get('root_path', '')}/v1", stall=3 * ping)
        return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @app.get("/v1/runs/{run_id}/timeline", tags=["viewer"])
    async def timeline(run_id: str, user: User) -> dict[str, Any]:
        """What the run viewer shows: the run with its steps and the runs of agents it delegated to,
        whether it runs in this server, and the id of its last event (follow it with ``/events``)."""
        channel = manager.channel(run_id, user)
        tree = run_tree(store, run_id, user_id=user)
        if tree is None:  # a router's own run lives in memory only
            tree = (result_tree(channel.result, input=channel.input) if channel.result is not None
                    else _view(store, channel).model_dump(mode="json") | {"children": [], "parent_step": None})
        return {"run": tree, "live": channel.running, "events": len(channel.events)}


def _session_routes(app: FastAPI, manager: RunManager, store: Store) -> None:
    @app.get("/v1/sessions", tags=["sessions"])
    async def list_sessions(user: User) -> list[SessionView]:
        return [SessionView(id=s.id, agent=s.agent, created=s.created) for s in store.sessions(user)]

    @app.get("/v1/sessions/{session:path}", tags=["sessions"])
    async def get_session(session: str, user: User) -> SessionDetail:
        info = _own_session(store, session, user)
        runs = [_view(store, manager.channels.get(r.run_id) or Channel(r.run_id, user, r.agent, r.session))
                for r in store.runs(session=session)]
        return SessionDetail(id=info.id, agent=info.agent, created=info.created, messages=store.messages(session),
                             runs=runs)

    @app.delete("/v1/sessions/{session:path}", tags=["sessions"], status_code=204)
    async def delete_session(session: str, user: User) -> Response:
        _own_session(store, session, user)
        if session in manager.busy:
            raise Conflict(f"run {manager.busy[session]} is running on session {session!r}; cancel it first")
        store.delete_session(session)
        manager.forget_session(session)  # its runs kept in memory go too: unreadable, like the journal's
        return Response(status_code=204)


def _view(store: Store, channel: Channel) -> RunView:
    record = store.run(channel.run_id)
    if record is None:  # a router's own run lives in memory only
        if channel.result is not None:
            return RunView.of_result(channel.result, input=channel.input, live=channel.running,
                                     events=len(channel.events))
        return RunView(run_id=channel.run_id, agent=channel.agent_id, session=channel.session, model="",
                       status="running", input=channel.input, live=channel.running, events=len(channel.events))
    steps = fold(store.entries(record.session)).steps(record.run_id)
    return RunView.of_record(record, steps, live=channel.running, events=len(channel.events))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _own_session(store: Store, session: str, user: str) -> SessionInfo:
    info = store.session_info(session)
    if info is None or info.user_id != user:
        raise NotFound(f"no session {session!r}")
    return info


def _status(code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(_: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle


class _BodyLimit:
    """413 for a request body over ``limit`` bytes, declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = JSONResponse({"detail": f"the request body is over {self.limit} bytes"}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"the request body is over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)
