"""The one Jinja environment for every template the tool renders: prompt templates (bundled,
or any file a recipe names), the sources' mapping templates, the dataset card and the HTML
reports. A template is code from whoever wrote the recipe, so it runs sandboxed and bounded:

- Jinja's sandbox: no attribute that starts with `_` (`cycler.__init__.__globals__` is a
  SecurityError), no unsafe callables, `range` capped at 100,000 items; no `lipsum`; no
  loader for recipe templates, so `{% include %}` cannot read a file;
- a time limit per render (`max_seconds`), checked on every loop step, call, filter and
  operator: nested `range(100000)` loops stop after it instead of hanging;
- a size limit (`max_chars`) on the output and on every value built on the way: `q * 10**8`,
  `q|center(10**9)`, `sep.join(...)`, `~` concatenation doubled in a loop, `%` and `format`
  widths, `indent` and `replace` are refused before they allocate.

Any exception a render raises (a limit, the sandbox, an undefined variable, a TypeError in
the template's own logic) comes out as `TemplateFailure` with the reason: callers turn it
into a failed record or a configuration error, never a failed run."""

from __future__ import annotations

import functools
import re
import threading
import time
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

_ITER, _TEXT = "_bounded_iter", "_bounded_text"  # filters the environment wraps loops and `~` in
_WIDTH = re.compile(r"\d{7,}")  # a format width of a million or more


class TemplateFailure(ValueError):
    """A template could not be rendered; the message says why."""


class TemplateLimit(jinja2.TemplateError):
    pass


_BUDGET = threading.local()  # the render in progress in this thread: its deadline and size limit


def _tick() -> None:
    deadline = getattr(_BUDGET, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateLimit(f"rendering took longer than {_BUDGET.seconds:g} s")


def _limit() -> int:
    return getattr(_BUDGET, "chars", None) or 1 << 62


def _refuse_size(size: int, what: str) -> None:
    if size > _limit():
        raise TemplateLimit(f"{what} would be {size:,} characters, more than the limit of {_limit():,}")


def _sized(value: Any, what: str) -> Any:
    if isinstance(value, (str, list, tuple)):
        _refuse_size(len(value), what)
    return value


def _check_widths(fmt: Any, what: str) -> None:
    if isinstance(fmt, str) and any(int(w) > _limit() for w in _WIDTH.findall(fmt)):
        raise TemplateLimit(f"{what}: a field width beyond the limit of {_limit():,}")


def _predict(name: str, args: tuple, kwargs: dict) -> None:
    """Refuse the calls that build a large value from small arguments, before they run."""
    ints = [v for v in (*args, *kwargs.values()) if isinstance(v, int) and not isinstance(v, bool)]
    if any(abs(v) > _limit() for v in ints):
        raise TemplateLimit(f"{name}: a number beyond the limit of {_limit():,}")
    text = next((a for a in args if isinstance(a, str)), None)
    if name in ("indent", "expandtabs") and text is not None:
        width = next(iter(ints), 4)
        _refuse_size(len(text) + abs(width) * (text.count("\n") + text.count("\t") + 1), name)
    elif name == "replace" and len(args) >= 3 and all(isinstance(a, str) for a in args[:3]):
        s, old, new = args[:3]
        _refuse_size(len(s) + (s.count(old) if old else len(s) + 1) * max(len(new) - len(old), 0), name)
    elif name == "join" and args:
        items = args[1] if isinstance(args[0], str) and len(args) > 1 else args[0]
        sep = args[0] if isinstance(args[0], str) and len(args) > 1 else (args[1] if len(args) > 1 else kwargs.get("d", ""))
        if isinstance(items, (list, tuple)) and isinstance(sep, str):
            _refuse_size(len(sep) * max(len(items) - 1, 0) + sum(len(i) for i in items if isinstance(i, str)), name)
    elif name in ("format", "format_map") and text is not None:
        _check_widths(text, name)


def _listed(name: str, args: tuple, sep: Any = None) -> tuple:
    """A join's iterators as lists, so its size can be predicted before the string is built;
    the listing itself stops as soon as the items and separators pass the size limit."""
    if name != "join":
        return args
    if sep is None:
        sep = next((a for a in args if isinstance(a, str)), "")
    return tuple(_joined_items(a, len(sep) if isinstance(sep, str) else 0) if hasattr(a, "__next__") else a for a in args)


def _joined_items(iterable, sep_chars: int) -> list:
    items, size = [], 0
    for item in _bounded_iter(iterable):
        size += (sep_chars if items else 0) + (len(item) if isinstance(item, str) else 0)
        _refuse_size(size, "join")
        items.append(item)
    return items


def _bounded_filter(name: str, fn):
    @functools.wraps(fn)  # keeps Jinja's pass_context / pass_environment marks
    def wrapper(*args, **kwargs):
        _tick()
        args = _listed(name, args, kwargs.get("d"))
        _predict(name, tuple(a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.Environment, nodes.EvalContext))), kwargs)
        return _sized(fn(*args, **kwargs), f"the {name} filter's result")
    return wrapper


def _bounded_iter(iterable):
    for item in iterable:
        _tick()
        yield item


