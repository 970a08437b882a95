"""Recipes: a run described in YAML, validated into typed dataclasses.

`read_recipe(path_or_name, overrides)` reads a YAML file (or a recipe bundled in recipes/
by name, e.g. "quickstart"), applies `key.sub=value` overrides and validates. Unknown keys
and wrong types fail with a message naming the key. `dump_recipe` writes the resolved
recipe that is saved beside every output.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, make_dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml

from filters.registry import EVAL_FILTER, FILTERS, SOURCE_ONLY, check_params
from pipelines.config import Bounds, ConfigError, NonNegativeInt, PositiveInt, Share, build_with_overrides, safe_load, to_plain
from pipelines.config.source_config import SCENE_FAMILIES, IngestConfig, SourceConfig, SyntheticSource  # noqa: F401
from pipelines.config.teacher_config import (  # noqa: F401 - where the teacher's options live; imported from here too
    ORACLE_ERRORS,
    OpenAIOptions,
    OracleOptions,
    PositiveSeconds,
    Price,
    Seconds,
    TeacherConfig,
    TransformersOptions,
    VLLMOptions,
    engine_identity,
    reply_identity,
)
from pipelines.core.secrets import scrub_data
from pipelines.stages import STAGES, STUDENT_TEMPLATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """How a teacher samples: the one type, from the recipe to every backend and the cache key."""

    temperature: Annotated[float, Bounds(0)] = 0.0
    top_p: Annotated[float, Bounds(0, 1)] = 1.0
    max_tokens: PositiveInt = 512
    n: PositiveInt = 1
    seed: int | None = 0

    def as_dict(self) -> dict:
        return asdict(self)


# Each stage's defaults, declared by the stage (`pipelines.stages`): what a recipe gets for a
# stage (or a key of one) it leaves out, the quickstart's values (a temperature of 0 given
# without `n`: one sample). Several samples (extraction_agreement compares the extraction's,
# sufficiency and self_consistency vote over the traces) need a temperature.
STAGE_DEFAULTS = {name: {"template": spec.template, "sampling": dict(spec.sampling)} for name, spec in STAGES.items()}


@dataclass
class StageConfig:
    template: str = ""  # "" means "<stage>/v1"
    sampling: Sampling = field(default_factory=Sampling)
    teacher: TeacherConfig | None = None  # None: the recipe's teacher

    def __post_init__(self):
        if self.sampling.n > 1 and self.sampling.temperature == 0:
            # greedy samples are all the same; vLLM's server refuses the request outright
            raise ConfigError(f"sampling: n={self.sampling.n} samples need a temperature above 0 (greedy samples are "
                              "identical): set sampling.temperature, e.g. 0.7 as the quickstart does")


def _stage(name: str) -> StageConfig:
    d = STAGE_DEFAULTS[name]
    return (VerifyConfig if STAGES[name].optional else StageConfig)(template=d["template"], sampling=Sampling(**d["sampling"]))


@dataclass
class VerifyConfig(StageConfig):
    """The judge stage (pipelines/stages/verify.py): off unless enabled; it adds one or two teacher
    calls per record. Its verdicts feed the `judged` filter."""

    enabled: bool = False
    with_image: bool = False  # judge against the image, not the text (needs a vision teacher)
    sentences: bool = False  # also judge each sentence of the published extraction


def _fill_stage_defaults(value: dict) -> dict:
    """A stage given in part keeps its own defaults for the rest (`STAGE_DEFAULTS`): a recipe
    that sets only the extraction's template still samples 3 at 0.7."""
    out = dict(value)
    for name, stage in value.items():
        if name in STAGE_DEFAULTS and isinstance(stage, dict):
            sampling = stage.get("sampling", {})
            out[name] = {"template": STAGE_DEFAULTS[name]["template"], **stage,
                         "sampling": stage_sampling(name, sampling) if isinstance(sampling, dict) else sampling}
    return out


