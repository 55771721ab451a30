"""The run viewer: a run as a timeline of steps — thought, actions, observations, tokens, cost and latency
— with the runs of the agents it delegated to nested under the step that called them.

* ``run_tree(store, run_id)``: the run's data (JSON-ready), as the page and the terminal show it.
* ``render_html(...)``: the page — served by ``GET /v1/runs/{id}/view`` (it fetches the run with the
  viewer's key and follows its events), or one self-contained file with the run embedded
  (``python -m react_agent show RUN_ID --html out.html``). Inline CSS and JS, no other request.
* ``print_run(console, tree)``: the same timeline in a terminal (``python -m react_agent show RUN_ID``).

Needs no server extra: only the store, Jinja2 and rich.
"""

from __future__ import annotations

import secrets
from functools import cache
from importlib.resources import files

import jinja2

from ..errors import UserError
from .data import Tree, own_usage, result_tree, run_tree, total_usage
from .terminal import print_run

__all__ = ["Tree", "own_usage", "print_run", "render_html", "result_tree", "run_tree", "total_usage"]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("react_agent.viewer", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def _asset(name: str) -> str:
    return files("react_agent.viewer").joinpath("templates", name).read_text(encoding="utf-8")


def render_html(run_id: str, *, tree: Tree | None = None, api: str | None = None, stall: float = 45) -> str:
    """The viewer page for ``run_id``: with ``tree``, the run embedded (a self-contained file, no network);
    with ``api`` (e.g. ``/v1``), a page that loads the run from the API and follows it live — reconnecting
    (``Last-Event-ID``) when the stream fails or stays silent for ``stall`` seconds (the server pings)."""
    if (tree is None) == (api is None):
        raise UserError("render_html needs exactly one of tree (a file) or api (a served page)")
    config = {"run_id": run_id, "api": api, "data": tree, "stall_ms": round(stall * 1000)}
    return _environment().get_template("run.html.j2").render(
        run_id=run_id, config=config, served=api is not None, nonce=secrets.token_urlsafe(16),
        css=_asset("viewer.css"), js=_asset("viewer.js"))
