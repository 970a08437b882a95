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
from typing import Annotated, Any, ClassVar, Literal

import yaml

from filters.registry import FILTERS, SOURCE_ONLY, check_params
from pipelines.config import Bounds, ConfigError, NonNegativeInt, PositiveInt, Share, build_with_overrides, safe_load, to_plain
from pipelines.core.secrets import scrub_data
from pipelines.source_config import SCENE_FAMILIES, IngestConfig, SourceConfig, SyntheticSource  # noqa: F401

Seconds = Annotated[float, Bounds(0)]
PositiveSeconds = Annotated[float, Bounds(0.001)]  # a deadline: 0 would fail every attempt at once
ORACLE_ERRORS = ("miscount", "wrong_colour", "invented_object", "wrong_answer", "truncation", "refusal",
                 "answer_leak", "repetition", "statement_mismatch")


@dataclass
class OracleOptions:
    error_rate: Share = 0.0  # fraction of records that get one injected mistake
    errors: list[str] = field(default_factory=lambda: list(ORACLE_ERRORS))
    seed: int = 0
    # An extraction mistake is made in the published sample; each further sample repeats it
    # with this chance (0: a slip, as sampling errors usually are; 1: a systematic error).
    repeat: Share = 0.0
    # As a judge (the verify stage) the oracle reads the scene's ground truth and gets this
    # share of its verdicts wrong on purpose, so the judged filter can be scored.
    judge_error_rate: Share = 0.0
    # Seconds each call waits before it answers, as a remote teacher's batch would (benchmarks
    # at scale: the teacher's time without its CPU work).
    latency_s: Seconds = 0.0

    def __post_init__(self):
        unknown = set(self.errors) - set(ORACLE_ERRORS)
        if unknown or not self.errors:
            raise ConfigError(f"errors: {sorted(unknown) or '[]'} not among {list(ORACLE_ERRORS)}")


@dataclass
class TransformersOptions:
    device: str = "cpu"
    dtype: str = "auto"  # "auto", "float32", "bfloat16", "float16"
    trust_remote_code: bool = False
    gguf_file: str | None = None  # load a GGUF checkpoint (dequantised by transformers)
    chat_template_kwargs: dict[str, bool | int | float | str] = field(default_factory=dict)


@dataclass
class OpenAIOptions:
    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1
    # A fleet of replicas of the model (one vLLM / SGLang / TGI server per GPU or node), with base_url or
    # instead of it: each attempt goes to the endpoint with the fewest in flight; one that fails rests (teachers/fleet.py)
    base_urls: list[str] = field(default_factory=list)
    cooldown_s: Seconds = 30.0  # how long an endpoint that failed rests before it is tried again (doubling, up to 8x)
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the variable holding the key, never the key
    max_concurrency: PositiveInt = 16  # requests in flight at once, per endpoint
    timeout_s: PositiveSeconds = 120.0  # per attempt, from sending the request to the last byte of the reply
    max_retries: NonNegativeInt = 5  # on 429, 5xx, timeouts, connection errors, malformed bodies
    backoff_s: Seconds = 1.0  # first wait; doubles per attempt, with jitter, up to backoff_max_s
    backoff_max_s: Seconds = 60.0  # also caps what a server's Retry-After may ask
    max_response_bytes: PositiveInt = 16 << 20  # a longer reply is malformed (a chat completion is kilobytes)
    extra_body: dict[str, Any] = field(default_factory=dict)  # server-specific, e.g. chat_template_kwargs
    # Stages that want structured replies (verify) send a JSON schema as `response_format`;
    # false for endpoints that refuse it (they get the plain-lines prompt instead).
    json_schema: bool = True


@dataclass
class VLLMOptions:
    mode: Literal["engine", "server"] = "engine"  # in the worker, or a managed server on loopback
    dtype: str = "auto"
    max_model_len: int | None = None
    limit_mm_per_prompt: dict[str, int] = field(default_factory=lambda: {"image": 1})
    mm_processor_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {max_pixels: 1003520}
    tensor_parallel_size: PositiveInt = 1
    # mode server: this many servers of the model, each on its own tensor_parallel_size GPUs (one
    # engine per GPU of a node), requests spread over them as over a fleet (teachers/fleet.py)
    replicas: PositiveInt = 1
    gpu_memory_utilization: Share = 0.9  # on CPU builds: the share of RAM for the KV cache
    enforce_eager: bool = False
    enable_prefix_caching: bool | None = None  # null: vLLM's default (on); false: every prompt computed in full
    trust_remote_code: bool = False
    seed: int = 0
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {enable_thinking: false}
    # engine mode: one engine per worker machine, shared by its Beam worker processes
    # (RunInference's share_model_across_processes) instead of one per process
    share_across_processes: bool = True
    # engine mode: requests handed to the engine ahead of the batch being waited for, as soon
    # as their prompts exist, so that it generates while the pipeline does its other work; 0: off
    prefetch: NonNegativeInt = 512