# `stages:` in a recipe: one key per declared stage, in the stages' order (an optional stage
# has `enabled`), and the student's prompt template.
StagesConfig = make_dataclass(
    "StagesConfig",
    [(name, VerifyConfig if spec.optional else StageConfig, field(default_factory=partial(_stage, name)))
     for name, spec in STAGES.items()]
    + [("student_prompt", str, field(default=STUDENT_TEMPLATE))],  # the prompt the small model is trained with
    namespace={"fill_defaults": staticmethod(_fill_stage_defaults), "__module__": __name__},
)


def stage_sampling(stage: str, given: dict) -> dict:
    """A stage's sampling keys: those given over the stage's defaults; a temperature of 0
    given without `n` means one sample (greedy samples are all the same)."""
    out = {**STAGE_DEFAULTS[stage]["sampling"], **given}
    if given.get("temperature") == 0 and "n" not in given:
        out["n"] = 1
    return out


@dataclass
class FilterConfig:
    name: str
    params: dict[str, float | int | str | bool] = field(default_factory=dict)


DEFAULT_FILTERS = ("degeneration", "leakage", "statement_count", "statement_coverage", "extraction_agreement",
                   "answer_correct", "sufficiency", "self_consistency")  # the quickstart's list


def _default_filters() -> list[FilterConfig]:
    return [FilterConfig(n, {"min_ratio": 0.5} if n == "sufficiency" else {}) for n in DEFAULT_FILTERS]


@dataclass
class OutputConfig:
    # A new or empty folder, or an earlier output of this tool; a run replaces it as a whole.
    dir: str = "out/quickstart"
    rows_per_shard: PositiveInt = 2000
    # The share of records whose rows go to every config's `test` split (a stable hash of the
    # record id, the rule train_min holds out by); 0 publishes `train` only.
    test_fraction: Share = 0.05
    # A run replaces the output only if at most this share of its records failed (a teacher
    # that was down, a wrong endpoint) and at least `min_kept` were kept; else it exits 1
    # and the previous dataset stays.
    max_failed_share: Share = 0.5
    min_kept: NonNegativeInt = 1
    language: list[str] = field(default_factory=lambda: ["en"])  # of the prompts and replies (ISO 639-1), for the card


@dataclass
class CacheConfig:
    # Where teacher replies are kept (a local path or an fsspec URL); null turns it off.
    # Shared by runs and workers: a rerun, or a resumed run, pays only for missing calls.
    dir: str | None = ".cache/extract-think/replies"


@dataclass
class RunnerConfig:
    runner: str = "FnApiRunner"  # any Beam runner name: DirectRunner, DataflowRunner, ...
    options: list[str] = field(default_factory=list)  # extra Beam pipeline flags


