"""Recipes: a run described in YAML, validated into typed dataclasses.

`load_recipe(path_or_name, overrides)` reads a YAML file (or a recipe bundled in recipes/
by name, e.g. "quickstart"), applies `key.sub=value` overrides and validates. Unknown keys
and wrong types fail with a message naming the key. `dump_recipe` writes the resolved
recipe that is saved beside every output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml

from filters.registry import FILTERS, SOURCE_ONLY, check_params
from pipelines.config import Bounds, ConfigError, NonNegativeInt, PositiveInt, Share, build_with_overrides, safe_load, to_plain
from pipelines.core.secrets import scrub_data
from pipelines.source_config import SCENE_FAMILIES, IngestConfig, SourceConfig, SyntheticSource  # noqa: F401
from pipelines.teacher_config import (  # noqa: F401 - where the teacher's options live; imported from here too
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


@dataclass
class StageConfig:
    template: str = ""  # "" means "<stage>/v1"
    sampling: Sampling = field(default_factory=Sampling)
    teacher: TeacherConfig | None = None  # None: the recipe's teacher

    def __post_init__(self):
        if self.sampling.n > 1 and self.sampling.temperature == 0:
            # greedy samples are all the same; vLLM's server refuses the request outright
            raise ConfigError(f"sampling: n={self.sampling.n} samples need temperature > 0 (greedy samples are identical)")


def _stage(template: str, **sampling) -> StageConfig:
    return StageConfig(template=template, sampling=Sampling(**sampling))


@dataclass
class VerifyConfig(StageConfig):
    """The judge stage (pipelines/verify.py): off unless enabled; it adds one or two teacher
    calls per record. Its verdicts feed the `judged` filter."""

    enabled: bool = False
    with_image: bool = False  # judge against the image, not the text (needs a vision teacher)
    sentences: bool = False  # also judge each sentence of the published extraction


@dataclass
class StagesConfig:
    statements: StageConfig = field(default_factory=lambda: _stage("statements/v1", max_tokens=256))
    focus: StageConfig = field(default_factory=lambda: _stage("focus/v1", max_tokens=64))
    extraction: StageConfig = field(default_factory=lambda: _stage("extraction/v1", max_tokens=768))
    verify: VerifyConfig = field(default_factory=lambda: VerifyConfig(template="verify/v1", sampling=Sampling(max_tokens=512)))
    think: StageConfig = field(default_factory=lambda: _stage("think/v1", max_tokens=1024))
    student_prompt: str = "student/v1"  # the prompt the small model is trained with

    def __post_init__(self):
        # A recipe (or a --set) may give a stage only some keys; its template still defaults.
        for name in ("statements", "focus", "extraction", "verify", "think"):
            stage = getattr(self, name)
            if not stage.template:
                stage.template = f"{name}/v1"


@dataclass
class FilterConfig:
    name: str
    params: dict[str, float | int | str | bool] = field(default_factory=dict)


def _default_filters() -> list[FilterConfig]:
    # extraction_agreement is left out: it needs several extraction samples (n >= 2)
    names = ("degeneration", "leakage", "statement_count", "statement_coverage", "answer_correct", "sufficiency", "self_consistency")
    return [FilterConfig(n, {"min_ratio": 0.5} if n == "sufficiency" else {}) for n in names]


@dataclass
class OutputConfig:
    # A new or empty folder, or an earlier output of this tool; a run replaces it as a whole.
    dir: str = "out/quickstart"
    rows_per_shard: PositiveInt = 2000
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
        if "decontaminate" in names and not self.eval_sets:
            raise ConfigError("filters: decontaminate needs `eval_sets`, the evaluation data to compare against")
        if self.eval_sets and "decontaminate" not in names:
            raise ConfigError("eval_sets: given, but no `decontaminate` filter uses them")
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


def load_recipe(path_or_name: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Recipe:
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
    if not recipe.stages.verify.enabled:
        plain["stages"]["verify"] = {"enabled": False}
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