def _bounded_text(value):
    _tick()
    return _sized(value, "a concatenation")


class _Bounds(NodeTransformer):
    """Every `for` loop's iterable and every `~` concatenation through the checks above."""

    def visit_For(self, node):
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _ITER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node):
        self.generic_visit(node)
        return nodes.Filter(node, _TEXT, [], [], None, None, lineno=node.lineno)


class BoundedEnvironment(SandboxedEnvironment):
    """A sandboxed environment whose renders (`render_bounded`) stop at `max_seconds` and
    `max_chars`; strict undefined variables."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, max_chars: int, max_seconds: float, **options):
        super().__init__(undefined=jinja2.StrictUndefined, **options)
        self.max_chars, self.max_seconds = max_chars, max_seconds
        self.globals.pop("lipsum", None)
        self.filters = {name: _bounded_filter(name, fn) for name, fn in self.filters.items()}
        self.filters[_ITER], self.filters[_TEXT] = _bounded_iter, _bounded_text

    def _parse(self, source, name, filename):
        return _Bounds().visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator: str, left, right):
        _tick()
        sized = (str, list, tuple)
        if operator == "*" and isinstance(left, sized) != isinstance(right, sized):
            seq, n = (left, right) if isinstance(left, sized) else (right, left)
            if isinstance(n, int):
                _refuse_size(len(seq) * max(n, 0), "a repetition")
        elif operator == "+" and isinstance(left, sized) and isinstance(right, sized):
            _refuse_size(len(left) + len(right), "a concatenation")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 64:
            if abs(left) > 1 and abs(left).bit_length() * right > 4 * _limit():
                raise TemplateLimit("a power beyond the limit")
        elif operator == "%":
            _check_widths(left, "a % format")
        return _sized(super().call_binop(context, operator, left, right), f"the {operator} operator's result")

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        _tick()
        bound = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format in a function
        name, owner = getattr(bound, "__name__", ""), getattr(bound, "__self__", None)
        args = _listed(name, args, owner if isinstance(owner, str) else None)
        _predict(name, (owner, *args) if isinstance(owner, str) else args, kwargs)
        return _sized(super().call(__context, __obj, *args, **kwargs), "a call's result")

    def render_bounded(self, template: jinja2.Template, variables: dict) -> str:
        """The template rendered with `variables`, or TemplateFailure."""
        _BUDGET.deadline, _BUDGET.seconds, _BUDGET.chars = time.monotonic() + self.max_seconds, self.max_seconds, self.max_chars
        try:
            out, size = [], 0
            for chunk in template.generate(**variables):
                size += len(chunk)
                _refuse_size(size, "the output")
                _tick()
                out.append(chunk)
            return "".join(out)
        except TemplateLimit as e:
            raise TemplateFailure(str(e)) from None
        except jinja2.UndefinedError as e:
            raise TemplateFailure(e.message or str(e)) from None
        except RecursionError:
            raise TemplateFailure("the template recurses too deep") from None
        except Exception as e:  # noqa: BLE001 - whatever the template's own logic raises is the template's failure
            raise TemplateFailure(f"{type(e).__name__}: {str(e)[:300]}") from None
        finally:
            _BUDGET.deadline = _BUDGET.chars = None

    def compile_text(self, source: str, what: str) -> jinja2.Template:
        """A template from its text (no loader: it includes nothing), or TemplateFailure."""
        try:
            return self.from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateFailure(f"{what}: line {e.lineno}: {e.message}") from None


class Page:
    """One of the tool's own template files (the dataset card, the HTML reports), rendered in
    the bounded environment: what it shows comes from data and teachers."""

    def __init__(self, folder, name: str, max_chars: int = 256 << 20, max_seconds: float = 300.0, filters=None, **options):
        self.env = BoundedEnvironment(max_chars, max_seconds, loader=jinja2.FileSystemLoader(folder), **options)
        self.env.filters.update({k: _bounded_filter(k, f) for k, f in (filters or {}).items()})
        self.template = self.env.get_template(name)

    def render(self, **variables) -> str:
        return self.env.render_bounded(self.template, variables)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_PUNCT = re.compile(r"([\\`*_\[\]()#!|~{}])")


def md_text(value) -> str:
    """Text from data or a teacher as inert Markdown inline text, on one line: HTML
    characters as entities (no tag can open), Markdown punctuation escaped (no link, image,
    emphasis or table cell can start), newlines and control characters as spaces."""
    text = _CONTROL.sub(" ", str(value).replace("\r", " ").replace("\n", " "))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCT.sub(r"\\\1", text)


def md_paragraphs(value) -> str:
    """Longer text (a recipe's description) as inert paragraphs: `md_text` for each."""
    return "\n\n".join(md_text(p.strip()) for p in re.split(r"\n\s*\n", str(value)) if p.strip())


def md_code(value) -> str:
    """A value as one inline code span that nothing inside can close: the fence is longer
    than any run of backticks in it; on one line; `|` escaped for table cells."""
    text = _CONTROL.sub(" ", str(value).replace("\r", " ").replace("\n", " ")).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


MARKDOWN_FILTERS = {"md": md_text, "md_paragraphs": md_paragraphs, "code": md_code}
