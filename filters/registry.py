"""Filters by the name a recipe uses, and what each may be given.

Every filter is a pure function `(record, **params) -> Verdict`. `SOURCE_ONLY` filters read
nothing a teacher wrote, so the pipeline applies them before the teacher stages; they must
come first in a recipe's list. `decontaminate` also gets the index of the recipe's eval sets.
"""

from __future__ import annotations

import inspect

from filters.consistency import extraction_agreement, self_consistency, statement_count, statement_coverage
from filters.correctness import answer_correct
from filters.decontamination import MATCHES, decontaminate
from filters.judged import judged
from filters.quality import degeneration, leakage
from filters.sufficiency import sufficiency
from pipelines.support.text import SCORERS

# By the name a recipe uses: each filter's own function name (its verdicts carry it, `Verdict.of`).
FILTERS = {f.__name__: f for f in (decontaminate, degeneration, leakage, statement_count, statement_coverage, extraction_agreement,
                                   judged, answer_correct, sufficiency, self_consistency)}
# The filter that compares records with the recipe's eval sets: the pipeline builds an index
# of those (with its index params) and passes it as `index`. It reads only the sources.
EVAL_FILTER = decontaminate.__name__
SOURCE_ONLY = {EVAL_FILTER}
EXTRA_PARAMS = {EVAL_FILTER: {"max_hamming": int, "max_pixel_diff": float}}  # used to build the index, not per record
INJECTED = ("index", "answer")  # given by the pipeline (the eval index, `answer_settings`), not by a recipe
ANSWER_AWARE = {"degeneration"}  # filters that read the published trace: they get `answer`
# The param a filter keeps a record by (keep when its score is at least the param): what
# `extract-think calibrate` sets from reviewers' labels.
THRESHOLD_PARAM = {statement_coverage.__name__: "min_score", extraction_agreement.__name__: "min_agreement",
                   sufficiency.__name__: "min_ratio", self_consistency.__name__: "min_agreement"}
CHOICES = {"match": MATCHES, "scorer": SCORERS}
PARAM_CHOICES = {("extraction_agreement", "scorer"): ("claims", *SCORERS)}


def _defaults(name: str) -> dict:
    signature = inspect.signature(FILTERS[name])
    known = {p.name: p.default for p in list(signature.parameters.values())[1:] if p.name not in INJECTED}
    known.update({k: t() for k, t in EXTRA_PARAMS.get(name, {}).items()})
    return known


def split_params(name: str, params: dict) -> tuple[dict, dict]:
    """A filter's params, typed, as (per record, for building the eval index)."""
    params = typed_params(name, params)
    return params, {k: params.pop(k) for k in EXTRA_PARAMS.get(name, {}) if k in params}


def typed_params(name: str, params: dict) -> dict:
    """Params with the types of the filter's defaults (YAML and `--set` may turn 8 into 8.0)."""
    known = _defaults(name)
    return {k: int(v) if isinstance(known.get(k), int) and not isinstance(known.get(k), bool) else v for k, v in params.items()}


def check_params(name: str, params: dict) -> list[str]:
    """Problems with a filter's params: unknown names, wrong types, values out of range."""
    known = _defaults(name)
    problems = []
    for key, value in params.items():
        if key not in known:
            problems.append(f"{name}: unknown param {key!r} (known: {', '.join(known) or 'none'})")
            continue
        default = known[key]
        if isinstance(default, bool) and not isinstance(value, bool) or \
                isinstance(default, (int, float)) and not isinstance(default, bool) and (isinstance(value, bool) or not isinstance(value, (int, float))) or \
                isinstance(default, str) and not isinstance(value, str):
            problems.append(f"{name}.{key}: expected {type(default).__name__}, got {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool) and value != int(value):
            problems.append(f"{name}.{key}: expected a whole number, got {value!r}")
        elif key in CHOICES and value not in PARAM_CHOICES.get((name, key), CHOICES[key]):
            problems.append(f"{name}.{key}: {value!r} not among {list(PARAM_CHOICES.get((name, key), CHOICES[key]))}")
    return problems
