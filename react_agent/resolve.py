"""``resolve_model``: the ``Model`` a name (or a list of names) stands for.

Its own module so that ``model`` (the one module that talks to ``openai``) knows nothing of the models
built on it: ``local`` (the embedded llama.cpp server) and ``fallback`` import ``model``, and this module
imports all three — no import circle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

from .fallback import FallbackModel
from .model import Model, OpenAIModel

__all__ = ["resolve_model"]


def resolve_model(
    model: str | Model | Sequence[str | Model] | None, *, base_url: str | None = None, api_key: str | None = None,
    request_timeout: float | None = None, max_retries: int | None = None,
) -> Model:
    """A ``Model`` from a name: ``"local"`` (or nothing configured at all) is the embedded llama.cpp
    model; any other name goes to the OpenAI-compatible server from arguments or the environment.

    ``request_timeout`` (seconds) and ``max_retries`` replace the model's defaults when given. A
    ``Model`` instance is returned as it is; a list is a ``FallbackModel`` of its models, in order."""
    if isinstance(model, list | tuple):
        return FallbackModel(*(resolve_model(m, base_url=base_url, api_key=api_key, request_timeout=request_timeout,
                                             max_retries=max_retries) for m in model))
    if model is not None and not isinstance(model, str):
        return cast(Model, model)
    options: dict[str, Any] = {}
    if request_timeout is not None:
        options["timeout"] = request_timeout
    if max_retries is not None:
        options["max_retries"] = max_retries
    name = model or os.environ.get("REACT_AGENT_MODEL")
    configured = base_url or api_key or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
    if name == "local" or (not configured and name is None):
        from .local import LocalModel  # noqa: PLC0415 - only needed for the embedded model (and slow to load)

        return LocalModel(**options)
    return OpenAIModel(name, base_url=base_url, api_key=api_key, **options)
