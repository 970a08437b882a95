"""Prompt templates are Jinja files under prompts/<stage>/<version>.jinja (or any path to a
.jinja file), rendered with strict undefined variables: a template that names a variable
the stage does not provide fails loudly instead of rendering an empty string."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
from jinja2 import meta


def _environment(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
        auto_reload=False,  # one version of a prompt per run, and no stat of its file on every render
    )


@lru_cache(maxsize=None)
def _locate(template_id: str) -> tuple[jinja2.Environment, str]:
    path = Path(template_id)
    if template_id.endswith(".jinja") and path.is_file():
        return _environment(str(path.parent.resolve())), path.name
    root = Path(str(resources.files("prompts")))
    if not (root / f"{template_id}.jinja").is_file():
        known = sorted(str(p.relative_to(root))[: -len(".jinja")] for p in root.rglob("*.jinja"))
        raise FileNotFoundError(f"no prompt template {template_id!r} (known: {', '.join(known)})")
    return _environment(str(root)), f"{template_id}.jinja"


@lru_cache(maxsize=None)
def template_source(template_id: str) -> str:
    env, name = _locate(template_id)
    return env.loader.get_source(env, name)[0]


@lru_cache(maxsize=None)
def template_inputs(template_id: str) -> tuple[str, ...]:
    """The variables a template uses: exactly what the teacher is shown."""
    env, _ = _locate(template_id)
    return tuple(sorted(meta.find_undeclared_variables(env.parse(template_source(template_id)))))


def render(template_id: str, **variables) -> str:
    env, name = _locate(template_id)
    try:
        return env.get_template(name).render(**variables).strip()
    except jinja2.UndefinedError as e:
        raise ValueError(f"prompt template {template_id!r}: {e.message}") from None


def prompt_hash(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\x00")
    return h.hexdigest()
