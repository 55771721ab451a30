"""Jinja2 prompts with ``StrictUndefined``: a missing variable or template is a ``PromptError``
naming the template. Search order: the user's prompt folders, then the package's default templates
(installed inside the wheel, or the repository's ``prompts/`` in a source checkout)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PromptError

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["Prompts", "default_prompt_dir"]

_PACKAGE = Path(__file__).resolve().parent


def default_prompt_dir() -> Path:
    installed = _PACKAGE / "_default_prompts"
    return installed if installed.is_dir() else _PACKAGE.parent / "prompts"


class Prompts:
    def __init__(self, dirs: list[str | Path] | None = None) -> None:
        self.dirs = [Path(d) for d in (dirs or [])]

    @cached_property
    def search_path(self) -> list[Path]:
        """The folders a template is looked up in, in order, each once (a task file's ``../prompts`` is
        often the package's own default folder)."""
        return list(dict.fromkeys(d.resolve() for d in [*self.dirs, default_prompt_dir()]))

    @cached_property
    def env(self) -> Environment:
        import jinja2  # noqa: PLC0415 - deferred: keeps `import react_agent` fast

        return jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.search_path]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - prompts are plain text for a model, not HTML
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, /, **variables: Any) -> str:  # `/`: a template may use {{ name }}
        import jinja2  # noqa: PLC0415

        try:
            return self.env.get_template(name).render(**variables).strip()
        except jinja2.TemplateNotFound:
            looked = ", ".join(str(d) for d in self.search_path)
            raise PromptError(name, f"template not found (looked in {looked})") from None
        except jinja2.UndefinedError as exc:
            raise PromptError(name, f"missing variable: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(name, f"syntax error at line {exc.lineno}: {exc.message}") from None

    def instructions(self, instructions: str, /, **variables: Any) -> str:
        """``instructions`` is a template (a name or path ending in .j2/.jinja) or literal text."""
        if not instructions.endswith((".j2", ".jinja", ".jinja2")):
            return instructions
        path = Path(instructions)
        if path.is_file():
            prompts = Prompts([path.parent, *self.dirs])
            return prompts.render(path.name, **variables)
        if path.is_absolute() or len(path.parts) > 1:
            # "prompts/support.j2" relative to a prompt folder's parent: try the bare name too
            try:
                return self.render(path.name, **variables)
            except PromptError as exc:
                if "not found" not in exc.reason:
                    raise
                raise PromptError(instructions, f"template not found ({path} is not a file)") from None
        return self.render(instructions, **variables)
