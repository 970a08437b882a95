"""The teacher's part of a recipe (`teacher:` and each stage's `teacher:`): one block of
options per backend, the price, and what identifies a teacher - which loaded engine serves a
config (`engine_identity`) and which replies are the same (`reply_identity`, the reply
cache's key). `pipelines.config.recipe` re-exports all of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pipelines.config import Bounds, ConfigError, NonNegativeInt, PositiveInt, Share, to_plain

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
