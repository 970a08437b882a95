"""A table row (Hub set, parquet, JSON lines, imagefolder metadata) through the recipe's
column mapping: which values are the question, answer, choices, annotators, context and
metadata, and where the image is. Templates (`question_template`, `image_template`) are
Jinja, sandboxed and bounded in time and size (`pipelines.core.templates`), over the row's columns; a column a template names that the row lacks is
a rejected row, not a crash."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta as jinja_meta

from pipelines.config import ConfigError
from pipelines.config.source_config import Columns
from pipelines.core.templates import BoundedEnvironment, TemplateFailure
from pipelines.sources.image_files import Problem

# A question or an image path: a few kilobytes at most.
_ENV = BoundedEnvironment(max_chars=1 << 16, max_seconds=1.0, autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=64)
def _template(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def template_columns(text: str, where: str) -> set[str]:
    """The columns a template reads; a template that does not parse is a ConfigError."""
    try:
        return set(jinja_meta.find_undeclared_variables(_ENV.parse(text)))
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"{where}: not a valid template: {e.message} (line {e.lineno})") from None


def needed_columns(c: Columns) -> list[str]:
    """Every column the mapping reads (for a check against the set's columns before the run)."""
    if c.conversations:  # question and answer come from the conversation
        named = [c.conversations, c.id, *c.meta]
    else:
        named = [c.question, c.answer, c.answers, c.answerable, c.id, *c.context, *c.meta]
    if not c.image_template:
        named.append(c.image)
    for key in ("image_template",) if c.conversations else ("question_template", "image_template"):
        if getattr(c, key):
            named += sorted(template_columns(getattr(c, key), f"columns.{key}"))
    out = []
    for name in named:
        if name and name not in out:
            out.append(name)
    return out


def _render(text: str, row: dict, key: str) -> str:
    try:
        return _ENV.render_bounded(_template(text), row).strip()
    except TemplateFailure as e:  # a row the template cannot handle (or a limit it breaks) is one rejected row
        raise Problem("template_failed", f"columns.{key}: {e}") from None


def _plain(value: Any) -> Any:
    """A metadata value as JSON-ready data (bytes and images are left out, as their size)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def mapped_fields(row: dict, columns: Columns) -> dict:
    """The row's values by role: question, answer, choices, answers, answerable,
    conversations, context (text) and meta (a dict). Raises Problem for a template that
    fails on this row."""
    out = {}
    keys = ("conversations",) if columns.conversations else ("question", "answer", "choices", "answers", "answerable")
    for key in keys:
        column = getattr(columns, key)
        if column is not None:
            out[key] = row.get(column)
    if columns.question_template and not columns.conversations:
        scope = {k: v for k, v in row.items() if k != columns.image}
        out["question"] = _render(columns.question_template, scope, "question_template")
    context = [str(row[c]).strip() for c in columns.context if row.get(c) is not None and str(row[c]).strip()]
    if context:
        out["context"] = "\n".join(context)
    if columns.meta:
        out["meta"] = {c: _plain(row.get(c)) for c in columns.meta}
    return out


def row_images(row: dict, columns: Columns) -> tuple:
    """The row's image references: the image column's value(s), or the rendered image_template."""
    if columns.image_template:
        return (_render(columns.image_template, row, "image_template"),)
    image = row.get(columns.image)
    return tuple(image) if isinstance(image, list) else (image,) if image is not None else ()
