"""Jinja2 prompts with ``StrictUndefined``: a missing variable or template is a ``PromptError``
naming the template. Search order: the user's prompt folders, then the package's default templates
(installed inside the wheel, or the repository's ``prompts/`` in a source checkout) — except for an
agent's instructions, which come from the user's folders or path only (``find_instructions``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PromptError

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["Prompts", "default_prompt_dir", "is_template"]

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

    def find_instructions(self, name: str, /) -> Path:
        """The file of an instructions template: a bare name (``support.j2``) in this agent's prompt
        folders, else a path (``prompts/support.j2``, relative to the working directory) that must be a
        file. Never the package's own folder: it holds the framework's templates and the demo agents'
        prompts, and a user's missing ``support.j2`` must not quietly become the demo's."""
        path = Path(name)
        if len(path.parts) == 1:
            for folder in self.dirs:
                if (folder / name).is_file():
                    return folder / name
        if path.is_file():
            return path
        if len(path.parts) > 1:
            raise PromptError(name, f"template not found: {path.absolute()} is not a file")
        looked = ", ".join(str(d) for d in dict.fromkeys(d.resolve() for d in self.dirs))
        where = f"looked in the prompt folders {looked} and the working directory" if looked else (
            "no prompt folders were given (Agent(prompts=[...])) and it is not in the working directory")
        raise PromptError(name, f"template not found ({where})")

    def instructions(self, instructions: str, /, **variables: Any) -> str:
        """``instructions`` is a template (a name or path ending in .j2/.jinja/.jinja2, see
        ``find_instructions``) or literal text."""
        if not is_template(instructions):
            return instructions
        path = self.find_instructions(instructions)
        return Prompts([path.parent, *self.dirs]).render(path.name, **variables)


def is_template(instructions: str) -> bool:
    """Instructions naming a template file rather than holding the text itself."""
    return instructions.endswith((".j2", ".jinja", ".jinja2"))
