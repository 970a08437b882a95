"""The Beam ModelHandler that puts any teacher behind RunInference.

One example is the list of chat requests of one record for one stage (one request for
statements, one per turn for think), so a record's requests stay together and the batch
goes to the backend as one flat list. Failures come back as replies with `error`; the
handler itself never fails a batch for one bad request.

With a reply cache, cached requests are answered from it and only the rest reach the
teacher; the teacher itself is loaded on its first real call, so a fully cached rerun
loads no model at all.

`Prefetch`, a step before RunInference, hands requests to a teacher that can start them
ahead (the vLLM engine) as soon as they exist; the handler's call then collects them.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult
from apache_beam.transforms.window import GlobalWindows

from pipelines.config.recipe import TeacherConfig
from pipelines.core.secrets import scrub
from pipelines.observe import funnel, progress
from pipelines.teachers import load_teacher
from pipelines.teachers.base import ChatRequest, TeacherDown, TeacherReply
from pipelines.teachers.cache import ReplyCache, request_key, teacher_identity


class LazyTeacher:
    """Loads the teacher on the first request that the cache could not answer."""

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.backend, self.model = config.backend, config.model
        self._teacher = None

    def generate(self, requests):
        if self._teacher is None:  # the load is timed apart: it is paid once, not per call
            start = time.perf_counter()
            self._teacher = load_teacher(self.config)
            funnel.counter(funnel.TEACHER, funnel.LOAD_MS).inc(int((time.perf_counter() - start) * 1000))
        replies = self._teacher.generate(requests)
        if hasattr(self._teacher, "endpoint_stats"):  # a fleet of endpoints: calls and failures per endpoint
            funnel.count_endpoints(self._teacher.endpoint_stats())
            progress.endpoints(*self._teacher.endpoints_up())
        return replies



class TeacherModelHandler(ModelHandler[list[ChatRequest], list[TeacherReply], LazyTeacher]):
    def __init__(self, config: TeacherConfig, cache_dir: str | None = None, one_process: bool = False):
        # Fixed-size batches: a batch is requests in flight together (remote endpoints) or one
        # engine call (local backends), so fuller is better; Beam's adaptive sizing would start
        # at 1 and grow, leaving a remote endpoint idle.
        super().__init__(min_batch_size=config.batch_size, max_batch_size=config.batch_size)
        self._config = config
        self._cache_dir = cache_dir
        self._one_process = one_process  # all workers in this process: nothing to share across processes
        self._cache: ReplyCache | None = None
        self._identity = teacher_identity(config)
        self._failing = 0  # batches in a row whose every fresh request failed
        self._hits = funnel.counter(funnel.TEACHER, funnel.CACHE_HITS)
        self._errors = funnel.counter(funnel.TEACHER, funnel.TEACHER_ERRORS)
        self._latency = funnel.distribution(funnel.TEACHER, funnel.BATCH_LATENCY_MS)

    def load_model(self) -> LazyTeacher:
        return LazyTeacher(self._config)

    def share_model_across_processes(self) -> bool:
        """A vLLM engine holds the whole GPU: the worker's processes share one (Beam serves
        it from one process and hands the others a proxy). A run whose workers all live in
        this process loads one engine anyway and calls it directly, without the proxy."""
        c = self._config
        return c.backend == "vllm" and c.vllm.mode == "engine" and c.vllm.share_across_processes and not self._one_process

    def _answer(self, requests: list[ChatRequest], model: LazyTeacher) -> list[TeacherReply]:
        """Replies from the cache where it has them, from the teacher for the rest."""
        if self._cache_dir and self._cache is None:
            self._cache = ReplyCache(self._cache_dir)
        keys = [request_key(self._identity, r) for r in requests] if self._cache else []
        replies: list[TeacherReply | None] = [self._cache.get(k, r.sampling.n) for k, r in zip(keys, requests)] if self._cache else [None] * len(requests)
        missing = [i for i, r in enumerate(replies) if r is None]
        if self._cache:  # the same call twice in one batch is paid once
            first: dict[str, int] = {}
            for i in missing:
                first.setdefault(keys[i], i)
            todo = list(first.values())
        else:
            todo = missing
        self._hits.inc(len(requests) - len(todo))
        for request, reply in zip(requests, replies):
            if reply is not None:  # what the cached reply had cost when it was paid
                funnel.count_call(request.meta.get("stage", ""), reply, cached=True)
        if todo:
            start = time.perf_counter()
            fresh = model.generate([requests[i] for i in todo])
            if len(fresh) != len(todo):
                raise RuntimeError(f"{self._config.backend} returned {len(fresh)} replies for {len(todo)} requests")
            self._latency.update(int((time.perf_counter() - start) * 1000))
            self._fail_fast(fresh)
            by_key = {}
            for i, reply in zip(todo, fresh):
                replies[i] = reply
                if reply.error:
                    self._errors.inc()
                stage = requests[i].meta.get("stage", "")
                funnel.count_call(stage, reply, cached=False)
                progress.tokens(stage, sum(o.prompt_tokens + o.completion_tokens for o in reply.outputs[:1])
                                + sum(o.completion_tokens for o in reply.outputs[1:]))
                if self._cache:
                    by_key[keys[i]] = reply
                    self._cache.put(keys[i], reply)
            for i in missing:
                if replies[i] is None:
                    replies[i] = by_key[keys[i]]
        return replies  # type: ignore[return-value]

    def _fail_fast(self, fresh: list[TeacherReply]) -> None:
        """Raise TeacherDown once `fail_fast_batches` batches in a row failed on every request."""
        self._failing = self._failing + 1 if all(r.error for r in fresh) else 0
        limit = self._config.fail_fast_batches
        if limit and self._failing >= limit:
            raise TeacherDown(f"the {self._config.backend} teacher {self._config.model!r} failed every request of {limit} batches "
                              f"in a row; the last error: {scrub(fresh[-1].error)}")

    def run_inference(
        self, batch: Sequence[list[ChatRequest]], model: LazyTeacher, inference_args: dict[str, Any] | None = None
    ) -> list[PredictionResult]:
        flat = [request for example in batch for request in example]
        replies = self._answer(flat, model) if flat else []
        results, i = [], 0
        for example in batch:
            results.append(PredictionResult(example, replies[i : i + len(example)]))
            i += len(example)
        return results

    def get_metrics_namespace(self) -> str:
        return "extract_think.inference"  # RunInference's own metrics, apart from the funnel's

    def get_num_bytes(self, batch: Sequence[list[ChatRequest]]) -> int:
        """The size of what the batch sends: the prompts' text and image data URIs (Beam's
        default pickles the whole batch once more, just for this metric)."""
        return sum(_request_bytes(r) for example in batch for r in example)


def _request_bytes(request: ChatRequest) -> int:
    size = 0
    for message in request.messages:
        content = message["content"]
        if isinstance(content, str):
            size += len(content)
            continue
        for part in content:
            size += len(part["text"]) if part["type"] == "text" else len(part.get("image_url", {}).get("url", ""))
    return size


class KeyedTeacherHandler(KeyedModelHandler):
    """`TeacherModelHandler` with each example keyed by its record, which travels beside the
    requests to the stage's parser; the bytes metric counts the requests, not the records'
    images pickled once more."""

    def get_num_bytes(self, batch) -> int:
        return self._unkeyed.get_num_bytes([example for _, example in batch])


class Prefetch(beam.DoFn):
    """Hands each (record, requests) element's requests to the teacher as soon as they exist
    (`teacher.prefetch`: the vLLM engine starts them at once), and passes the element on to
    RunInference only once `ahead` more requests are in the engine behind it. The engine
    generates while the pipeline reads, draws, filters and writes, and the batch RunInference
    waits for was started long before. Requests the reply cache holds are not sent; the
    teacher is loaded on the first request it must answer, as in the handler."""

    def __init__(self, config: TeacherConfig, cache_dir: str | None, ahead: int):
        self._config, self._cache_dir, self._ahead = config, cache_dir, ahead
        self._prefetched = funnel.counter(funnel.TEACHER, funnel.PREFETCHED)

    def setup(self):
        self._cache = ReplyCache(self._cache_dir) if self._cache_dir else None
        self._identity = teacher_identity(self._config)
        self._held: deque = deque()  # (element, requests sent for it), oldest first
        self._in_engine = 0  # requests sent for the held elements

    def start_bundle(self):
        self._held.clear()
        self._in_engine = 0

    def process(self, element):
        _, requests = element
        todo = [r for r in requests if not (self._cache and self._cache.has(request_key(self._identity, r)))]
        if todo:
            load_teacher(self._config).prefetch(todo)
            self._prefetched.inc(len(todo))
        self._held.append((element, len(todo)))
        self._in_engine += len(todo)
        while self._held and self._in_engine - self._held[0][1] >= self._ahead:
            oldest, sent = self._held.popleft()
            self._in_engine -= sent
            yield oldest

    def finish_bundle(self):
        while self._held:
            yield GlobalWindows.windowed_value(self._held.popleft()[0])