@dataclass(frozen=True)
class Price:
    """What the teacher's provider charges, in dollars (or any one currency) per million tokens."""

    input_per_mtok: Annotated[float, Bounds(0)] = 0.0
    output_per_mtok: Annotated[float, Bounds(0)] = 0.0

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass
class TeacherConfig:
    SWITCH: ClassVar = ("backend", ("oracle", "transformers", "openai", "vllm"))
    backend: Literal["oracle", "transformers", "openai", "vllm"] = "oracle"
    model: str = "oracle"  # a Hub id or a local path for real backends
    revision: str = "main"
    batch_size: PositiveInt = 8  # records per call to the backend (at most)
    # Cut batches by estimated tokens too (prompt text, image tokens from the model's
    # processor settings, max_tokens x n); null: by record count only.
    max_batch_tokens: PositiveInt | None = None
    image_tokens: PositiveInt = 1024  # the estimate per image when the model's processor settings are unknown
    # What the provider charges (per million tokens); null: unknown, no cost is computed.
    # Never part of what identifies the teacher: a price change reuses every cached reply.
    price: Price | None = None
    # Before the first record is read, the teacher answers one tiny request (an endpoint also
    # names the model among those it serves); one that cannot stops the run with exit 2.
    preflight: bool = True
    # The run stops (exit 1, the previous dataset untouched, the replies so far cached) when this
    # many batches in a row failed on every request: the teacher is gone. 0: never.
    fail_fast_batches: NonNegativeInt = 3
    oracle: OracleOptions = field(default_factory=OracleOptions)
    transformers: TransformersOptions = field(default_factory=TransformersOptions)
    openai: OpenAIOptions = field(default_factory=OpenAIOptions)
    vllm: VLLMOptions = field(default_factory=VLLMOptions)

    def __post_init__(self):
        """What a backend needs, checked when the recipe loads (exit 2, the key named), never in a worker."""
        if self.backend != "oracle" and self.model in ("", "oracle"):
            raise ConfigError(f"model: name the model the {self.backend} backend serves (a Hub id or a local path)")
        if self.backend == "openai":
            urls = [self.openai.base_url] if self.openai.base_url else []
            urls += self.openai.base_urls
            if not urls:
                raise ConfigError("openai.base_url: the openai backend needs an endpoint (base_url, or base_urls for a fleet)")
            bad = [u for u in urls if not u.startswith(("http://", "https://"))]
            if bad:
                raise ConfigError(f"openai.base_url: {bad[0]!r} is not an http:// or https:// URL")
        if self.backend == "vllm" and self.vllm.replicas > 1 and self.vllm.mode != "server":
            raise ConfigError("vllm.replicas: several engines need mode: server (each engine runs in its own server process)")


# Settings that decide how calls are batched and sent: never which engine answers, nor what
# it answers ("" : TeacherConfig's own fields; else the backend's options block).
_SENDING = {"": ("batch_size", "max_batch_tokens", "image_tokens"), "vllm": ("prefetch",)}
# Settings that make another engine or connection, but the same replies.
_SERVING = {"vllm": ("mode", "gpu_memory_utilization", "tensor_parallel_size", "share_across_processes", "replicas"),
            "openai": ("api_key_env", "max_concurrency", "timeout_s", "max_retries", "backoff_s", "backoff_max_s",
                       "max_response_bytes", "json_schema", "base_url", "base_urls", "cooldown_s")}
# The same request gets the same reply whichever replica of the model answers: the endpoints
# are how a teacher is served, not what it answers, so a fleet shares one endpoint's cache.


def engine_identity(config: TeacherConfig) -> dict:
    """What decides which loaded teacher serves `config`: the backend, model, revision and the
    backend's own options, without how calls are batched and sent (stages that differ only
    in batching share one engine)."""
    plain = to_plain(config)
    options = {k: v for k, v in plain[config.backend].items() if k not in _SENDING.get(config.backend, ())}
    return {"backend": config.backend, "model": config.model, "revision": config.revision, "options": options}


def reply_identity(config: TeacherConfig) -> dict:
    """What changes a teacher's replies (the reply cache's key): the engine identity without
    the settings that only change how it is served (engine or server, memory share,
    retries, the API key's variable)."""
    identity = engine_identity(config)
    serving = _SERVING.get(config.backend, ())
    return {**identity, "options": {k: v for k, v in identity["options"].items() if k not in serving}}


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
        real = [s.name for s in self.sources if s.kind != "synthetic"]
        for name in ("statements", "focus", "extraction", "verify", "think"):
            if name == "verify" and not self.stages.verify.enabled:
                continue
            if self.stage_teacher(name).backend == "oracle" and real:
                raise ConfigError(f"stages.{name}: the oracle teacher only works with synthetic sources, not {real}")

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