@dataclass
class Recipe:
    name: str
    description: str = ""
    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    ingest: IngestConfig = field(default_factory=IngestConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    filters: list[FilterConfig] = field(default_factory=_default_filters)
    eval_sets: list[SourceConfig] = field(default_factory=list)  # what `decontaminate` compares against
    output: OutputConfig = field(default_factory=OutputConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    @staticmethod
    def fill_defaults(value: dict) -> dict:
        """No `filters`: the quickstart's list, written out; without extraction_agreement (said
        on stderr) where the recipe asks for fewer than 2 extraction samples, which it compares."""
        if value.get("filters") is not None:
            return value
        extraction = (value.get("stages") or {}).get("extraction") if isinstance(value.get("stages"), dict) else None
        sampling = extraction.get("sampling", {}) if isinstance(extraction, dict) else {}
        n = stage_sampling("extraction", sampling)["n"] if isinstance(sampling, dict) else None
        if isinstance(n, int) and n < 2:
            log.warning("filters: the default list (the quickstart's) without extraction_agreement, which compares "
                        "extraction samples: stages.extraction.sampling.n is %d", n)
        return {**value, "filters": [{"name": f.name, "params": dict(f.params)} for f in _default_filters()
                                     if not (f.name == "extraction_agreement" and isinstance(n, int) and n < 2)]}

    def __post_init__(self):
        self._check_filters()
        if not self.sources:
            raise ConfigError("sources: at least one source is required")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"sources: names must differ (give each a `name`), got {names}")

    def _check_filters(self) -> None:
        late = None
        for i, f in enumerate(self.filters):
            if f.name not in FILTERS:
                raise ConfigError(f"filters: unknown filter {f.name!r} (known: {', '.join(FILTERS)})")
            problems = check_params(f.name, f.params)
            if problems:
                raise ConfigError(f"filters.{i}: {'; '.join(problems)}")
            if f.name in SOURCE_ONLY and late is not None:
                raise ConfigError(f"filters.{i}: {f.name} reads only the sources and runs before the teacher; "
                                  f"list it before {late!r}")
            if f.name not in SOURCE_ONLY:
                late = late or f.name
        names = [f.name for f in self.filters]
        if EVAL_FILTER in names and not self.eval_sets:
            raise ConfigError(f"filters: {EVAL_FILTER} needs `eval_sets`, the evaluation data to compare against")
        if self.eval_sets and EVAL_FILTER not in names:
            raise ConfigError(f"eval_sets: given, but no `{EVAL_FILTER}` filter uses them")
        eval_names = [s.name for s in self.eval_sets]
        if len(set(eval_names)) != len(eval_names):
            raise ConfigError(f"eval_sets: names must differ (give each a `name`), got {eval_names}")
        if "judged" in names and not self.stages.verify.enabled:
            raise ConfigError("filters: judged reads the verify stage's verdicts; set stages.verify.enabled: true")
        if "extraction_agreement" in names and self.stages.extraction.sampling.n < 2:
            raise ConfigError("filters: extraction_agreement compares extraction samples; set "
                              "stages.extraction.sampling.n to 2 or more (3 is a good start)")

    def stage_teacher(self, stage: str) -> TeacherConfig:
        return getattr(self.stages, stage).teacher or self.teacher


def bundled_recipes() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("recipes").iterdir() if p.name.endswith(".yaml"))


def recipe_description(name: str) -> str:
    """The first clause of a bundled recipe's `description`, for a one-line listing ("" where
    it has none)."""
    import re

    data, _ = _read(name)
    text = re.split(r"[.:;] ", " ".join(str(data.get("description") or "").split()), maxsplit=1)[0].rstrip(".")
    return text if len(text) <= 100 else text[:97].rsplit(" ", 1)[0] + "..."


def _read(path_or_name: str | Path) -> tuple[dict, str]:
    path = Path(path_or_name)
    if path.exists():
        text = path.read_text()
    else:
        bundled = resources.files("recipes") / f"{path_or_name}.yaml"
        if not bundled.is_file():
            raise ConfigError(
                f"no recipe file {str(path_or_name)!r} and no bundled recipe of that name "
                f"(bundled: {', '.join(bundled_recipes())})"
            )
        text = bundled.read_text()
    data = safe_load(text, str(path_or_name)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path_or_name}: a recipe is a mapping of keys, got {type(data).__name__}")
    return data, str(path_or_name)


def read_recipe(path_or_name: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Recipe:
    data, where = _read(path_or_name)
    return build_with_overrides(Recipe, data, overrides, where)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe, only what is in use: a source's settings for its own kind, a
    teacher's options for its own backend, a stage teacher only where one is set, the verify
    stage only when enabled; every secret masked (`scrub_data`: a password in a URL, the
    values of keys such as `api_key` in `extra_body`). It is published beside the dataset.
    Loading it gives the same recipe, but for the masked values."""
    plain = scrub_data(to_plain(recipe))
    for stage in plain["stages"].values():
        if isinstance(stage, dict) and stage.get("teacher", 0) is None:
            del stage["teacher"]
    for name, spec in STAGES.items():
        if spec.optional and not getattr(recipe.stages, name).enabled:
            plain["stages"][name] = {"enabled": False}
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
