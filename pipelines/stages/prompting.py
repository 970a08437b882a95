"""Prompt templates are Jinja files under prompts/<stage>/<version>.jinja (or any path to a
.jinja file), rendered in the tool's one sandboxed, bounded environment
(`pipelines.core.templates`): strict undefined variables (a template that names a variable
the stage does not provide fails loudly instead of rendering an empty string), no access to
Python internals, no includes, and a time and size limit per render. A render that fails
raises `TemplateFailure` (a ValueError), which the stages turn into one failed record."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
from jinja2 import meta

from pipelines.core.templates import BoundedEnvironment, TemplateFailure

# A prompt is kilobytes; a megabyte is no prompt. Rendering one takes microseconds.
PROMPTS = BoundedEnvironment(max_chars=1 << 20, max_seconds=1.0, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=False, autoescape=False)
PROMPT_FILES = {"student": "prompts/student.jinja", "think": "prompts/think.jinja"}  # published beside the data


@lru_cache(maxsize=None)
def template_source(template_id: str) -> str:
    """The text of a prompt template: a path to a .jinja file, or a bundled id ("think/v1")."""
    path = Path(template_id)
    if template_id.endswith(".jinja") and path.is_file():
        return path.read_text()
    root = Path(str(resources.files("prompts")))
    if not (root / f"{template_id}.jinja").is_file():
        known = sorted(str(p.relative_to(root))[: -len(".jinja")] for p in root.rglob("*.jinja"))
        raise FileNotFoundError(f"no prompt template {template_id!r} (known: {', '.join(known)})")
    return (root / f"{template_id}.jinja").read_text()


@lru_cache(maxsize=None)
def _compiled(template_id: str) -> jinja2.Template:
    return PROMPTS.compile_text(template_source(template_id), f"prompt template {template_id!r}")


@lru_cache(maxsize=None)
def template_inputs(template_id: str) -> tuple[str, ...]:
    """The variables a template uses: exactly what the teacher is shown. TemplateFailure for
    a template that does not parse."""
    try:
        return tuple(sorted(meta.find_undeclared_variables(PROMPTS.parse(template_source(template_id)))))
    except jinja2.TemplateSyntaxError as e:
        raise TemplateFailure(f"prompt template {template_id!r}: line {e.lineno}: {e.message}") from None


def render(template_id: str, **variables) -> str:
    """The rendered prompt, stripped; TemplateFailure (naming the template) when it cannot be."""
    try:
        return PROMPTS.render_bounded(_compiled(template_id), variables).strip()
    except TemplateFailure as e:
        raise TemplateFailure(f"prompt template {template_id!r}: {e}") from None


def prompt_hash(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\x00")
    return h.hexdigest()
